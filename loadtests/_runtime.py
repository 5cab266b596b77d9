"""What cuts across the load-test users: options, checks, the histograms, the report.

Locust event hooks, registered when the locustfile imports this module:

* ``init_command_line_parser``: the harness's options (``--mix``,
  ``--transports``, ...), which show in ``--help`` and in the web UI, and
  loopback defaults (``--host`` from settings.json, web UI and master bound to
  127.0.0.1);
* ``init``: validate the options, check the target answers on every asked-for
  transport and model (before any load), encode the payloads, create the run
  folder (``reports/loadtest/<run-id>/``) and point Locust's CSV/HTML there;
* ``request``: every request's latency into the HDR book (microseconds);
* ``report_to_master`` / ``worker_report``: workers ship their histograms
  (encoded deltas) to the master, which merges them;
* ``test_start`` / ``test_stop`` / ``quitting``: reset, then write
  ``latency.json`` (also every few seconds while running, so a crashed run
  leaves a partial report), with warnings when the generator's CPU saturated
  or it fell behind its open-loop schedule.

One ``STATE`` per process. The users call :func:`begin_request` before each
request (request cap, open-loop slot) and read payloads from ``STATE.workload``.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
import psutil
from locust import events
from locust.exception import CatchResponseError, StopUser
from locust.runners import MasterRunner, WorkerRunner

from oip.precise import GrpcConnection, HttpConnection, Reply, WireError
from reference.errors import HarnessError
from reporting.latency import LatencyBook, SeriesKey, WireFormatError
from reporting.runs import Run, new_run
from reporting.summary import summary_from_loadtest
from reporting.writer import write_report as write_summary_report

from ._plan import (
    ARRIVALS,
    CLIENTS,
    DEFAULT_LATE_MS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MIX,
    DEFAULT_RUN_TIME_S,
    DEFAULT_TRANSPORTS,
    DEFAULT_USERS,
    PATH_STYLES,
    SHAPES,
    Plan,
    PlanError,
    integer_weights,
    plan_from_options,
    shares,
    users_at,
)
from ._schedule import ArrivalSchedule, LagTracker, PreciseSleeper
from ._workload import ModelLoad, build_workload

log = logging.getLogger("loadtests")

REPORT_FILE = "latency.json"
REPORT_SCHEMA = 1
PARTIAL_REPORT_EVERY_S = 10.0
CPU_SAMPLE_EVERY_S = 1.0
CPU_SATURATED_PERCENT = 90.0
LATE_FRACTION_WARN = 0.01
PREFLIGHT_TIMEOUT_S = 3.0
SHARE_MESSAGE = "oip_loadtest_share"
READY_MESSAGE = "oip_loadtest_ready"
PING_MESSAGE = "oip_loadtest_ping"
READY_WAIT_S = 120.0
WIRE_KEY = "oip_loadtest"
EXIT_BAD_OPTIONS = 2
SPAWN_WAIT_S = 30.0
GRPC_THREADS = 512
GIL_SWITCH_INTERVAL_S = 0.0002
OPEN_LOOP_SPAWN_FACTOR = 10.0  # open loop spawns its whole pool in 1/10 s


# --------------------------------------------------------------------- state


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


class CpuWatch:
    """Samples this process's CPU (psutil) while a test runs."""

    def __init__(self) -> None:
        self.samples = 0
        self.saturated_samples = 0
        self.max_percent = 0.0
        self.total_percent = 0.0
        self._process = psutil.Process()
        self._greenlet: gevent.Greenlet | None = None
        self.active = False

    def start(self) -> None:
        if self._greenlet is None:
            self._process.cpu_percent(None)
            self._greenlet = gevent.spawn(self._loop)

    def reset(self) -> None:
        self.samples = self.saturated_samples = 0
        self.max_percent = self.total_percent = 0.0
        self._process.cpu_percent(None)

    def _loop(self) -> None:
        while True:
            gevent.sleep(CPU_SAMPLE_EVERY_S)
            percent = self._process.cpu_percent(None)
            if not self.active:
                continue
            self.samples += 1
            self.total_percent += percent
            self.max_percent = max(self.max_percent, percent)
            if percent >= CPU_SATURATED_PERCENT:
                self.saturated_samples += 1

    def snapshot(self) -> dict[str, Any]:
        return {"samples": self.samples, "saturated_samples": self.saturated_samples,
                "max_percent": round(self.max_percent, 1),
                "mean_percent": round(self.total_percent / self.samples, 1) if self.samples else 0.0}


