"""The run's lifecycle: init (state, checks, run folder), test start and stop, quitting.

``init`` is registered at import on Locust's ``events``; it attaches a
:class:`RunState` to the Environment and registers the rest on
``environment.events``: the capture hooks (:mod:`._capture`), ``test_start``
(plan, payloads, per-test reset, the abort guard of :mod:`._abort`; the master
waits for its workers and splits the request cap), ``test_stop`` and
``quitting`` (the final report, :mod:`._report`, and the exit status: 3
aborted, 1 an ``--slo`` breached), and the master/worker messages that hold the
start until every worker has encoded its payloads (and a worker's abort).
Headless runs check the target at init, before any load; the web UI at Start
(``test_start``), so it comes up with the target down and says so there.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from reference.errors import HarnessError
from reporting.runs import new_run

from . import _abort, _bad_traffic, _capture, _report, _turns
from ._cpu import CpuWatch
from ._health import Stalls
from ._models import models_dir_of, served_catalog
from ._options import apply_defaults, apply_plan, fatal
from ._plan import Plan, plan_from_options
from ._preflight import preflight
from ._schedule import LagTracker
from ._state import Budget, RunState, attach
from ._traffic import ensure_workload

log = logging.getLogger("loadtests")

SHARE_MESSAGE = "oip_loadtest_share"
READY_MESSAGE = "oip_loadtest_ready"
PING_MESSAGE = "oip_loadtest_ping"
READY_WAIT_S = 120.0
GRPC_THREADS = 512
GIL_SWITCH_INTERVAL_S = 0.0002


def _role(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


@functools.cache  # once per process: it concerns the process's gRPC core, not a run
def _init_grpc_for_gevent() -> None:
    """gRPC's blocking calls must yield to gevent: set up before any channel exists.

    Done in the init hook, because that runs after ``--processes`` forks: gRPC's
    core must not be started in a process that forks afterwards (the children's
    gRPC calls could hang).
    """
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()
    # Under gevent, gRPC waits for each call's completion in a thread of gevent's pool:
    # let every gRPC user have one (the default 10 would queue calls inside the client),
    # and hand the GIL back quickly when such a thread needs it (the default 5 ms
    # switch interval stalls the gevent loop, and so every user, by up to 5 ms).
    hub = gevent.get_hub()
    hub.threadpool.maxsize = max(hub.threadpool.maxsize, GRPC_THREADS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


@events.init.add_listener
def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    state = attach(environment, _role(runner))
    options = environment.parsed_options
    if options is None or not state.user_classes:
        return  # used as a library, not by `locust -f loadtests/`
    _init_grpc_for_gevent()
    if state.role == "master":  # first: workers may report while this hook still runs
        runner.register_message(READY_MESSAGE, lambda msg, **_: state.ready_workers.add(msg.node_id))
        runner.register_message(_abort.ABORT_MESSAGE, lambda msg, **_: _abort.on_abort_message(state, msg))
    elif state.role == "worker":
        runner.register_message(SHARE_MESSAGE, lambda msg, **_: setattr(state, "share", dict(msg.data or {})))
        runner.register_message(PING_MESSAGE, lambda msg, **_: _say_ready(state))
    _capture.install(state)
    _bad_traffic.install(state)
    environment.events.test_start.add_listener(lambda **_: on_test_start(state))
    environment.events.test_stop.add_listener(lambda **_: on_test_stop(state))
    environment.events.quitting.add_listener(lambda **_: on_quitting(state))
    try:
        plan = _plan_of(options)
        apply_plan(state, plan)
        _guard_options(state, options)
        _take_turns(state, options, plan)
        _bad_traffic.configure(state, options, plan)
        if state.role != "worker":
            apply_defaults(options)
            if _headless(options):  # the web UI checks the target at Start: a host can be typed in first
                preflight(plan, state.active_transports())
        ensure_workload(state, plan)
        _bad_traffic.prepare(state, plan)
    except HarnessError as exc:
        fatal(state, str(exc))
        return
    state.plan = plan
    state.cpu = CpuWatch()
    state.cpu.start()
    if state.role == "worker":
        # Workers connect to the master before this hook has encoded the payloads; the
        # master holds the start until every worker says it is ready (see _wait_for_workers).
        state.initialised = True
        _say_ready(state)
        return
    if state.role == "local" and len(state.active_transports()) > int(options.num_users):
        log.warning("-u %s is fewer than the %d user classes: some transport gets no load",
                    options.num_users, len(state.active_transports()))
    _open_run(state)


def _headless(options: Any) -> bool:
    return bool(getattr(options, "headless", False))


def _guard_options(state: RunState, options: Any) -> None:
    """--abort-when / --no-abort, --slo / --slo-abort (a rule that does not parse: PlanError, exit 2)."""
    state.rules = _abort.rules_of(options)
    state.slos = _abort.slos_of(options)
    state.slo_abort = bool(getattr(options, "slo_abort", False))
    if state.slo_abort and not state.slos:
        raise HarnessError("--slo-abort needs at least one --slo threshold")


def _take_turns(state: RunState, options: Any, plan: Plan) -> None:
    """--turn: send in this run's slots only (:mod:`._turns`); PlanError on options that do not fit."""
    turns = _turns.turn_plan_from_options(options)
    if turns is not None:
        _turns.check_compatible(turns, options, plan.arrival_rate, state.role)
        state.turns = _turns.Turns(turns)


