"""The harness's command-line options, their defaults, and how a Plan shapes Locust's users.

``init_command_line_parser`` is the one hook registered at import (it fires
before any Environment exists): it adds ``--mix``, ``--transports``, ... (shown
in ``--help`` and the web UI) and loopback defaults (``--host`` from
settings.json, web UI and master bound to 127.0.0.1). The rest are helpers the
lifecycle hooks call with the run's state.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from locust import events, tag

from oip.names import LOOPBACK
from reference.errors import HarnessError
from reference.paths import MODELS_DIR

from . import _turns
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
)
from ._state import RunState

log = logging.getLogger("loadtests")

EXIT_BAD_OPTIONS = 2
DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081


def settings_ports() -> tuple[int, int]:
    """REST and gRPC ports of the reference deployment's settings.json (without importing MLServer)."""
    try:
        from reference.config import read_server_settings
        from reference.paths import SETTINGS_FILE

        settings = read_server_settings(SETTINGS_FILE)
        return (int(settings.get("http_port", DEFAULT_HTTP_PORT)),
                int(settings.get("grpc_port", DEFAULT_GRPC_PORT)))
    except (HarnessError, OSError, ValueError):
        return DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT


# A dead or sick target, and thresholds (loadtests._abort): flag, metavar (None: a switch), help.
GUARD_OPTIONS = (
    ("--abort-when", "RULE", "stop the run (exit 3) when the target is dead or sick: no-success>DURATION (no "
                             "good answer for that long) or error-rate>PERCENT%%[/WINDOW]; repeatable "
                             "(default of headless runs: no-success>5s)"),
    ("--no-abort", None, "never stop the run early because of the target's answers"),
    ("--slo", "EXPR", "a threshold checked at the end (exit 1 when breached), as in python -m bench: "
                      "[SCOPE:]METRIC OP VALUE, e.g. p99<25ms, error_rate<0.1%%, mnist-svm/grpc:p50<=2ms"),
    ("--slo-abort", None, "stop the run (exit 3) as soon as a --slo is breached, checked each second over "
                          "what was measured so far"),
)


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_: Any) -> None:
    http_port, grpc_port = settings_ports()
    parser.add_argument("--mix", default="", metavar="MODEL=W,...",
                        help="served models and their share of requests, e.g. mnist-svm=3,mushroom-xgboost=1 "
                             f"(default: {DEFAULT_MIX} for the seed's models/, else every served model "
                             "alike)")
    parser.add_argument("--models-dir", default=str(MODELS_DIR), metavar="DIR",
                        help="the model repository the server serves (default models/): every served model "
                             "is loaded and checked against its own runtime in-process; \"\" for a server "
                             "whose models are not local (its repository index and metadata)")
    parser.add_argument("--samples", default=None, metavar="DIR",
                        help="sample requests per model, DIR/<model>/*.json (V2 request bodies), used "
                             "before <models-dir>/<model>/samples/ and generated requests")
    parser.add_argument("--transports", default=DEFAULT_TRANSPORTS, metavar="T[=W],...",
                        help="rest, grpc or both, optionally weighted (rest=3,grpc=1): the share of users "
                             "(closed loop) or of the arrival rate (open loop)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="ROWS",
                        help="held-out rows per inference request")
    parser.add_argument("--path-style", default="versioned", choices=PATH_STYLES,
                        help="infer at /v2/models/M/versions/V/infer (versioned) or /v2/models/M/infer")
    parser.add_argument("--grpc-host", default=f"{LOOPBACK}:{grpc_port}", metavar="HOST:PORT",
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
    for flag, metavar, text in GUARD_OPTIONS:  # repeatable when it takes a value, else a switch
        if metavar:
            parser.add_argument(flag, action="append", default=[], metavar=metavar, help=text)
        else:
            parser.add_argument(flag, action="store_true", default=False, help=text)
    parser.add_argument("--allow-remote", action="store_true", default=False,
                        help="allow a target that is not on loopback (only for servers you own)")
    _turns.add_arguments(parser)
    # Loopback defaults: the reference deployment, and no listener on other interfaces.
    parser.set_defaults(host=f"http://{LOOPBACK}:{http_port}", web_host=LOOPBACK,
                        master_bind_host=LOOPBACK)


def fatal(state: RunState, message: str) -> None:
    """Refuse to start: one clear line, non-zero exit, before any load is sent."""
    if state.role != "worker":
        print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_OPTIONS)


def apply_defaults(options: Any) -> None:
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


def task_for(cls: type, model: str) -> Callable:
    """The task of ``cls`` that calls ``model`` (made once, tagged model, transport and ``infer``)."""
    existing = cls.model_tasks.get(model)
    if existing is None:
        def infer_model(user: Any) -> None:
            user.infer(model)

        infer_model.__name__ = infer_model.__qualname__ = f"infer {model}"
        existing = cls.model_tasks[model] = tag(cls.transport, model, "infer")(infer_model)
    return existing


def apply_plan(state: RunState, plan: Plan) -> None:
    """Set task weights (--mix), user weights (--transports) and the user classes that run."""
    environment = state.environment
    if state.selected_classes is None:
        state.selected_classes = list(environment.user_classes)
    active = []
    for transport, cls in state.user_classes.items():
        tasks: list[Callable] = []
        models = {m: w for m, w in plan.mix.items() if plan.selected(m, transport)}
        if transport in plan.transports and models:
            for model, count in integer_weights(models).items():
                tasks += [task_for(cls, model)] * count
        cls.tasks = tasks
        if tasks and cls in state.selected_classes:
            active.append(transport)
    if not active:
        raise PlanError(
            "no user class is left to run: check --transports, --tags and the User classes named on the "
            f"command line (available: {', '.join(c.__name__ for c in state.user_classes.values())})"
        )
    weights = integer_weights({t: plan.transports[t] for t in active})
    for transport, cls in state.user_classes.items():
        cls.weight = weights.get(transport, 0)
    environment.user_classes[:] = [state.user_classes[t] for t in active]