@dataclass
class State:
    role: str = "local"  # local | master | worker
    environment: Any = None
    plan: Plan | None = None
    invalid: str | None = None
    workload: dict[str, ModelLoad] = field(default_factory=dict)
    workload_key: tuple | None = None
    book: LatencyBook = field(default_factory=LatencyBook)
    lag: LagTracker = field(default_factory=lambda: LagTracker(DEFAULT_LATE_MS * 1000))
    budget: Budget = field(default_factory=lambda: Budget(DEFAULT_MAX_REQUESTS))
    schedules: dict[str, ArrivalSchedule] = field(default_factory=dict)
    share: dict[str, Any] | None = None
    cpu: CpuWatch | None = None
    worker_cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_imprecise_timers: bool = False
    run: Run | None = None
    started_wall: float | None = None
    stopped_wall: float | None = None
    stop_reason: str | None = None
    user_classes: dict[str, type] = field(default_factory=dict)  # transport -> User class
    selected_classes: list[type] | None = None
    csv_writer: Any = None
    csv_prefix: str | None = None
    csv_greenlet: gevent.Greenlet | None = None
    report_greenlet: gevent.Greenlet | None = None
    warned_behind: bool = False
    closing: bool = False  # the run is ending: users send nothing more
    workers: int = 0  # master: how many workers the test started with
    grpc_ready: bool = False
    ready_workers: set[str] = field(default_factory=set)  # master: workers done with their init
    initialised: bool = False  # worker: init hook done
    tests: int = 0  # tests already finished in this process (web UI: start, stop, start again)
    spawned: gevent.event.Event = field(default_factory=lambda: gevent.event.Event())
    precise_timers: bool = True


STATE = State()


def register_users(classes: dict[str, type]) -> None:
    """The locustfile's User class per transport; each has ``model_tasks`` {model: task}."""
    STATE.user_classes = dict(classes)


# ------------------------------------------------------------------- options


def _settings_ports() -> tuple[int, int]:
    try:
        from reference.config import load_server_settings
        from reference.paths import SETTINGS_FILE

        settings = load_server_settings(SETTINGS_FILE)
        return int(settings.get("http_port", 8080)), int(settings.get("grpc_port", 8081))
    except (HarnessError, OSError, ValueError):
        return 8080, 8081


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_: Any) -> None:
    http_port, grpc_port = _settings_ports()
    parser.add_argument("--mix", default=DEFAULT_MIX, metavar="MODEL=W,...",
                        help="models and their share of requests, e.g. mnist-svm=3,mushroom-xgboost=1")
    parser.add_argument("--transports", default=DEFAULT_TRANSPORTS, metavar="T[=W],...",
                        help="rest, grpc or both, optionally weighted (rest=3,grpc=1): the share of users "
                             "(closed loop) or of the arrival rate (open loop)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="ROWS",
                        help="held-out rows per inference request")
    parser.add_argument("--path-style", default="versioned", choices=PATH_STYLES,
                        help="infer at /v2/models/M/versions/V/infer (versioned) or /v2/models/M/infer")
    parser.add_argument("--grpc-host", default=f"127.0.0.1:{grpc_port}", metavar="HOST:PORT",
                        help="the V2 gRPC endpoint (default: grpc_port of settings.json)")
    parser.add_argument("--client", default="precise", choices=CLIENTS,
                        help="precise: the harness's lean HTTP/1.1 and HTTP/2 clients, timed to the kernel's "
                             "receive stamp (default); stock: FastHttpUser's client and grpcio, as a plain "
                             "Locust script would (their timings read 0.3-1 ms high)")
    parser.add_argument("--shape", default="steady", choices=SHAPES,
                        help="load over time: steady, ramp, step or spike (-u is the peak)")
    parser.add_argument("--steps", type=int, default=4, help="number of steps of --shape step")
    parser.add_argument("--spike-factor", type=float, default=4.0,
                        help="peak / baseline of --shape spike")
    parser.add_argument("--arrival-rate", type=float, default=0.0, metavar="RPS",
                        help="open loop: total requests per second on a fixed schedule, latency measured "
                             "from each request's intended start (-u is then the in-flight limit); "
                             "0 = closed loop")
    parser.add_argument("--arrival", default="constant", choices=ARRIVALS,
                        help="open-loop arrivals: evenly spaced (constant) or poisson")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                        help="stop after this many requests in total")
    parser.add_argument("--late-ms", type=float, default=DEFAULT_LATE_MS,
                        help="open loop: a request starting later than this after its slot is late")
    parser.add_argument("--seed", type=int, default=None, help="seed for row order and Poisson arrivals")
    parser.add_argument("--reports-root", default="", metavar="DIR",
                        help="where run folders go (default: reports/ of the harness)")
    parser.add_argument("--allow-remote", action="store_true", default=False,
                        help="allow a target that is not on loopback (only for servers you own)")
    # Loopback defaults: the reference deployment, and no listener on other interfaces.
    parser.set_defaults(host=f"http://127.0.0.1:{http_port}", web_host="127.0.0.1",
                        master_bind_host="127.0.0.1")


