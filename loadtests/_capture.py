"""Every request's latency into the run's HDR :class:`LatencyBook`, and workers' books to the master.

:func:`install` adds, on ``environment.events`` with the run's state bound:

* ``request``: the latency (microseconds) under the request's series key
  (``context["oip_key"]``; requests without one are not the harness's), a
  success or a failure of its kind (``context["oip_problem"]``, a
  :class:`._outcomes.Problem`) with a few examples, the transport's pulse
  (good requests only: ``context["oip_good"]``, default True) and stalls;
* ``report_to_master`` (worker): the histogram deltas, start lags, failure
  examples, stalls, CPU and timer precision since the last report;
* ``worker_report`` (master): merge them, exactly;
* ``reset_stats`` and ``spawning_complete`` with ``--reset-stats``: Locust
  forgets the ramp-up, so do the histograms.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from reporting.latency import LatencyBook, WireFormatError

from ._outcomes import Problem, as_problem, problem_of_exception
from ._schedule import LagTracker
from ._state import RunState

log = logging.getLogger("loadtests")

WIRE_KEY = "oip_loadtest"
CONTEXT_KEY = "oip_key"
PROBLEM_KEY = "oip_problem"  # the failure's Problem (kind, Locust's error text, detail)
GOOD_KEY = "oip_good"  # False: a request meant to fail, left out of the abort rules
SENT_KEY = "oip_sent"  # when the request went out (Unix time): --turn files it under its round


def problem_of(exception: Any, context: dict[str, Any], where: str) -> Problem:
    """A failed request's Problem: the one the user attached, else sorted from Locust's exception."""
    found = context.get(PROBLEM_KEY)
    if isinstance(found, Problem):
        return found
    if isinstance(exception, OSError):
        return problem_of_exception(exception, where)
    return as_problem(f"{where}: {exception}") or Problem("failed", "failed", where)


def on_request(state: RunState, response_time: float, exception: Any = None, context: Any = None,
               **_: Any) -> None:
    key = context.get(CONTEXT_KEY) if context else None
    if key is None:
        return
    now = time.monotonic()
    ok = exception is None
    problem = None if ok else problem_of(exception, context, key.label)
    kind = problem.kind if problem is not None else None
    state.book.record_key(key, response_time * 1000.0, ok, kind)
    if problem is not None and not state.failures.full(problem.kind):
        state.failures.add(problem, key.label)
    if state.turns is not None:  # --turn: also into the round it was sent in
        sent = context.get(SENT_KEY) or time.time() - response_time / 1000.0
        state.turns.record(key, response_time * 1000.0, ok, kind, sent)
    if context.get(GOOD_KEY, True):
        state.pulse(key.transport).answer(now, ok)
    runner = state.environment.runner
    state.stalls.answered(now, runner.user_count if runner is not None else 0,
                          lambda: state.book.combined().percentile(50) / 1e6)


def to_master(state: RunState, data: dict[str, Any]) -> None:
    """Worker: what was recorded since the last report, into Locust's report to the master."""
    data[WIRE_KEY] = {
        "book": state.book.take().to_wire(),
        "lag": state.lag.take().to_wire(),
        "failures": state.failures.take_new(),
        "stalls": state.stalls.take_new(),
        "cpu": state.cpu.snapshot() if state.cpu else None,
        "precise_timers": state.precise_timers,
    }


def from_worker(state: RunState, client_id: str, data: dict[str, Any]) -> None:
    """Master: merge one worker's report into the run's book."""
    payload = data.get(WIRE_KEY)
    if not payload:
        return
    try:
        state.book.merge(LatencyBook.from_wire(payload["book"]))
        if payload.get("lag"):
            state.lag.merge(LagTracker.from_wire(payload["lag"]))
    except (WireFormatError, KeyError) as exc:
        log.error("could not merge the latency histograms of worker %s: %s", client_id, exc)
        return
    state.failures.merge(payload.get("failures") or [])
    state.stalls.merge(payload.get("stalls") or [])
    if payload.get("cpu"):
        state.worker_cpu[client_id] = payload["cpu"]
    if payload.get("precise_timers") is False:
        state.worker_imprecise_timers = True


def reset(state: RunState) -> None:
    """Locust's stats were reset (web UI button, --reset-stats): restart the histograms too."""
    state.book.clear()
    state.failures.clear()
    state.stalls.forget()
    state.lag = LagTracker(state.lag.late_threshold_us)
    if state.started_wall is not None:
        state.started_wall = time.time()


def install(state: RunState) -> None:
    """Register the capture hooks on the state's environment, bound to ``state``."""
    events = state.environment.events

    def _request(**kwargs: Any) -> None:
        on_request(state, **kwargs)

    def _report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        to_master(state, data)

    def _worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        from_worker(state, client_id, data)

    def _reset_stats(**_: Any) -> None:
        reset(state)

    def _spawning_complete(**_: Any) -> None:
        if state.environment.reset_stats:
            reset(state)
        if state.turns is not None:
            state.turns.join()  # --turn: this run's slots count from here
        state.spawned.set()  # the open-loop schedule and --turn start once every user exists

    events.request.add_listener(_request)
    events.report_to_master.add_listener(_report_to_master)  # fires on workers only
    events.worker_report.add_listener(_worker_report)  # fires on the master only
    events.reset_stats.add_listener(_reset_stats)
    events.spawning_complete.add_listener(_spawning_complete)
