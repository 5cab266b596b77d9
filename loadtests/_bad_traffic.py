"""Bad traffic under load: ``--bad-share 5%`` of the requests are malformed, every answer classified.

``--bad-share`` (``5%`` or ``0.05``: of all the run's requests), ``--bad-kinds a,b``
(rule ids of :data:`conformance.bad_requests.BUILDERS`; default all),
``--bad-window S`` (bad traffic only in every other window of S seconds,
default 5, so at twice the share there, at most 100%; 0: throughout, no
comparison), ``--bad-threshold EXPR`` (:mod:`._robustness`).
A share outside 0-100% or an unknown kind: one line, exit 2.

Each user, before each request, turns it into a bad one with that
probability (in windows with bad traffic): the next request of its model and
transport in the pool (:mod:`._bad_pool`, every kind in turn), sent through
the same client as good traffic (the lean precise clients, or Locust's and
grpcio with ``--client stock``), through the same request cap and open-loop
slot. The answer is classified (:mod:`._classify`) and counted per model,
transport, kind and class. A bad request goes to Locust as a success of type
``BAD`` named ``REST bad requests`` / ``gRPC bad requests`` (two rows, never a
failure), not into the harness's latency book, not into the abort rules
(``good=False``). After an answer that closed or timed out, the user opens a
new connection, as a client would. The live endpoint is probed every second
(:mod:`._liveness`); the good traffic in windows with and without bad
traffic is compared (:mod:`._bad_cost`). The run's ``latency.json`` gets a
``bad_traffic`` section; lost liveness or a breached threshold exits 1.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from locust import events

from oip import h2
from oip.names import GRPC_MODEL_INFER
from oip.precise import WireError

from . import _bad_cost, _classify, _robustness
from ._abort import abort
from ._bad_pool import KINDS, SEED, BadRequest, build_pool, kinds_in, parse_kinds, parse_share
from ._capture import CONTEXT_KEY, GOOD_KEY
from ._liveness import Liveness
from ._outcomes import problem_of_exception
from ._plan import PlanError
from ._state import RunState
from ._traffic import begin_request

log = logging.getLogger("loadtests")

WIRE_KEY = "oip_bad_traffic"
REQUEST_TYPE = "BAD"
NAMES = {"rest": "REST bad requests", "grpc": "gRPC bad requests"}
GRPC_TIMEOUT_S = 30.0


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_: Any) -> None:
    parser.add_argument("--bad-share", default="", metavar="SHARE",
                        help="send this share of malformed requests (5%% or 0.05), every kind the "
                             "conformance suite knows, each answer classified; default none")
    parser.add_argument("--bad-kinds", default="", metavar="KIND,...",
                        help=f"only these kinds of bad request (rule ids: {', '.join(KINDS)})")
    parser.add_argument("--bad-window", type=float, default=_bad_cost.DEFAULT_WINDOW_S, metavar="SECONDS",
                        help="bad traffic only in every other window of this length, to compare the good "
                             "traffic with and without it (default 5); 0: throughout, no comparison")
    parser.add_argument("--bad-threshold", action="append", default=[], metavar="EXPR",
                        help="a threshold on the run with bad traffic, e.g. bad_accepted<=0, "
                             "bad_server_error<=0, liveness_lost==0, good_p99<50ms (exit 1 when breached)")


class BadTraffic:
    """This process's bad traffic: pool, classification, good traffic per window, liveness."""

    def __init__(self, share: float, kinds: tuple[str, ...], window_s: float, thresholds: list[Any],
                 seed: int | None) -> None:
        self.share, self.kinds, self.window_s, self.thresholds = share, kinds, window_s, thresholds
        # the share is of the whole run: alternating windows carry it all in half the time
        self.dose = min(share / _bad_cost.ON_FRACTION, 1.0) if window_s > 0 else share
        self.pool: dict[tuple[str, str], list[BadRequest]] = {}
        self.cursor: dict[tuple[str, str], int] = {}
        self.tally = _classify.Tally()
        self.windows = _bad_cost.Windows(window_s)
        self.liveness: Liveness | None = None
        self.rng = random.Random(seed)
        self.results: list[dict[str, Any]] = []  # the thresholds, as last checked

    def pick(self, model: str, transport: str) -> BadRequest | None:
        """The next bad request for this request slot, or None for a good one."""
        if self.rng.random() >= self.dose or not _bad_cost.bad_window(self.window_s):
            return None
        requests = self.pool.get((model, transport))
        if not requests:
            return None
        index = self.cursor.get((model, transport), 0)
        self.cursor[(model, transport)] = (index + 1) % len(requests)
        return requests[index]

    def reset(self) -> None:
        self.tally.clear()
        self.windows.clear()
        self.results = []