def _fatal(message: str) -> None:
    """Refuse to start: one clear line, non-zero exit, before any load is sent."""
    if STATE.role != "worker":
        print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_OPTIONS)


def _apply_defaults(options: Any) -> None:
    """Bound every run: a duration and a user count when none is given."""
    if not options.run_time:
        options.run_time = DEFAULT_RUN_TIME_S
        log.info("no --run-time given: the run stops after %ss (pass -t to change)", DEFAULT_RUN_TIME_S)
    if not options.num_users:
        options.num_users = DEFAULT_USERS
    if not options.spawn_rate:
        options.spawn_rate = float(options.num_users)
    if getattr(options, "master", False) and not options.expect_workers_max_wait:
        options.expect_workers_max_wait = 60


def apply_plan(environment: Any, plan: Plan) -> None:
    """Set task weights (--mix), user weights (--transports) and the user classes that run."""
    if STATE.selected_classes is None:
        STATE.selected_classes = list(environment.user_classes)
    active_transports = []
    for transport, cls in STATE.user_classes.items():
        tasks: list[Callable] = []
        models = {m: w for m, w in plan.mix.items() if plan.selected(m, transport)}
        if transport in plan.transports and models:
            for model, count in integer_weights(models).items():
                tasks += [cls.model_tasks[model]] * count
        cls.tasks = tasks
        if tasks and cls in STATE.selected_classes:
            active_transports.append(transport)
    if not active_transports:
        raise PlanError(
            "no user class is left to run: check --transports, --tags and the User classes named on the "
            f"command line (available: {', '.join(c.__name__ for c in STATE.user_classes.values())})"
        )
    weights = integer_weights({t: plan.transports[t] for t in active_transports})
    for transport, cls in STATE.user_classes.items():
        cls.weight = weights.get(transport, 0)
    environment.user_classes[:] = [STATE.user_classes[t] for t in active_transports]


def active_transports() -> list[str]:
    return [t for t, cls in STATE.user_classes.items() if cls.tasks and cls.weight > 0]


# ----------------------------------------------------------------- preflight


def _http_status(url: str, path: str) -> int:
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=PREFLIGHT_TIMEOUT_S)
    try:
        connection.request("GET", (parts.path or "") + path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def preflight(plan: Plan, transports: list[str]) -> None:
    """Check the target serves every model of the mix on every transport asked for."""
    from oip.rest import model_path
    from reference.catalog import MODELS

    versions = {m: (MODELS[m].version if plan.versioned else "") for m in plan.mix}
    if "rest" in transports:
        try:
            status = _http_status(plan.rest_url, "/v2/health/live")
        except OSError as exc:
            raise PlanError(
                f"cannot reach the REST endpoint {plan.rest_url} ({exc}): start the deployment "
                "(python -m reference serve) or point --host at the server"
            ) from None
        if status != 200:
            raise PlanError(f"{plan.rest_url}/v2/health/live answered HTTP {status}, not 200: "
                            "is --host a V2 (Open Inference Protocol) server?")
        for model, version in versions.items():
            path = model_path(model, version or None, "/ready")
            try:
                status = _http_status(plan.rest_url, path)
            except OSError as exc:
                raise PlanError(f"{plan.rest_url}{path} failed ({exc})") from None
            if status != 200:
                what = f"{model} version {version}" if version else model
                raise PlanError(
                    f"{plan.rest_url}{path} answered HTTP {status}: the server does not serve {what} "
                    "(or it is not ready); remove it from --mix or fix the deployment"
                    + ("" if not version else ", or try --path-style unversioned")
                )
    if "grpc" in transports:
        import grpc

        from oip.grpc_client import GrpcClient

        with GrpcClient(plan.grpc_target, timeout=PREFLIGHT_TIMEOUT_S) as client:
            try:
                client.live()
            except grpc.RpcError as exc:
                raise PlanError(
                    f"no gRPC endpoint answers at {plan.grpc_target} ({exc.code().name}): pass "
                    "--grpc-host HOST:PORT of the server's gRPC port, or --transports rest"
                ) from None
            for model, version in versions.items():
                what = f"{model} version {version}" if version else model
                try:
                    ready = client.model_ready(model, version).ready
                except grpc.RpcError as exc:
                    raise PlanError(
                        f"the gRPC endpoint {plan.grpc_target} does not serve {what} "
                        f"({exc.code().name}: {exc.details()}); remove it from --mix or fix the deployment"
                    ) from None
                if not ready:
                    raise PlanError(f"{what} is not ready on the gRPC endpoint {plan.grpc_target}")


# ---------------------------------------------------------------- workload


def ensure_workload(plan: Plan) -> None:
    key = (tuple(sorted(plan.mix)), plan.batch_size, plan.versioned, plan.rest_url)
    if key != STATE.workload_key:
        started = time.perf_counter()
        STATE.workload = build_workload(sorted(plan.mix), plan.batch_size, plan.versioned,
                                        rest_url=plan.rest_url)
        STATE.workload_key = key
        log.info("encoded %s in %.1fs", ", ".join(f"{len(w.items)} {m} requests"
                                                  for m, w in STATE.workload.items()),
                 time.perf_counter() - started)


# -------------------------------------------------------------- user support


_LANE_NUMBERS = itertools.count()


class Lane:
    """A user's own state: where it is in each model's rows, and its open-loop sleeper."""

    def __init__(self, transport: str) -> None:
        plan = STATE.plan
        self.transport = transport
        seed = None if plan is None or plan.seed is None else plan.seed * 1_000_003 + next(_LANE_NUMBERS)
        self._rng = random.Random(seed)
        self._cursor: dict[str, int] = {}
        self.sleeper = PreciseSleeper() if plan is not None and plan.open_loop else None
        if self.sleeper is not None and not self.sleeper.precise:
            STATE.precise_timers = False

    def next(self, model: str) -> tuple[ModelLoad, Any, float | None]:
        """Claim a request: (model load, item, intended start as time.monotonic(); None in closed loop)."""
        due = begin_request(self.transport, self.sleeper)
        load = STATE.workload[model]
        index = self._cursor.get(model)
        if index is None:
            index = self._rng.randrange(len(load.items))
        self._cursor[model] = (index + 1) % len(load.items)
        return load, load.items[index], due

    def close(self) -> None:
        if self.sleeper is not None:
            self.sleeper.close()


def http_connection(timeout: float, connect_timeout: float) -> HttpConnection | None:
    """A precise HTTP/1.1 connection to the plan's REST target (None with ``--client stock``)."""
    plan = STATE.plan
    if plan is None or plan.client != "precise":
        return None
    parts = urlsplit(plan.rest_url)
    return HttpConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout,
                          connect_timeout=connect_timeout)


