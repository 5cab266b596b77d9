"""One load run's state, kept on Locust's ``Environment`` as ``environment.oip_run``.

The ``init`` hook attaches a :class:`RunState` to the environment; event hooks
get it from their ``environment`` argument (or from a closure bound in
``init``), users from ``self.environment.oip_run`` and the shape from
``self.runner.environment.oip_run``. Nothing about a run lives in a module
global, so a second Environment in the same process starts clean.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event

from reporting.latency import LatencyBook
from reporting.runs import Run

from ._expected import AnyModelLoad
from ._health import Pulse, Stalls
from ._outcomes import FailureLog
from ._plan import DEFAULT_LATE_MS, DEFAULT_MAX_REQUESTS, Plan
from ._schedule import ArrivalSchedule, LagTracker
from ._workload import ModelLoad

ATTR = "oip_run"  # the attribute of the Environment that holds the RunState


class Budget:
    """The request cap of this process (``--max-requests``, split across workers)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.cap:
            return False
        self.used += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.used >= self.cap


@dataclass(eq=False)
class RunState:
    """Everything one Locust process knows about the run; see the module docstring."""

    environment: Any
    role: str = "local"  # local | master | worker
    user_classes: dict[str, type] = field(default_factory=dict)  # transport -> User class
    selected_classes: list[type] | None = None
    plan: Plan | None = None
    invalid: str | None = None
    workload: dict[str, ModelLoad | AnyModelLoad] = field(default_factory=dict)
    workload_key: tuple | None = None
    book: LatencyBook = field(default_factory=LatencyBook)
    lag: LagTracker = field(default_factory=lambda: LagTracker(DEFAULT_LATE_MS * 1000))
    budget: Budget = field(default_factory=lambda: Budget(DEFAULT_MAX_REQUESTS))
    schedules: dict[str, ArrivalSchedule] = field(default_factory=dict)
    share: dict[str, Any] | None = None  # worker: the master's split of the cap and the rate
    cpu: Any = None  # a _cpu.CpuWatch once init ran
    worker_cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_imprecise_timers: bool = False
    precise_timers: bool = True
    run: Run | None = None
    started_wall: float | None = None
    stopped_wall: float | None = None
    stop_reason: str | None = None
    csv_writer: Any = None
    csv_prefix: str | None = None
    csv_greenlet: gevent.Greenlet | None = None
    report_greenlet: gevent.Greenlet | None = None
    warned_behind: bool = False
    closing: bool = False  # the run is ending: users send nothing more
    workers: int = 0  # master: how many workers the test started with
    ready_workers: set[str] = field(default_factory=set)  # master: workers done with their init
    initialised: bool = False  # worker: init hook done
    tests: int = 0  # tests already finished in this process (web UI: start, stop, start again)
    spawned: gevent.event.Event = field(default_factory=gevent.event.Event)
    lane_numbers: itertools.count = field(default_factory=itertools.count)
    # failures apart, a dead or sick target, SLOs (_outcomes, _health, _abort)
    failures: FailureLog = field(default_factory=FailureLog)
    pulses: dict[str, Pulse] = field(default_factory=dict)  # transport -> its good traffic
    stalls: Stalls = field(default_factory=Stalls)
    rules: list[Any] = field(default_factory=list)  # _abort.AbortRule
    slos: list[Any] = field(default_factory=list)  # reporting.slo.Slo
    slo_abort: bool = False
    slo_results: list[dict[str, Any]] = field(default_factory=list)
    aborted: dict[str, Any] | None = None  # {"reason", "at_s"} once a rule or --slo-abort stopped the run
    abort_sent: bool = False  # worker: the master was told
    guard_greenlet: gevent.Greenlet | None = None
    bad: Any = None  # _bad_traffic.BadTraffic with --bad-share
    turns: Any = None  # _turns.Turns with --turn: this run sends in its slots only

    def pulse(self, transport: str) -> Pulse:
        found = self.pulses.get(transport)
        if found is None:
            found = self.pulses[transport] = Pulse()
        return found

    def active_transports(self) -> list[str]:
        """The transports whose User class has tasks and a weight in this run."""
        return [t for t, cls in self.user_classes.items() if cls.tasks and cls.weight > 0]


def harness_user_classes(environment: Any) -> dict[str, type]:
    """The locustfile's User classes of the harness, by transport (those with ``model_tasks``)."""
    available = getattr(environment, "available_user_classes", None) or {
        cls.__name__: cls for cls in environment.user_classes
    }
    return {cls.transport: cls for cls in available.values()
            if getattr(cls, "model_tasks", None) is not None and getattr(cls, "transport", None)}


def attach(environment: Any, role: str) -> RunState:
    """A fresh RunState on ``environment`` (the ``init`` hook's first step)."""
    state = RunState(environment=environment, role=role, user_classes=harness_user_classes(environment))
    setattr(environment, ATTR, state)
    return state


def run_state(environment: Any) -> RunState | None:
    """The RunState of ``environment``, or None before ``init`` (or when used as a library)."""
    return getattr(environment, ATTR, None)