def configure(state: RunState, options: Any, plan: Any) -> None:
    """At init, before the target is checked: parse the options (PlanError, exit 2)."""
    share = parse_share(getattr(options, "bad_share", ""))
    kinds = parse_kinds(getattr(options, "bad_kinds", ""))
    window_s = float(getattr(options, "bad_window", _bad_cost.DEFAULT_WINDOW_S))
    if window_s < 0:
        raise PlanError(f"--bad-window {window_s:g}: give seconds (> 0), or 0 for bad traffic throughout")
    thresholds = [_robustness.parse_threshold(t) for t in getattr(options, "bad_threshold", None) or []]
    if not share:
        given = [flag for flag, value in (("--bad-kinds", getattr(options, "bad_kinds", "")),
                                          ("--bad-threshold", thresholds)) if value]
        if given:
            raise PlanError(f"{' and '.join(given)} need(s) --bad-share (e.g. --bad-share 5%)")
        state.bad = None
        return
    state.bad = BadTraffic(share, kinds, window_s, thresholds, plan.seed)


def prepare(state: RunState, plan: Any) -> None:
    """At init, once the payloads are encoded: draw and encode the bad requests (not on the master)."""
    bad = state.bad
    if bad is not None and state.role != "master":
        started = time.perf_counter()
        transports = [t for t in plan.transports if t in state.active_transports()]
        bad.pool = build_pool(state.workload, plan.models_dir, transports, bad.kinds, plan.rest_url,
                              seed=SEED if plan.seed is None else plan.seed)
        log.info("drew %d bad requests (%s) in %.1fs", sum(len(v) for v in bad.pool.values()),
                 "; ".join(f"{t}: {len(k)} kinds" for t, k in kinds_in(bad.pool).items()),
                 time.perf_counter() - started)
        for transport in transports:
            if not any(bad.pool.get((model, transport)) for model in state.workload):
                log.warning("no bad kind of --bad-kinds applies to %s: it gets good traffic only", transport)


def install(state: RunState) -> None:
    """Hooks bound to ``state``: good requests into windows, worker to master, test start and stop."""
    events_ = state.environment.events

    def _request(response_time: float, exception: Any = None, context: Any = None, **_: Any) -> None:
        bad = state.bad
        if bad is None or not context or context.get(CONTEXT_KEY) is None or context.get(GOOD_KEY) is False:
            return
        bad.windows.record(time.time() - response_time / 1000.0, response_time * 1000.0, exception is None)

    def _to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if state.bad is not None:
            data[WIRE_KEY] = {"tally": state.bad.tally.take_new(), "windows": state.bad.windows.take()}

    def _from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
        payload = data.get(WIRE_KEY)
        if state.bad is not None and payload:
            state.bad.tally.merge(payload.get("tally") or {})
            state.bad.windows.merge(payload.get("windows") or {})

    def _reset_stats(**_: Any) -> None:  # --reset-stats, the web UI's button: Locust forgets, so do we
        if state.bad is not None:
            state.bad.reset()

    events_.request.add_listener(_request)
    events_.reset_stats.add_listener(_reset_stats)
    events_.report_to_master.add_listener(_to_master)
    events_.worker_report.add_listener(_from_worker)


def start(state: RunState) -> None:
    """At test start: forget the last test's counts; the master or only process probes liveness."""
    bad = state.bad
    if bad is None:
        return
    bad.reset()
    if state.role != "worker" and state.plan is not None:
        if bad.liveness is not None:
            bad.liveness.stop()
        bad.liveness = Liveness(state.plan.rest_url)
        limits = [r.seconds for r in state.rules if r.name == "no-success"]
        bad.liveness.start(lambda reason: abort(state, reason), min(limits) if limits else None)


def stop(state: RunState) -> None:
    if state.bad is not None and state.bad.liveness is not None:
        state.bad.liveness.stop()


def bad_request(user: Any, model: str) -> BadRequest | None:
    """Called by a user before each request: a bad one to send instead, or None."""
    bad = user.oip_run.bad
    return None if bad is None else bad.pick(model, user.transport)


def send(user: Any, request: BadRequest) -> None:
    """Send one bad request through ``user``'s own client, classify and count its answer."""
    state: RunState = user.oip_run
    begin_request(state, user.transport, user.lane.sleeper)  # the cap and the open-loop slot
    sent = time.monotonic()
    state.stalls.sent(sent)
    cls, said = (_send_rest if user.transport == "rest" else _send_grpc)(user, request)
    now = time.monotonic()
    runner = state.environment.runner
    state.stalls.answered(now, runner.user_count if runner is not None else 0,
                          lambda: state.book.combined().percentile(50) / 1e6)
    if state.bad is not None:
        state.bad.tally.add(request.model, request.transport, request.kind, cls, said)
    if cls in (_classify.CLOSED, _classify.TIMEOUT) and user.wire is not None:
        user.wire.close()  # the next request on a new connection, as a client would
    if user.wire is not None:  # the stock clients report to Locust themselves
        user.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=NAMES[user.transport], response_time=(now - sent) * 1000.0,
            response_length=0, exception=None, context={GOOD_KEY: False})