def grpc_connection(timeout: float, connect_timeout: float) -> GrpcConnection | None:
    """A precise HTTP/2 gRPC connection to the plan's gRPC target (None with ``--client stock``)."""
    plan = STATE.plan
    if plan is None or plan.client != "precise":
        return None
    host, _, port = plan.grpc_target.rpartition(":")
    return GrpcConnection(host.strip("[]"), int(port), timeout=timeout, connect_timeout=connect_timeout)


def report(user: Any, request_type: str, name: str, key: SeriesKey, seconds: float, length: int,
           problem: str | None) -> None:
    """One request to Locust's statistics and the harness's histograms (a failure when ``problem``)."""
    user.environment.events.request.fire(
        request_type=request_type, name=name, response_time=seconds * 1000.0, response_length=length,
        exception=CatchResponseError(problem) if problem else None, context={"oip_key": key},
    )


def send_precise(user: Any, request_type: str, name: str, key: SeriesKey, due: float | None, where: str,
                 exchange: Callable[[], Reply], check: Callable[[Reply], str | None]) -> None:
    """One request over a precise connection, timed and reported (``where`` names it in a failure)."""
    sent = time.monotonic()
    try:
        reply = exchange()
    except WireError as exc:
        report(user, request_type, name, key, time.monotonic() - sent + since_intended(due, sent), 0,
               f"{where}: {exc}")
        return
    report(user, request_type, name, key, reply.elapsed + since_intended(due, reply.sent), len(reply.body),
           check(reply))


def _schedule(transport: str) -> ArrivalSchedule:
    schedule = STATE.schedules.get(transport)
    if schedule is None:
        plan = STATE.plan
        assert plan is not None
        share = STATE.share or {}
        workers = max(int(share.get("workers", 1)), 1)
        index = int(share.get("index", 0))
        transport_share = shares({t: plan.transports[t] for t in active_transports()}).get(transport, 0.0)
        base_rate = plan.arrival_rate * transport_share / workers
        duration = _run_time()

        def rate(t: float) -> float:
            return base_rate * _profile_value(plan, t, duration)

        stream = 7919 * index + (1 if transport == "rest" else 2)
        rng = random.Random(None if plan.seed is None else plan.seed * 1_000_003 + stream)
        phase = index / (base_rate * workers) if plan.arrival == "constant" else 0.0
        schedule = STATE.schedules[transport] = ArrivalSchedule(
            rate, plan.arrival, start=time.monotonic(), phase=phase, rng=rng
        )
    return schedule


def _run_time() -> float:
    """The run's duration in seconds (workers learn the master's from the share message)."""
    share = STATE.share or {}
    value = share.get("run_time") or getattr(STATE.environment.parsed_options, "run_time", None)
    return float(value or DEFAULT_RUN_TIME_S)


def _profile_value(plan: Plan, t: float, duration: float) -> float:
    from ._plan import profile

    return profile(plan.shape, t, duration, plan.steps, plan.spike_factor)


