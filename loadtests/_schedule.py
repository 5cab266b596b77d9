"""Open-loop load: when each request should start, waking on time, and how late it started.

An open-loop generator sends requests at a fixed arrival rate whatever the
server does, so a slow answer cannot hold back the next request (closed-loop
users would wait, and a stall would vanish from the figures: coordinated
omission). Each request's latency is measured from its *intended* start time,
so time spent waiting for a free connection counts as the queueing it is.

* :class:`ArrivalSchedule` hands out intended start times (constant spacing
  or Poisson arrivals, optionally with a time-varying rate);
* :class:`oip.clock.PreciseSleeper` (the timers live in the neutral :mod:`oip.clock`)
  waits until such a time with a Linux ``timerfd`` under gevent (gevent's
  own timers fire up to ~1 ms late, which would show up as latency);
  elsewhere it falls back to ``gevent.sleep``;
* :class:`LagTracker` records how late each request actually started, and
  whether it was late because no user was free when its slot came (every
  request in flight still waiting for the server: ``queued``) or because the
  generator itself woke late, so the run can say which of the two fell behind.

Times are ``time.monotonic()`` seconds (CLOCK_MONOTONIC, the timerfd's clock).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from reporting.latency import LatencyHistogram, WireFormatError

__all__ = ["ArrivalSchedule", "LagTracker", "RateFn"]

RateFn = Callable[[float], float]


class ArrivalSchedule:
    """Intended start times of one open-loop stream.

    ``rate`` is requests per second, or a function of the seconds since
    ``start`` returning it (for ramps and spikes). ``process`` is
    ``"constant"`` (evenly spaced) or ``"poisson"`` (exponential gaps, seeded
    by ``rng``). ``phase`` offsets the first arrival (so several processes
    sharing one rate interleave instead of firing together).
    """

    def __init__(
        self,
        rate: float | RateFn,
        process: str = "constant",
        *,
        start: float,
        phase: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if process not in ("constant", "poisson"):
            raise ValueError(f"arrival process {process!r}: use 'constant' or 'poisson'")
        if not callable(rate) and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"arrival rate {rate!r}: give a positive number of requests per second")
        self._rate: RateFn = rate if callable(rate) else (lambda _t, r=float(rate): r)
        self.process = process
        self.start = start
        self._rng = rng or random.Random()
        self._next = start + phase
        self.issued = 0

    def rate_at(self, t: float) -> float:
        """The rate (requests/s) at absolute time ``t``."""
        rate = self._rate(t - self.start)
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"the arrival rate became {rate!r} at t={t - self.start:.3f}s; it must stay > 0")
        return rate

    def peek(self) -> float:
        """The next intended start time, without claiming it."""
        return self._next

    def claim(self) -> float:
        """Claim the next intended start time (each one is handed out exactly once)."""
        due = self._next
        rate = self.rate_at(due)
        gap = 1.0 / rate if self.process == "constant" else self._rng.expovariate(rate)
        self._next = due + gap
        self.issued += 1
        return due


class LagTracker:
    """How late requests started relative to their schedule (microsecond histogram)."""

    def __init__(self, late_threshold_us: float) -> None:
        self.late_threshold_us = late_threshold_us
        self.histogram = LatencyHistogram()
        self.late = 0
        self.queued = 0  # late, and already overdue when a user was free to take the slot
        self.own = LatencyHistogram()  # the lags of starts whose slot a free user claimed in time

    def record(self, lag_s: float, overdue_s: float = 0.0) -> None:
        """One start, ``lag_s`` after its slot; the slot was ``overdue_s`` old when a user claimed it."""
        lag_us = lag_s * 1e6 if lag_s > 0 else 0.0
        self.histogram.record(lag_us)
        waited = overdue_s * 1e6 > self.late_threshold_us
        if not waited:
            self.own.record(lag_us)
        if lag_us > self.late_threshold_us:
            self.late += 1
            self.queued += waited

    @property
    def generator_late(self) -> int:
        """Late starts the generator itself caused (a free user woke late)."""
        return self.late - self.queued

    @property
    def scheduled(self) -> int:
        return self.histogram.count

    def merge(self, other: LagTracker) -> None:
        self.histogram.merge(other.histogram)
        self.late += other.late
        self.queued += other.queued
        self.own.merge(other.own)

    def take(self) -> LagTracker:
        taken = LagTracker(self.late_threshold_us)
        taken.histogram, taken.own = self.histogram, self.own
        taken.late, taken.queued = self.late, self.queued
        self.histogram, self.own, self.late, self.queued = LatencyHistogram(), LatencyHistogram(), 0, 0
        return taken

    def to_wire(self) -> dict[str, Any] | None:
        if not self.scheduled:
            return None
        return {"hdr": self.histogram.encode(), "late": self.late, "queued": self.queued,
                "own_hdr": self.own.encode() if self.own.count else None,
                "late_threshold_us": self.late_threshold_us}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> LagTracker:
        try:
            tracker = cls(float(wire["late_threshold_us"]))
            tracker.histogram = LatencyHistogram.decode(wire["hdr"])
            tracker.late = int(wire["late"])
            tracker.queued = int(wire.get("queued", 0))
            if wire.get("own_hdr"):
                tracker.own = LatencyHistogram.decode(wire["own_hdr"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireFormatError(f"not a LagTracker wire dict ({exc}): {wire!r:.100}") from None
        return tracker

    def summary(self) -> dict[str, Any]:
        scheduled = self.scheduled
        return {
            "scheduled": scheduled,
            "late": self.late,
            "late_fraction": round(self.late / scheduled, 6) if scheduled else 0.0,
            "late_waiting_for_the_server": self.queued,
            "late_generator": self.generator_late,
            "generator_lag_us": self.own.stats(),  # the starts a free user took in time
            "late_threshold_us": self.late_threshold_us,
            "lag_us": self.histogram.stats(),
        }