def _plan_of(options: Any) -> Plan:
    """The run's plan: the options, and the models the target serves (``--models-dir``)."""
    return plan_from_options(options, served_catalog(options), models_dir_of(options))


def _say_ready(state: RunState) -> None:
    """Worker: tell the master the payloads are encoded (again when it pings)."""
    if state.initialised:
        state.environment.runner.send_message(READY_MESSAGE, {"pid": os.getpid()})


def _open_run(state: RunState) -> None:
    options = state.environment.parsed_options
    root = Path(options.reports_root) if options.reports_root else None
    state.run = new_run("loadtest", root=root) if root else new_run("loadtest")
    if not options.html_file:
        options.html_file = str(state.run.path / "locust.html")
    if not options.csv_prefix:
        _report.start_csv(state)
    log.info("run folder: %s", state.run.path)
    _report.write_report(state, final=False)
    # The report writer imports matplotlib (a second or more): now, not when an aborted run must end fast.
    import reporting.writer  # noqa: F401


def _wait_for_workers(state: RunState, runner: Any) -> None:
    """Master: hold the start until every connected worker has encoded its payloads."""
    deadline = time.monotonic() + READY_WAIT_S
    logged = False
    while True:
        clients = {c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning}
        waiting = clients - state.ready_workers
        if not waiting:
            return
        if time.monotonic() > deadline:
            log.warning("%d worker(s) not ready after %.0fs; starting anyway", len(waiting), READY_WAIT_S)
            return
        if not logged:
            log.info("waiting for %d worker(s) to encode their payloads", len(waiting))
            logged = True
        for client_id in waiting:  # in case a ready message came before the master listened
            runner.send_message(PING_MESSAGE, None, client_id=client_id)
        gevent.sleep(0.5)


def _send_shares(state: RunState, runner: Any, plan: Plan) -> None:
    """Master: each worker's share of the request cap, its index and the run time."""
    clients = runner.clients.ready + runner.clients.running + runner.clients.spawning
    workers = max(len(clients), 1)
    state.workers = workers
    for index, client in enumerate(sorted(clients, key=lambda c: c.id)):
        runner.send_message(SHARE_MESSAGE, {
            "workers": workers,
            "index": index,
            "max_requests": math.ceil(plan.max_requests / workers),
            "run_time": runner.environment.parsed_options.run_time,
        }, client_id=client.id)


def on_test_start(state: RunState) -> None:
    environment = state.environment
    try:
        plan = _plan_of(environment.parsed_options)
        apply_plan(state, plan)
        _guard_options(state, environment.parsed_options)
        if state.role != "master":
            ensure_workload(state, plan)
        if state.role != "worker" and not _headless(environment.parsed_options):
            preflight(plan, state.active_transports())  # the web UI: the host typed in, checked at Start
    except HarnessError as exc:
        state.plan, state.invalid = None, str(exc)
        log.error("not starting: %s", exc)  # the web UI shows it in its log; the shape stops the test
        return
    state.plan, state.invalid = plan, None
    if state.role != "worker":
        _report.keep_previous_report(state)
    state.book.clear()
    state.lag = LagTracker(plan.late_ms * 1000)
    state.schedules = {}
    state.spawned = gevent.event.Event()
    state.started_wall, state.stopped_wall, state.stop_reason = time.time(), None, None
    state.warned_behind = False
    state.closing = False
    state.failures.clear()
    state.pulses, state.stalls = {}, Stalls()
    state.aborted, state.abort_sent, state.slo_results = None, False, []
    share = state.share if state.role == "worker" else None
    state.budget = Budget(int(share["max_requests"]) if share else plan.max_requests)
    if state.cpu is not None:
        state.cpu.reset()
        state.cpu.active = True
    if state.role == "master":
        state.worker_cpu = {}
        _wait_for_workers(state, environment.runner)
        state.started_wall = time.time()
        _send_shares(state, environment.runner, plan)
    if state.role != "worker" and state.report_greenlet is None:
        state.report_greenlet = gevent.spawn(_report.report_loop, state)
    _abort.start(state)
    _bad_traffic.start(state)


def on_test_stop(state: RunState) -> None:
    state.stopped_wall = time.time()
    if state.guard_greenlet is not None:
        state.guard_greenlet.kill(block=False)
        state.guard_greenlet = None
    _bad_traffic.stop(state)
    if state.cpu is not None:
        state.cpu.active = False
    if state.role == "local":
        _report.write_report(state, final=False)  # final at quitting; a stopped web-UI test is reported now


def on_quitting(state: RunState) -> None:
    if state.cpu is not None:
        state.cpu.stop()
    if state.role == "worker" or state.run is None:
        return
    _report.finish(state)
    code = _abort.exit_code(state, any(not r["ok"] for r in state.slo_results) or _bad_traffic.failed(state))
    if code is not None and state.environment.process_exit_code is None:
        state.environment.process_exit_code = code