def begin_request(transport: str, sleeper: PreciseSleeper | None) -> float | None:
    """Before each request: enforce the cap, and in open loop wait for the next slot.

    Returns the slot (the intended start, ``time.monotonic()`` seconds) from
    which the caller measures the latency (see :func:`since_intended`); None
    in closed loop.
    """
    if STATE.plan is None or STATE.closing or not STATE.budget.take():
        raise StopUser()
    if sleeper is None:
        return None
    if not STATE.spawned.is_set():
        # The schedule starts once every user exists: a half-spawned pool would fall behind.
        STATE.spawned.wait(SPAWN_WAIT_S)
    schedule = _schedule(transport)
    due = schedule.claim()
    if due - schedule.start >= _run_time():
        # The schedule ends with the run: Locust's own stopping (which can block for 0.1 s
        # and more) must not show up as requests that started late.
        STATE.closing = True
        raise StopUser()
    sleeper.sleep_until(due)
    if STATE.closing:
        raise StopUser()
    STATE.lag.record(time.monotonic() - due)
    return due


def since_intended(due: float | None, sent: float) -> float:
    """Open loop: how long after its slot a request went out (seconds, added to its latency); 0 closed."""
    return 0.0 if due is None else max(sent - due, 0.0)


# --------------------------------------------------------------------- shape


def shape_tick(shape: Any) -> tuple[int, float] | None:
    """The one LoadTestShape's tick: users over time, the duration and the request cap."""
    environment = STATE.environment
    plan = STATE.plan
    if plan is None or environment is None:
        return None
    options = environment.parsed_options
    duration = float(options.run_time or DEFAULT_RUN_TIME_S)
    t = shape.get_run_time()
    if t >= duration:
        STATE.stop_reason = f"run time of {duration:g}s reached"
        STATE.closing = True
        return None
    done = environment.runner.stats.total.num_requests
    if done >= plan.max_requests or (STATE.role == "local" and STATE.budget.exhausted):
        STATE.stop_reason = f"--max-requests {plan.max_requests} reached"
        STATE.closing = True
        return None
    peak = int(options.num_users or DEFAULT_USERS)
    spawn_rate = float(options.spawn_rate or peak)
    if plan.open_loop:  # a fixed pool, spawned at once: the schedule starts when it is complete
        return peak, max(spawn_rate, OPEN_LOOP_SPAWN_FACTOR * peak)
    users = users_at(plan.shape, t, duration, peak, plan.steps, plan.spike_factor)
    return users, (spawn_rate if plan.shape == "steady" else max(spawn_rate, float(peak)))


# --------------------------------------------------------------------- hooks


def _role(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _init_grpc_for_gevent() -> None:
    """gRPC's blocking calls must yield to gevent: set up before any channel exists.

    Done here, in the init hook, because that runs after ``--processes`` forks:
    gRPC's core must not be started in a process that forks afterwards (the
    children's gRPC calls could hang).
    """
    import grpc.experimental.gevent as grpc_gevent

    if not STATE.grpc_ready:
        grpc_gevent.init_gevent()
        STATE.grpc_ready = True
        # Under gevent, gRPC waits for each call's completion in a thread of gevent's pool:
        # let every gRPC user have one (the default 10 would queue calls inside the client),
        # and hand the GIL back quickly when such a thread needs it (the default 5 ms
        # switch interval stalls the gevent loop, and so every user, by up to 5 ms).
        hub = gevent.get_hub()
        hub.threadpool.maxsize = max(hub.threadpool.maxsize, GRPC_THREADS)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    _init_grpc_for_gevent()
    STATE.environment = environment
    STATE.role = _role(runner)
    if STATE.role == "master":  # first: workers may report while this hook still runs
        runner.register_message(READY_MESSAGE, _on_worker_ready)
    elif STATE.role == "worker":
        runner.register_message(SHARE_MESSAGE, _on_share)
        runner.register_message(PING_MESSAGE, _on_ping)
    options = environment.parsed_options
    if options is None or not STATE.user_classes:
        return  # used as a library, not by `locust -f loadtests/`
    try:
        plan = plan_from_options(options)
        apply_plan(environment, plan)
        if STATE.role != "worker":
            _apply_defaults(options)
            preflight(plan, active_transports())
        ensure_workload(plan)
    except HarnessError as exc:
        _fatal(str(exc))
        return
    STATE.plan = plan
    STATE.cpu = CpuWatch()
    STATE.cpu.start()
    if STATE.role == "worker":
        # Workers connect to the master before this hook has encoded the payloads; the
        # master holds the start until every worker says it is ready (see _wait_for_workers).
        STATE.initialised = True
        runner.send_message(READY_MESSAGE, {"pid": os.getpid()})
        return
    if STATE.role == "local" and len(active_transports()) > int(options.num_users):
        log.warning("-u %s is fewer than the %d user classes: some transport gets no load",
                    options.num_users, len(active_transports()))
    _open_run(environment)


def _open_run(environment: Any) -> None:
    options = environment.parsed_options
    root = Path(options.reports_root) if options.reports_root else None
    STATE.run = new_run("loadtest", root=root) if root else new_run("loadtest")
    path = STATE.run.path
    if not options.html_file:
        options.html_file = str(path / "locust.html")
    if not options.csv_prefix:
        from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

        # Locust made its own (non-writing) CSV writer before this hook ran: write ours beside it.
        # options.csv_prefix must stay unset, or Locust would also start its writer.
        STATE.csv_prefix = str(path / "locust")
        STATE.csv_writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, STATE.csv_prefix,
                                              options.stats_history_enabled)
        STATE.csv_greenlet = gevent.spawn(STATE.csv_writer.stats_writer)
    log.info("run folder: %s", path)
    write_report(final=False)


