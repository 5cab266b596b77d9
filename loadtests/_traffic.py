"""What the users and the shape call while load runs: payloads, the request cap, open-loop slots.

Users hold their run's state (``self.environment.oip_run``) and pass it in:
:class:`Lane` claims each request (cap, open-loop slot, next held-out row),
:func:`send_precise` / :func:`report` time and report it, :func:`shape_tick` is
the one LoadTestShape's tick.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from locust.exception import StopUser

from oip.clock import PreciseSleeper
from oip.names import LOOPBACK
from oip.precise import GrpcConnection, HttpConnection, Reply, WireError
from reporting.latency import SeriesKey

from ._capture import CONTEXT_KEY, GOOD_KEY, PROBLEM_KEY, SENT_KEY
from ._expected import AnyModelLoad
from ._outcomes import Problem, as_problem, problem_of_exception
from ._plan import DEFAULT_RUN_TIME_S, DEFAULT_USERS, Plan, profile, shares, users_at
from ._schedule import ArrivalSchedule
from ._state import RunState
from ._workload import ModelLoad, build_plan_workload

log = logging.getLogger("loadtests")

SPAWN_WAIT_S = 30.0
OPEN_LOOP_SPAWN_FACTOR = 10.0  # open loop spawns its whole pool in 1/10 s


def ensure_workload(state: RunState, plan: Plan) -> None:
    """Encode the plan's payloads (once per mix, batch size, path style and target)."""
    key = (tuple(sorted(plan.mix)), plan.batch_size, plan.versioned, plan.rest_url, plan.models_dir,
           plan.samples_dir)
    if key != state.workload_key:
        started = time.perf_counter()
        state.workload = build_plan_workload(plan)
        state.workload_key = key
        log.info("encoded %s in %.1fs", ", ".join(f"{len(w.items)} {m} requests"
                                                  for m, w in state.workload.items()),
                 time.perf_counter() - started)


class Lane:
    """A user's own state: where it is in each model's rows, and its open-loop sleeper."""

    def __init__(self, state: RunState, transport: str) -> None:
        plan = state.plan
        self.state = state
        self.transport = transport
        number = next(state.lane_numbers)
        seed = None if plan is None or plan.seed is None else plan.seed * 1_000_003 + number
        self._rng = random.Random(seed)
        self._cursor: dict[str, int] = {}
        self.sleeper = PreciseSleeper() if plan is not None and plan.open_loop else None
        if self.sleeper is not None and not self.sleeper.precise:
            state.precise_timers = False

    def next(self, model: str, good: bool = True) -> tuple[ModelLoad | AnyModelLoad, Any, float | None]:
        """Claim a request: (model load, item, intended start as time.monotonic(); None in closed loop).

        ``good``: the request is meant to succeed (it counts toward the abort rules).
        """
        due = begin_request(self.state, self.transport, self.sleeper)
        now = time.monotonic()
        if good:
            self.state.pulse(self.transport).attempt(now)
        self.state.stalls.sent(now)
        load = self.state.workload[model]
        index = self._cursor.get(model)
        if index is None:
            index = self._rng.randrange(len(load.items))
        self._cursor[model] = (index + 1) % len(load.items)
        return load, load.items[index], due

    def close(self) -> None:
        if self.sleeper is not None:
            self.sleeper.close()


def http_connection(plan: Plan | None, timeout: float, connect_timeout: float) -> HttpConnection | None:
    """A precise HTTP/1.1 connection to the plan's REST target (None with ``--client stock``)."""
    if plan is None or plan.client != "precise":
        return None
    parts = urlsplit(plan.rest_url)
    return HttpConnection(parts.hostname or LOOPBACK, parts.port or 80, timeout=timeout,
                          connect_timeout=connect_timeout)


def grpc_connection(plan: Plan | None, timeout: float, connect_timeout: float) -> GrpcConnection | None:
    """A precise HTTP/2 gRPC connection to the plan's gRPC target (None with ``--client stock``)."""
    if plan is None or plan.client != "precise":
        return None
    host, _, port = plan.grpc_target.rpartition(":")
    return GrpcConnection(host.strip("[]"), int(port), timeout=timeout, connect_timeout=connect_timeout)


def report(user: Any, request_type: str, name: str, key: SeriesKey, seconds: float, length: int,
           problem: str | Problem | None, good: bool = True, sent_at: float | None = None) -> None:
    """One request to Locust's statistics and the harness's histograms (a failure when ``problem``).

    Locust gets the problem's kind-level error text (its failures table groups by it); the
    harness keeps the detail (model, row, values) among its examples of that kind.
    """
    found = as_problem(problem)
    context = {CONTEXT_KEY: key} if good else {CONTEXT_KEY: key, GOOD_KEY: False}
    if sent_at is not None:
        context[SENT_KEY] = sent_at
    if found is not None:
        context[PROBLEM_KEY] = found
    user.environment.events.request.fire(
        request_type=request_type, name=name, response_time=seconds * 1000.0, response_length=length,
        exception=found.error if found else None, context=context,  # Locust takes a plain string
    )


