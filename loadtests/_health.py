"""How the target is doing, seen from this process: good answers per transport, and stalls.

:class:`Pulse` follows the good traffic of one transport (requests meant to
succeed; a later kind of run sends requests meant to fail, with ``good=False``,
and they count for nothing here): since when a request has been waiting for a
successful answer, and per-second counts of successes and failures. The abort
rules (:mod:`._abort`) read it.

:class:`Stalls` finds the moments the server stopped answering: every request
this process has in flight (as many as it has users, so open-loop slots wait
for a free user) and no answer at all for longer than :data:`STALL_MIN_S` and
:data:`STALL_FACTOR` times the usual latency. Such a wait is the server's, not
the generator's, and the report says so, with when and for how long.
Times are ``time.monotonic()`` for the arithmetic, wall clock for the report.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

PULSE_SECONDS = 600  # per-second buckets kept (error-rate windows are shorter)
STALL_MIN_S = 0.5
STALL_FACTOR = 5.0  # ... and this many times the median latency of the successes
MAX_STALLS = 50


class Pulse:
    """Good traffic of one transport: waiting for a success since when, and per-second counts."""

    def __init__(self) -> None:
        self.waiting_since: float | None = None  # first good request sent since the last success
        self.last_success: float | None = None
        self.buckets: deque[list[int]] = deque(maxlen=PULSE_SECONDS)  # [second, ok, failed]

    def attempt(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now

    def answer(self, now: float, ok: bool) -> None:
        second = int(now)
        if not self.buckets or self.buckets[-1][0] != second:
            self.buckets.append([second, 0, 0])
        self.buckets[-1][1 if ok else 2] += 1
        if ok:
            self.last_success, self.waiting_since = now, None

    def silent_for(self, now: float) -> float:
        """How long good requests have been waiting for a successful answer (0: none waits)."""
        return 0.0 if self.waiting_since is None else now - self.waiting_since

    def counts(self, now: float, window_s: float) -> tuple[int, int]:
        """(successes, failures) of the last ``window_s`` seconds."""
        since = int(now - window_s)
        ok = failed = 0
        for second, good, bad in reversed(self.buckets):
            if second <= since:
                break
            ok, failed = ok + good, failed + bad
        return ok, failed


class Stalls:
    """Intervals when every request in flight waited and no answer came (see the module docstring)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_answer: float | None = None  # monotonic
        self.intervals: list[dict[str, Any]] = []  # {"start", "end" (wall), "in_flight"}
        self._new: list[dict[str, Any]] = []

    def sent(self, now: float) -> None:
        if self.last_answer is None or self.in_flight == 0:  # idle until now (e.g. --turn): no stall
            self.last_answer = now
        self.in_flight += 1

    def answered(self, now: float, pool: int, typical_s: Callable[[], float]) -> None:
        """An answer (or a failure) arrived; ``pool`` is how many users this process runs."""
        last, self.last_answer = self.last_answer, now
        busy, self.in_flight = self.in_flight, max(self.in_flight - 1, 0)
        if last is None or now - last < STALL_MIN_S or not 0 < pool <= busy:
            return
        if now - last >= max(STALL_MIN_S, STALL_FACTOR * typical_s()):
            wall = time.time()
            self._add({"start": wall - (now - last), "end": wall, "in_flight": busy})

    def ongoing(self, now: float, pool: int) -> dict[str, Any] | None:
        """A stall still going on at ``now`` (the run ends or is reported in the middle of one)."""
        last = self.last_answer
        if last is None or now - last < STALL_MIN_S or not 0 < pool <= self.in_flight:
            return None
        return {"start": time.time() - (now - last), "end": None, "in_flight": self.in_flight}

    def _add(self, interval: dict[str, Any]) -> None:
        if len(self.intervals) < MAX_STALLS:
            self.intervals.append(interval)
            self._new.append(interval)

    def take_new(self) -> list[dict[str, Any]]:
        new, self._new = self._new, []
        return new

    def forget(self) -> None:
        """Stats were reset: forget the stalls found so far (the requests in flight stay counted)."""
        self.intervals, self._new = [], []

    def merge(self, intervals: list[dict[str, Any]]) -> None:
        """Master: a worker's stalls (overlapping ones from several workers become one)."""
        for interval in intervals:
            for mine in self.intervals:
                if interval["start"] <= mine["end"] and mine["start"] <= interval["end"]:
                    mine["start"], mine["end"] = min(mine["start"], interval["start"]), max(mine["end"],
                                                                                          interval["end"])
                    mine["in_flight"] += interval["in_flight"]
                    break
            else:
                self._add(dict(interval))

    def report(self, started_wall: float | None,
               ongoing: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The stalls for latency.json: seconds into the run, duration, requests that waited."""
        out = []
        for interval in [*self.intervals, *([ongoing] if ongoing else [])]:
            end = interval["end"]
            out.append({
                "start_s": round(interval["start"] - started_wall, 3) if started_wall else None,
                "duration_s": round((end if end is not None else time.time()) - interval["start"], 3),
                "in_flight": interval["in_flight"],
                "ongoing": end is None,
                "at": time.strftime("%H:%M:%S", time.gmtime(interval["start"])) + " UTC",
            })
        return out


def stall_warning(stalls: list[dict[str, Any]], queued: int) -> str | None:
    """One line saying the server stopped answering, when and for how long."""
    if not stalls:
        return None
    longest = max(stalls, key=lambda s: s["duration_s"])
    when = ", ".join(f"{s['duration_s']:.1f} s from {s['start_s']:.1f} s into the run ({s['at']})"
                     + (", still going on" if s["ongoing"] else "") for s in stalls[:5])
    more = f" and {len(stalls) - 5} more" if len(stalls) > 5 else ""
    waited = (f"; {queued} open-loop requests waited for a free user meanwhile and count that wait "
              "as latency" if queued else "")
    return (f"the server stopped answering: {len(stalls)} stall(s), the longest "
            f"{longest['duration_s']:.1f} s, "
            f"with all {longest['in_flight']} requests in flight waiting: {when}{more}{waited}. "
            "This is the server's wait, not the generator's")
