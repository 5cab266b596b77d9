"""What the locustfile imports: the harness's Locust hooks, and the helpers its users call.

Importing this module registers the two hooks that must exist before any
Environment does (``init_command_line_parser`` in :mod:`._options`, ``init``
in :mod:`._lifecycle`); ``init`` attaches the run's :class:`RunState` to the
Environment (``environment.oip_run``) and registers everything else on
``environment.events``. One job per module:

* :mod:`._options` the command-line options and how a plan weighs the users;
* :mod:`._models` which models the target serves (``--models-dir``);
* :mod:`._expected` any model's payloads and answers, from its own runtime;
* :mod:`._preflight` checking the target before any load (httpx, gRPC);
* :mod:`._lifecycle` init, test start/stop, quitting, master/worker messages;
* :mod:`._capture` request latencies into the HDR book, worker to master;
* :mod:`._cpu` the generator's own CPU;
* :mod:`._report` latency.json (partial while running), CSVs, summary;
* :mod:`._traffic` what users and the shape call on the hot path;
* :mod:`._outcomes` failures by kind (Locust's error text) with a few examples;
* :mod:`._health` good answers per transport, and when the server stalled;
* :mod:`._abort` ``--abort-when``, ``--slo`` / ``--slo-abort``, stopping a run early;
* :mod:`._bad_traffic` ``--bad-share``: malformed requests under load (:mod:`._bad_pool` draws them
  from the conformance catalogue, :mod:`._classify` sorts the answers, :mod:`._liveness` probes the
  live endpoint, :mod:`._bad_cost` compares windows with and without, :mod:`._robustness` thresholds);
* :mod:`._state` the RunState itself.
"""

from __future__ import annotations

from . import _lifecycle, _options  # noqa: F401  (registers the hooks)
from ._bad_traffic import bad_request
from ._bad_traffic import send as send_bad
from ._capture import CONTEXT_KEY, GOOD_KEY, PROBLEM_KEY
from ._outcomes import Problem, as_problem, grpc_status_problem, problem_of_exception
from ._state import ATTR, RunState, run_state
from ._traffic import (
    Lane,
    begin_request,
    grpc_connection,
    http_connection,
    report,
    send_precise,
    shape_tick,
    since_intended,
)

__all__ = [
    "ATTR",
    "CONTEXT_KEY",
    "GOOD_KEY",
    "PROBLEM_KEY",
    "Problem",
    "as_problem",
    "bad_request",
    "send_bad",
    "grpc_status_problem",
    "problem_of_exception",
    "Lane",
    "RunState",
    "begin_request",
    "grpc_connection",
    "http_connection",
    "report",
    "run_state",
    "send_precise",
    "shape_tick",
    "since_intended",
]