def send_precise(user: Any, request_type: str, name: str, key: SeriesKey, due: float | None, where: str,
                 exchange: Callable[[], Reply], check: Callable[[Reply], str | Problem | None]) -> None:
    """One request over a precise connection, timed and reported (``where`` names it in a failure)."""
    sent, sent_at = time.monotonic(), time.time()
    try:
        reply = exchange()
    except WireError as exc:
        report(user, request_type, name, key, time.monotonic() - sent + since_intended(due, sent), 0,
               problem_of_exception(exc, where), sent_at=sent_at)
        return
    report(user, request_type, name, key, reply.elapsed + since_intended(due, reply.sent), len(reply.body),
           check(reply), sent_at=sent_at)


def run_time(state: RunState) -> float:
    """The run's duration in seconds (workers learn the master's from the share message)."""
    share = state.share or {}
    value = share.get("run_time") or getattr(state.environment.parsed_options, "run_time", None)
    return float(value or DEFAULT_RUN_TIME_S)


def _schedule(state: RunState, transport: str) -> ArrivalSchedule:
    schedule = state.schedules.get(transport)
    if schedule is None:
        plan = state.plan
        assert plan is not None
        share = state.share or {}
        workers = max(int(share.get("workers", 1)), 1)
        index = int(share.get("index", 0))
        weights = {t: plan.transports[t] for t in state.active_transports()}
        transport_share = shares(weights).get(transport, 0.0)
        base_rate = plan.arrival_rate * transport_share / workers
        duration = run_time(state)

        def rate(t: float) -> float:
            return base_rate * profile(plan.shape, t, duration, plan.steps, plan.spike_factor)

        stream = 7919 * index + (1 if transport == "rest" else 2)
        rng = random.Random(None if plan.seed is None else plan.seed * 1_000_003 + stream)
        phase = index / (base_rate * workers) if plan.arrival == "constant" else 0.0
        schedule = state.schedules[transport] = ArrivalSchedule(
            rate, plan.arrival, start=time.monotonic(), phase=phase, rng=rng
        )
    return schedule


def begin_request(state: RunState, transport: str, sleeper: PreciseSleeper | None) -> float | None:
    """Before each request: enforce the cap, and in open loop wait for the next slot.

    Returns the slot (the intended start, ``time.monotonic()`` seconds) from
    which the caller measures the latency (see :func:`since_intended`); None
    in closed loop.
    """
    if state.plan is None or state.closing or not state.budget.take():
        raise StopUser()
    if state.turns is not None:  # --turn: wait for this run's slot (closed loop only)
        if not state.spawned.is_set():
            state.spawned.wait(SPAWN_WAIT_S)
        state.turns.wait()
    if sleeper is None:
        return None
    if not state.spawned.is_set():
        # The schedule starts once every user exists: a half-spawned pool would fall behind.
        state.spawned.wait(SPAWN_WAIT_S)
    schedule = _schedule(state, transport)
    claimed = time.monotonic()  # this user is free now: a slot older than this waited for one
    due = schedule.claim()
    if due - schedule.start >= run_time(state):
        # The schedule ends with the run: Locust's own stopping (which can block for 0.1 s
        # and more) must not show up as requests that started late.
        state.closing = True
        raise StopUser()
    sleeper.sleep_until(due)
    if state.closing:
        raise StopUser()
    state.lag.record(time.monotonic() - due, claimed - due)
    return due


def since_intended(due: float | None, sent: float) -> float:
    """Open loop: how long after its slot a request went out (seconds, added to its latency); 0 closed."""
    return 0.0 if due is None else max(sent - due, 0.0)


def shape_tick(state: RunState | None, elapsed: float) -> tuple[int, float] | None:
    """The one LoadTestShape's tick at ``elapsed`` s: users, spawn rate; None at -t or --max-requests."""
    if state is None or state.plan is None:
        return None
    plan, environment = state.plan, state.environment
    options = environment.parsed_options
    duration = float(options.run_time or DEFAULT_RUN_TIME_S)
    if state.turns is not None and state.turns.over():
        state.stop_reason = f"the {state.turns.plan.rounds} rounds of --turn are done"
        state.closing = True
        return None
    if elapsed >= duration:
        state.stop_reason = f"run time of {duration:g}s reached"
        state.closing = True
        return None
    done = environment.runner.stats.total.num_requests
    if done >= plan.max_requests or (state.role == "local" and state.budget.exhausted):
        state.stop_reason = f"--max-requests {plan.max_requests} reached"
        state.closing = True
        return None
    peak = int(options.num_users or DEFAULT_USERS)
    spawn_rate = float(options.spawn_rate or peak)
    if plan.open_loop:  # a fixed pool, spawned at once: the schedule starts when it is complete
        return peak, max(spawn_rate, OPEN_LOOP_SPAWN_FACTOR * peak)
    users = users_at(plan.shape, elapsed, duration, peak, plan.steps, plan.spike_factor)
    return users, (spawn_rate if plan.shape == "steady" else max(spawn_rate, float(peak)))