def _no_answer(exc: BaseException, request: BadRequest) -> tuple[str, str]:
    problem = problem_of_exception(exc, f"{request.kind} to {request.model}")
    return _classify.classify_no_answer(problem.kind), problem.error


def _send_rest(user: Any, request: BadRequest) -> tuple[str, str]:
    if user.wire is not None:
        try:
            reply = user.wire.exchange(request.request)
        except WireError as exc:
            return _no_answer(exc, request)
        return _classify.classify_rest(reply.status, reply.body, request.allowed), \
            f"HTTP {reply.status} {reply.body[:120]!r}"
    with user.client.request("POST", request.path, data=request.body, headers=dict(request.headers),
                             name=NAMES["rest"], catch_response=True, context={GOOD_KEY: False}) as response:
        response.success()
        if response.status_code == 0:
            return _no_answer(response.request_meta["exception"], request)
        body = response.content or b""
        cls = _classify.classify_rest(response.status_code, body, request.allowed)
    if cls == _classify.SERVER_ERROR:
        # MLServer 1.7.1 closes the connection after a 500 without saying so (no Connection: close);
        # the precise client reopens a stale keep-alive connection, FastHttpUser's would fail the next
        # (good) request: close its connections (geventhttpclient's public UserAgent.close(); the
        # next request opens a new one).
        agent = getattr(user.client, "client", None)
        if agent is not None and hasattr(agent, "close"):
            agent.close()
    return cls, f"HTTP {response.status_code} {body[:120]!r}"


def _send_grpc(user: Any, request: BadRequest) -> tuple[str, str]:
    if user.wire is not None:
        try:
            reply = user.wire.call(GRPC_MODEL_INFER, request.body)
        except WireError as exc:
            return _no_answer(exc, request)
        status = h2.STATUS_NAMES.get(reply.status, str(reply.status))
        return _classify.classify_grpc(status, request.allowed), f"{status}: {reply.details[:120]}"
    import grpc

    started = time.perf_counter()
    try:
        user.model_infer(request.body, timeout=GRPC_TIMEOUT_S)
        status, details = "OK", ""
    except grpc.RpcError as exc:
        status, details = exc.code().name, exc.details() or ""
    user.environment.events.request.fire(
        request_type=REQUEST_TYPE, name=NAMES["grpc"], response_time=(time.perf_counter() - started) * 1000.0,
        response_length=0, exception=None, context={GOOD_KEY: False})
    return _classify.classify_grpc(status, request.allowed), f"{status}: {details[:120]}"


def section(state: RunState, total: dict[str, Any]) -> dict[str, Any] | None:
    """The ``bad_traffic`` section of latency.json (None without --bad-share), its thresholds checked
    against ``total`` (the good traffic's figures) and itself."""
    bad = state.bad
    if bad is None:
        return None
    out = {
        "share": bad.share, "share_in_bad_windows": bad.dose, "kinds": list(bad.kinds),
        "window_s": bad.window_s,
        "pool": kinds_in(bad.pool) if bad.pool else None,
        "classification": bad.tally.report(),
        "liveness": bad.liveness.report(state.started_wall) if bad.liveness else None,
        "cost": _bad_cost.compare(bad.windows),
    }
    out["metrics"] = _robustness.metrics({"total": total, "bad_traffic": out})
    bad.results = out["thresholds"] = _robustness.evaluate(bad.thresholds, out["metrics"])
    return out


def failed(state: RunState) -> bool:
    """The run must exit 1: the server lost liveness, or a --bad-threshold was breached."""
    bad = state.bad
    if bad is None:
        return False
    return bool(bad.liveness is not None and bad.liveness.lost) or any(not r["ok"] for r in bad.results)


def summary_lines(section_: dict[str, Any] | None) -> list[str]:
    """What the end of a run prints about its bad traffic."""
    if not section_:
        return []
    found = section_["classification"]
    lines = [f"bad traffic: {found['requests']} requests at {100 * section_['share']:g}%, "
             f"{found['unclassified']} unclassified; by class: "
             + ", ".join(f"{n} {c}" for c, n in found["by_class"].items())]
    lines += _classify.table_lines(found["table"])
    live = section_.get("liveness")
    if live:
        lines.append(f"liveness: {live['probes']} probes, {live['lost_probes']} lost"
                     + "".join(f"; down {o['duration_s']:.1f} s from {o['at']} ({o['why']})"
                               for o in live["outages"][:5]))
    cost = section_.get("cost")
    if cost:
        for side in ("without_bad", "with_bad"):
            s = cost[side]
            lines.append(f"good traffic {side.replace('_', ' ')}: {s['windows']} windows, {s['requests']} "
                         f"requests, {s['failed']} failed, p50 {s['p50_us']} us, p99 {s['p99_us']} us")
        lines += [f"  with/without {m['line']}" for m in cost["metrics"]]
    for result in section_.get("thresholds") or []:
        lines.append(f"threshold {result['threshold']}: {'pass' if result['ok'] else 'BREACHED'} "
                     f"(measured {result['actual']})")
    return lines