def _on_worker_ready(environment: Any, msg: Any, **_: Any) -> None:
    STATE.ready_workers.add(msg.node_id)


def _on_ping(environment: Any, msg: Any, **_: Any) -> None:
    if STATE.initialised:
        environment.runner.send_message(READY_MESSAGE, {"pid": os.getpid()})


def _wait_for_workers(runner: Any) -> None:
    """Master: hold the start until every connected worker has encoded its payloads."""
    deadline = time.monotonic() + READY_WAIT_S
    logged = False
    while True:
        clients = {c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning}
        waiting = clients - STATE.ready_workers
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


def _on_share(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master's split of the request cap and arrival rate."""
    STATE.share = dict(msg.data or {})


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    if not STATE.user_classes or environment.parsed_options is None:
        return
    try:
        plan = plan_from_options(environment.parsed_options)
        apply_plan(environment, plan)
        if STATE.role != "master":
            ensure_workload(plan)
    except HarnessError as exc:
        STATE.plan, STATE.invalid = None, str(exc)
        log.error("not starting: %s", exc)
        return
    STATE.plan, STATE.invalid = plan, None
    if STATE.role != "worker":
        _keep_previous_report()
    STATE.book.clear()
    STATE.lag = LagTracker(plan.late_ms * 1000)
    STATE.schedules = {}
    STATE.spawned = gevent.event.Event()
    STATE.started_wall, STATE.stopped_wall, STATE.stop_reason = time.time(), None, None
    STATE.warned_behind = False
    STATE.closing = False
    share = STATE.share if STATE.role == "worker" else None
    STATE.budget = Budget(int(share["max_requests"]) if share else plan.max_requests)
    if STATE.cpu is not None:
        STATE.cpu.reset()
        STATE.cpu.active = True
    if STATE.role == "master":
        STATE.worker_cpu = {}
        _wait_for_workers(environment.runner)
        STATE.started_wall = time.time()
        _send_shares(environment.runner, plan)
    if STATE.role != "worker" and STATE.report_greenlet is None:
        STATE.report_greenlet = gevent.spawn(_report_loop)


def _keep_previous_report() -> None:
    """A new test in the same Locust process (web UI): keep the last one's report beside it."""
    if STATE.run is None or STATE.started_wall is None:
        return
    STATE.tests += 1
    current = STATE.run.file(REPORT_FILE)
    if current.exists():
        current.replace(STATE.run.file(f"latency-test{STATE.tests}.json"))


def _send_shares(runner: Any, plan: Plan) -> None:
    clients = runner.clients.ready + runner.clients.running + runner.clients.spawning
    workers = max(len(clients), 1)
    STATE.workers = workers
    for index, client in enumerate(sorted(clients, key=lambda c: c.id)):
        runner.send_message(SHARE_MESSAGE, {
            "workers": workers,
            "index": index,
            "max_requests": math.ceil(plan.max_requests / workers),
            "run_time": runner.environment.parsed_options.run_time,
        }, client_id=client.id)


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count: int, **_: Any) -> None:
    STATE.spawned.set()
    if STATE.environment is not None and STATE.environment.reset_stats:
        _on_reset_stats()  # --reset-stats: Locust forgets the ramp-up; so do the histograms


@events.reset_stats.add_listener
def _on_reset_stats(**_: Any) -> None:
    """Locust's stats were reset (web UI button, --reset-stats): restart the histograms too."""
    STATE.book.clear()
    STATE.lag = LagTracker(STATE.lag.late_threshold_us)
    if STATE.started_wall is not None:
        STATE.started_wall = time.time()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    STATE.stopped_wall = time.time()
    if STATE.cpu is not None:
        STATE.cpu.active = False
    if STATE.role == "local":
        write_report(final=False)  # final at quitting; a stopped web-UI test is reported now


