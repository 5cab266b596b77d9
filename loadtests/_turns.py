"""Taking turns with other load runs on this machine: the fine interleaving of ``python -m bench ab``.

Two runs started with the same ``--turn-start`` (a Unix time) and ``--turn 0/2``
and ``--turn 1/2``, each against its own deployment, send load in turns of
``--turn-slot`` seconds (default 0.1; each cycle gives every run one slot, in a
shuffled order, see :class:`TurnPlan`): while one run's users send,
the other's wait, so each deployment has the machine to itself while it is
measured, and a slow second of a shared machine falls on both alike. Measuring
A and B one after the other in rounds of seconds each is not enough here: on
the 2-core build VM one deployment measured 3 s at a time ranged from 711 to
1,332 req/s, with slow spells of about a second, and identical deployments
gave per-round B/A from 0.73 to 1.15.

The run lasts ``--turn-rounds`` rounds of ``--turn-round`` seconds (a whole
number of cycles of every party's slot) from the start, whatever ``-t`` says
(``-t`` stays the bound of the whole process). ``latency.json`` gets a
``turns`` section with each round's histograms (HDR, a ``LatencyBook`` wire
form) and the seconds of that round's own slots, so a benchmark pairs the
rounds of A and B; the run's own figures are over its own slots (throughput
counts the time this run could send, not the time it waited). A request
belongs to the slot in which it was sent. A run that is not up by the start
(every user spawned) begins at its next slot and counts its own time from
there. Closed loop, one process, steady shape, headless; no ``--bad-share``
or ``--slo-abort``. The plan's arithmetic and option checks import nothing of
Locust, so ``bench`` uses them as they are.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from reporting.latency import LatencyBook, SeriesKey

from ._plan import PlanError

DEFAULT_SLOT_S = 0.1
DEFAULT_ROUND_S = 2.0
# A send is read back as answer time - latency, and a user checks its slot just before it sends:
# a request that went out up to 1 ms from its slot's edges is on turn.
OFF_TURN_SLACK_S = 0.001
EDGE_S = 1e-6  # slot edges are start + k * slot: at Unix times a float is only good to ~2.4e-7 s
MAX_START_AHEAD_S = 600.0  # a start further ahead is a typo (milliseconds?), not a plan


def add_arguments(parser: Any) -> None:
    """The ``--turn*`` options (shown in ``--help``, not in the web UI: turns are headless only)."""
    parser.add_argument("--turn", default="", metavar="I/N", include_in_web_ui=False,
                       help="send only in slot I of every N (0-based), e.g. 0/2 here and 1/2 in a second "
                            "run against another deployment, both with the same --turn-start")
    parser.add_argument("--turn-start", type=float, default=None, metavar="UNIX_TIME",
                        include_in_web_ui=False,
                        help="when slot 0 of the first round begins (seconds since the epoch, as "
                             "date +%%s.%%N prints), the same for every party")
    parser.add_argument("--turn-slot", type=float, default=DEFAULT_SLOT_S, metavar="SECONDS",
                       include_in_web_ui=False, help=f"length of one slot (default {DEFAULT_SLOT_S:g})")
    parser.add_argument("--turn-round", type=float, default=DEFAULT_ROUND_S, metavar="SECONDS",
                       include_in_web_ui=False,
                       help=f"length of a round, every party's slots (default {DEFAULT_ROUND_S:g}); "
                            "latency.json reports each round apart")
    parser.add_argument("--turn-rounds", type=int, default=1, metavar="N", include_in_web_ui=False,
                       help="rounds in the run; it ends after them")


def _mix(seed: int, cycle: int) -> int:
    """SplitMix64 of ``seed + cycle``: the same pseudo-random number in every process."""
    z = (seed + 0x9E3779B97F4A7C15 * (cycle + 1)) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


@dataclass(frozen=True)
class TurnPlan:
    """Which slots are this run's: one slot in every cycle of ``parties`` slots, in a shuffled order.

    Cycle ``c`` (slots ``c*N .. c*N+N-1`` from ``start``) gives each party one
    slot, rotated by a pseudo-random amount seeded by ``start``, so every party
    computes the same order. Without the shuffle a periodic task of either
    process (Locust's 1 s statistics, the 10 s partial report) fell into the
    same party's slots all run long: identical deployments came out B/A 1.02,
    1.02 and 1.06 (each interval about +-0.02) in consecutive runs.
    """

    index: int
    parties: int
    start: float
    slot_s: float = DEFAULT_SLOT_S
    round_s: float = DEFAULT_ROUND_S
    rounds: int = 1

    @property
    def end(self) -> float:
        return self.start + self.rounds * self.round_s

    @property
    def own_per_round_s(self) -> float:
        return self.round_s / self.parties

    def _slot(self, t: float) -> int:
        return math.floor((t - self.start + EDGE_S) / self.slot_s)

    def _own_in_cycle(self, cycle: int) -> int:
        """The slot (index from ``start``) this run owns in ``cycle``."""
        rotation = _mix(round(self.start * 1000), cycle) % self.parties
        return cycle * self.parties + (self.index + rotation) % self.parties

    def owns(self, slot: int) -> bool:
        return slot >= 0 and self._own_in_cycle(slot // self.parties) == slot

    def own_slot_at(self, t: float) -> bool:
        """Whether ``t`` falls in one of this run's slots within the window."""
        return self.start <= t < self.end and self.owns(self._slot(t))

    def next_own_start(self, t: float) -> float | None:
        """The start of this run's first slot that starts at or after ``t``; None past the window."""
        k = max(math.ceil((t - self.start - EDGE_S) / self.slot_s), 0)
        own = self._own_in_cycle(k // self.parties)
        if own < k:
            own = self._own_in_cycle(k // self.parties + 1)
        begins = self.start + own * self.slot_s
        return begins if begins < self.end - 1e-9 else None

    def round_of(self, t: float) -> int | None:
        """The round ``t`` falls in (None outside the window)."""
        if not self.start <= t < self.end:
            return None
        return min(int((t - self.start) // self.round_s), self.rounds - 1)

    def own_seconds(self, round_index: int, since: float, until: float = math.inf) -> float:
        """Seconds of this run's slots in round ``round_index`` that begin in ``[since, until)``."""
        per_round = round(self.round_s / self.slot_s)
        slots = range(round_index * per_round, (round_index + 1) * per_round)
        return sum(self.slot_s for k in slots if self.owns(k)
                   and since - 1e-9 <= self.start + k * self.slot_s < until)


def turn_plan_from_options(options: Any, now: float | None = None) -> TurnPlan | None:
    """The options' TurnPlan (None without ``--turn``); :class:`PlanError` says what to fix."""
    text = (getattr(options, "turn", "") or "").strip()
    if not text:
        return None
    index_text, sep, parties_text = text.partition("/")
    if not sep or not index_text.strip().isdecimal() or not parties_text.strip().isdecimal():
        raise PlanError(f"--turn {text!r} is not I/N; write e.g. --turn 0/2 here and --turn 1/2 in the "
                        "other run")
    index, parties = int(index_text), int(parties_text)
    if parties < 2 or index >= parties:
        n = max(parties, 2)
        raise PlanError(f"--turn {text}: N is the number of runs taking turns (2 or more) and I counts "
                        f"from 0 below N, e.g. 0/{n} .. {n - 1}/{n}")
    start = getattr(options, "turn_start", None)
    if start is None:
        raise PlanError("--turn needs --turn-start UNIX_TIME, the same for every run taking turns, a few "
                        "seconds ahead (e.g. $(( $(date +%s) + 10 )))")
    now = time.time() if now is None else now
    if not math.isfinite(start):
        raise PlanError(f"--turn-start {start} is not a time: give seconds since the epoch (date +%s)")
    if start > now + MAX_START_AHEAD_S:
        raise PlanError(f"--turn-start {start} is more than {MAX_START_AHEAD_S:.0f} s ahead: give seconds "
                        "since the epoch (date +%s), not milliseconds")
    slot, round_s, rounds = float(options.turn_slot), float(options.turn_round), int(options.turn_rounds)
    check_round(slot, round_s, parties)
    if rounds < 1:
        raise PlanError(f"--turn-rounds {rounds}: give 1 or more")
    if start + rounds * round_s <= now:
        raise PlanError(f"--turn-start {start:.3f} with {rounds} rounds of {round_s:g} s is over already "
                        f"(now {now:.3f}): give a start a few seconds ahead")
    return TurnPlan(index, parties, float(start), slot, round_s, rounds)


def check_round(slot_s: float, round_s: float, parties: int, names: tuple[str, str] = ("--turn-slot",
                                                                                    "--turn-round")) -> None:
    """A slot from 0.01 s to 60 s, and a round of whole cycles of every party's slot; PlanError otherwise."""
    if not (math.isfinite(slot_s) and 0.01 <= slot_s <= 60):
        raise PlanError(f"{names[0]} {slot_s:g} is out of range: give seconds from 0.01 to 60, e.g. 0.1")
    cycles = round_s / (slot_s * parties)
    if not math.isfinite(cycles) or cycles < 1 - 1e-9 or abs(cycles - round(cycles)) > 1e-6:
        whole = max(round(cycles), 1) if math.isfinite(cycles) else 1
        raise PlanError(f"{names[1]} {round_s:g} must be a whole number of cycles of {parties} slots of "
                        f"{slot_s:g} s, e.g. {slot_s * parties * whole:g}")


def check_compatible(turns: TurnPlan, options: Any, arrival_rate: float, role: str) -> None:
    """Turns need a closed-loop, steady, headless run in one process; PlanError otherwise."""
    if arrival_rate > 0:
        raise PlanError("--turn works in closed loop only: drop --arrival-rate")
    if getattr(options, "shape", "steady") != "steady":
        raise PlanError("--turn needs --shape steady (the rounds must be alike)")
    if role != "local":
        raise PlanError("--turn runs in one process: drop --processes / --master / --worker")
    if not getattr(options, "headless", False):
        raise PlanError("--turn needs --headless: the runs must start by themselves at --turn-start")
    if getattr(options, "bad_share", None):
        raise PlanError("--turn does not take --bad-share (bad requests would go out of turn): drop it")
    if getattr(options, "slo_abort", False):
        raise PlanError("--turn does not take --slo-abort (throughput so far would count the other run's "
                        "turns): drop it; --slo is checked at the end over this run's own slots")


@dataclass(eq=False)
class Turns:
    """A run's turns while it runs: when its users may send, and each round's histograms."""

    plan: TurnPlan
    joined: float | None = None  # when every user was spawned (stats reset): slots count from the next one
    books: list[LatencyBook] = field(default_factory=list)
    off_turn: int = 0  # requests sent outside this run's slots (more than OFF_TURN_SLACK_S): a bug if not 0

    def __post_init__(self) -> None:
        self.books = [LatencyBook() for _ in range(self.plan.rounds)]

    def join(self, now: float | None = None) -> None:
        """Every user exists (and the statistics were reset): count this run's slots from here."""
        self.joined = time.time() if now is None else now
        self.books = [LatencyBook() for _ in range(self.plan.rounds)]
        self.off_turn = 0

    @property
    def first(self) -> float | None:
        """The first slot this run counts (None before it joined, or when it joined too late)."""
        return None if self.joined is None else self.plan.next_own_start(self.joined)

    def wait(self) -> None:
        """Before each request: sleep until this run's slot; StopUser once the window is over."""
        import gevent  # here: bench imports this module and must not load Locust (it patches with gevent)
        from locust.exception import StopUser

        while True:
            now = time.time()
            first = self.first
            if first is None or now >= self.plan.end:
                raise StopUser()
            if now >= first and self.plan.own_slot_at(now):
                return
            upcoming = first if now < first else self.plan.next_own_start(now)
            if upcoming is None:
                raise StopUser()
            gevent.sleep(upcoming - now)

    def over(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.plan.end

    def record(self, key: SeriesKey, latency_us: float, ok: bool, kind: str | None, sent: float) -> None:
        """A request sent at ``sent`` (Unix time) into its round's book (none before the first slot)."""
        first = self.first
        counted = first is not None and sent >= first - OFF_TURN_SLACK_S
        if not counted or not any(self.plan.own_slot_at(sent + d) for d in (0.0, OFF_TURN_SLACK_S,
                                                                            -OFF_TURN_SLACK_S)):
            self.off_turn += 1  # the gate let it out of turn (or before the run's first slot)
        index = self.plan.round_of(sent)
        if counted and index is not None:
            self.books[index].record_key(key, latency_us, ok, kind)

    def own_seconds(self, now: float | None = None) -> float:
        """This run's slots since it joined, begun by ``now``: the time its throughput is over."""
        if self.joined is None:
            return 0.0
        until = time.time() if now is None else now
        return sum(self.plan.own_seconds(r, self.joined, until) for r in range(self.plan.rounds))

    def report(self, until: float | None = None) -> dict[str, Any]:
        """latency.json's ``turns``: the plan, when the run joined, and each round's histograms.

        ``until``: when the run stopped (None: it runs on), so that slots after a stop count nothing.
        """
        plan = self.plan
        until = time.time() if until is None else until
        since = self.joined if self.joined is not None else plan.end
        return {
            "turn": f"{plan.index}/{plan.parties}", "start": plan.start, "slot_s": plan.slot_s,
            "round_s": plan.round_s, "rounds": plan.rounds,
            "late_s": round(max(since - plan.start, 0.0), 3),
            "own_s": round(self.own_seconds(until), 6), "off_turn": self.off_turn,
            "per_round": [{"own_s": plan.own_seconds(r, since, until), "hdr": book.to_wire()}
                          for r, book in enumerate(self.books)],
        }