@events.request.add_listener
def _on_request(response_time: float, exception: Any = None, context: Any = None, **_: Any) -> None:
    key = context.get("oip_key") if context else None
    if key is not None:
        STATE.book.record_key(key, response_time * 1000.0, exception is None)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[WIRE_KEY] = {
        "book": STATE.book.take().to_wire(),
        "lag": STATE.lag.take().to_wire(),
        "cpu": STATE.cpu.snapshot() if STATE.cpu else None,
        "precise_timers": STATE.precise_timers,
    }


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    payload = data.get(WIRE_KEY)
    if not payload:
        return
    try:
        STATE.book.merge(LatencyBook.from_wire(payload["book"]))
        if payload.get("lag"):
            STATE.lag.merge(LagTracker.from_wire(payload["lag"]))
    except (WireFormatError, KeyError) as exc:
        log.error("could not merge the latency histograms of worker %s: %s", client_id, exc)
        return
    if payload.get("cpu"):
        STATE.worker_cpu[client_id] = payload["cpu"]
    if payload.get("precise_timers") is False:
        STATE.worker_imprecise_timers = True


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if STATE.role == "worker" or STATE.run is None:
        return
    if STATE.report_greenlet is not None:
        STATE.report_greenlet.kill(block=False)
    if STATE.stopped_wall is None and STATE.started_wall is not None:
        STATE.stopped_wall = time.time()
    document = write_report(final=True)
    _finish_csv()
    _write_summary(document)
    _print_summary(document)


def _write_summary(document: dict[str, Any] | None) -> None:
    """summary.json, report.md and plots beside latency.json, by the harness's one report writer."""
    if document is None or STATE.run is None:
        return
    try:
        write_summary_report(STATE.run, summary_from_loadtest(document, STATE.run.path))
    except Exception as exc:  # latency.json and Locust's files are already written
        log.warning("could not write report.md/summary.json in %s: %s", STATE.run.path, exc)


def _report_loop() -> None:
    """Rewrite the partial report while data comes in (workers report up to ~3 s after a stop)."""
    written = -1
    while True:
        gevent.sleep(PARTIAL_REPORT_EVERY_S)
        requests = STATE.book.requests()
        if STATE.started_wall is not None and requests != written:
            with contextlib.suppress(OSError):
                write_report(final=False)
            written = requests
        if STATE.stopped_wall is None:
            behind = _behind_warning()
            if behind and not STATE.warned_behind:
                STATE.warned_behind = True
                log.warning(behind)


def _finish_csv() -> None:
    """One last write of Locust's CSV files (its writer only refreshes once a second)."""
    writer = STATE.csv_writer
    if writer is None:
        return
    if STATE.csv_greenlet is not None:
        STATE.csv_greenlet.kill(block=True)
    try:
        for handle, writer_obj, columns, rows in (
            (writer.requests_csv_filehandle, writer.requests_csv_writer, writer.requests_csv_columns,
             writer._requests_data_rows),
            (writer.failures_csv_filehandle, writer.failures_csv_writer, writer.failures_columns,
             writer._failures_data_rows),
            (writer.exceptions_csv_filehandle, writer.exceptions_csv_writer, writer.exceptions_columns,
             writer._exceptions_data_rows),
        ):
            handle.seek(0)
            handle.truncate()
            writer_obj.writerow(columns)
            rows(writer_obj)
        writer.close_files()
    except (AttributeError, OSError, ValueError) as exc:  # a Locust upgrade changed its writer
        where = STATE.run.path if STATE.run else "?"
        log.warning("could not finish Locust's CSV files in %s: %s", where, exc)


# -------------------------------------------------------------------- report


def _cpu_figures() -> dict[str, Any]:
    processes: dict[str, Any] = {}
    if STATE.cpu is not None and STATE.role == "local":
        processes["local"] = STATE.cpu.snapshot()
    processes.update(STATE.worker_cpu)
    runner = STATE.environment.runner if STATE.environment is not None else None
    locust_warned = bool(runner is not None and (runner.cpu_warning_emitted
                                                 or getattr(runner, "worker_cpu_warning_emitted", False)))
    saturated = locust_warned or any(p.get("saturated_samples", 0) >= 2 for p in processes.values())
    return {
        "processes": processes,
        "max_percent": max((p.get("max_percent", 0.0) for p in processes.values()), default=0.0),
        "mean_percent_sum": round(sum(p.get("mean_percent", 0.0) for p in processes.values()), 1),
        "saturated": saturated,
        "locust_cpu_warning": locust_warned,
        "saturated_threshold_percent": CPU_SATURATED_PERCENT,
    }


def _behind_warning() -> str | None:
    lag = STATE.lag
    if not lag.scheduled or lag.late / lag.scheduled <= LATE_FRACTION_WARN:
        return None
    return (
        f"the generator fell behind its open-loop schedule: {lag.late} of {lag.scheduled} requests "
        f"({100 * lag.late / lag.scheduled:.1f}%) started more than {lag.late_threshold_us / 1000:g} ms "
        f"late (p99 lag {lag.histogram.percentile(99) / 1000:.2f} ms, "
        f"max {lag.histogram.max / 1000:.2f} ms). "
        "Latencies count from the intended start, so they include that wait; raise -u (requests in "
        "flight) or --processes, or lower --arrival-rate"
    )


def _warnings(cpu: dict[str, Any]) -> list[str]:
    out = []
    if cpu["saturated"]:
        out.append(
            f"the load generator's CPU was saturated (up to {cpu['max_percent']:.0f}% of a core"
            + ("; Locust warned too" if cpu["locust_cpu_warning"] else "")
            + "): the figures may measure the generator rather than the server; "
            "use --processes N, fewer users, or a lower --arrival-rate"
        )
    behind = _behind_warning()
    if behind:
        out.append(behind)
    plan = STATE.plan
    precise = STATE.precise_timers and not STATE.worker_imprecise_timers
    if plan is not None and plan.open_loop and not precise:
        out.append("no timerfd on this platform: open-loop start times may lag up to ~1 ms (gevent timers)")
    if plan is not None and STATE.started_wall is not None and STATE.book.requests():
        for model, transport in plan.combinations():
            if transport in active_transports() and not any(
                k.model == model and k.transport == transport for k in STATE.book
            ):
                out.append(f"{model} over {transport} got no requests (too few users for the mix?)")
    return out


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def write_report(final: bool) -> dict[str, Any] | None:
    """Write ``latency.json`` into the run folder (``complete`` only at the end)."""
    run = STATE.run
    if run is None:
        return None
    environment = STATE.environment
    options = environment.parsed_options
    runner = environment.runner
    started = STATE.started_wall
    stopped = STATE.stopped_wall
    duration = ((stopped or time.time()) - started) if started else None
    summary = STATE.book.summary(duration)
    cpu = _cpu_figures()
    plan = STATE.plan
    workers = max(STATE.workers, len(runner.clients)) if STATE.role == "master" else 0
    document = {
        "schema": REPORT_SCHEMA,
        "kind": "loadtest",
        "run_id": run.run_id,
        "complete": final,
        "started_at": _iso(started),
        "stopped_at": _iso(stopped),
        "duration_s": round(duration, 3) if duration is not None else None,
        "stop_reason": STATE.stop_reason,
        "target": {"rest": plan.rest_url, "grpc": plan.grpc_target} if plan else None,
        "plan": {
            **(plan.describe() if plan else {}),
            "users": options.num_users,
            "spawn_rate": options.spawn_rate,
            "run_time_s": options.run_time,
            "transports_run": active_transports(),
            "worker_processes": workers,
        },
        "error": STATE.invalid,
        "warnings": _warnings(cpu),
        "generator": {"cpu": cpu},
        "unit": "us",
        "series": summary["series"],
        "total": summary["total"],
        "schedule": STATE.lag.summary() if plan is not None and plan.open_loop else None,
        "locust": {"requests": runner.stats.total.num_requests, "failures": runner.stats.total.num_failures},
        "files": {"html": options.html_file, "csv_prefix": options.csv_prefix or STATE.csv_prefix},
        "revision": run.meta.get("revision"),
        "machine": run.meta.get("machine"),
        "hdr": STATE.book.to_wire(),
    }
    run.write_json(REPORT_FILE, document)
    return document


def _print_summary(document: dict[str, Any] | None) -> None:
    if document is None:
        return
    lines = [f"latency (microseconds) -> {STATE.run.file(REPORT_FILE) if STATE.run else '?'}"]
    header = f"{'model':<18} {'transport':<9} {'requests':>9} {'errors':>7} {'req/s':>8} " + " ".join(
        f"{name:>8}" for name in ("p50", "p90", "p95", "p99", "p99.9", "max"))
    lines.append(header)
    for row in [*document["series"], {**document["total"], "model": "total", "transport": ""}]:
        lat = row["latency_us"]
        rps = row["throughput_rps"]
        lines.append(
            f"{row['model']:<18} {row['transport']:<9} {row['requests']:>9} {row['errors']:>7} "
            f"{(f'{rps:.1f}' if rps is not None else '-'):>8} "
            + " ".join(f"{lat[name]:>8}" for name in ("p50", "p90", "p95", "p99", "p99.9", "max"))
        )
    if document.get("schedule"):
        s = document["schedule"]
        lines.append(f"open loop: {s['scheduled']} scheduled, {s['late']} late "
                     f"(> {s['late_threshold_us']:g} us), start lag p50 {s['lag_us']['p50']} us, "
                     f"p99 {s['lag_us']['p99']} us, "
                     f"max {s['lag_us']['max']} us")
    print("\n".join(lines), flush=True)
    for warning in document["warnings"]:
        log.warning("%s", warning)
