"""A dead or sick target ends the run: abort rules, ``--slo-abort``, and how a run is stopped.

In k6's ``abortOnFail`` spirit. ``--abort-when RULE`` (repeatable) is one of

* ``no-success>DURATION``: a good request has waited that long without any
  successful answer on its transport (the default of headless runs:
  ``no-success>5s``; a 2 s stall does not trip it);
* ``error-rate>PERCENT%[/WINDOW]``: more than that share of the good
  requests of the last WINDOW (default 10 s) failed, once the run is WINDOW
  old and the window holds at least :data:`MIN_WINDOW_REQUESTS` answers.

``--no-abort`` turns every rule off. Only good traffic counts (see
:class:`._health.Pulse`). Each process checks its own traffic every
:data:`TICK_S`; a worker that trips a rule tells the master, which stops the
run. ``--slo-abort`` checks the ``--slo`` thresholds each second over what was
measured so far (after :data:`SLO_ABORT_MIN_S`) on the master or the only
process. An aborted run stops through the runner's public ``quit()`` (headless)
or ``stop()`` (web UI), its report says why, and it exits with status 3.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import gevent

from reporting import slo as slos

from ._plan import PlanError
from ._state import RunState

log = logging.getLogger("loadtests")

EXIT_ABORTED = 3
EXIT_SLO_BREACHED = 1
DEFAULT_HEADLESS_RULES = ("no-success>5s",)
DEFAULT_WINDOW_S = 10.0
MIN_WINDOW_REQUESTS = 10
TICK_S = 0.25
SLO_ABORT_MIN_S = 5.0
SLO_ABORT_EVERY_S = 1.0
ABORT_MESSAGE = "oip_loadtest_abort"
TRANSPORT_NAMES = {"rest": "REST", "grpc": "gRPC"}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_RULE = re.compile(r"^\s*(?P<name>no-success|error-rate)\s*>\s*(?P<value>[0-9]*\.?[0-9]+)\s*"
                   r"(?P<unit>ms|s|m|%)?\s*(?:/\s*(?P<window>[0-9]*\.?[0-9]+)\s*(?P<wunit>ms|s|m)?)?\s*$")
GRAMMAR = 'no-success>DURATION or error-rate>PERCENT%[/WINDOW], e.g. "no-success>5s", "error-rate>50%/10s"'


@dataclass(frozen=True)
class AbortRule:
    """One ``--abort-when`` rule: ``no-success`` after ``seconds``, or ``error-rate`` over a window."""

    text: str
    name: str
    seconds: float  # no-success: the silence; error-rate: the window
    threshold: float = 0.0  # error-rate: a fraction

    def check(self, pulses: dict[str, Any], now: float, elapsed: float) -> str | None:
        """Why the rule trips now (None: it holds)."""
        if self.name == "no-success":
            for transport, pulse in sorted(pulses.items()):
                silent = pulse.silent_for(now)
                if silent > self.seconds:
                    return (f"no successful answer over {TRANSPORT_NAMES.get(transport, transport)} for "
                            f"{silent:.1f} s (--abort-when {self.text})")
            return None
        if elapsed < self.seconds:
            return None
        ok = failed = 0
        for pulse in pulses.values():
            good, bad = pulse.counts(now, self.seconds)
            ok, failed = ok + good, failed + bad
        if ok + failed >= MIN_WINDOW_REQUESTS and failed / (ok + failed) > self.threshold:
            return (f"{100 * failed / (ok + failed):.1f}% of the {ok + failed} requests of the last "
                    f"{self.seconds:g} s failed (--abort-when {self.text})")
        return None


def parse_rule(text: str) -> AbortRule:
    """An ``--abort-when`` rule; :class:`PlanError` (exit 2) with the grammar when it does not parse."""
    match = _RULE.match(text or "")
    if not match:
        raise PlanError(f"--abort-when {text!r} does not parse: expected {GRAMMAR}")
    value, unit = float(match["value"]), match["unit"]
    if match["name"] == "no-success":
        if unit == "%" or match["window"]:
            raise PlanError(f"--abort-when {text!r}: no-success takes a duration (ms, s, m), "
                            "e.g. no-success>5s")
        seconds = value * _UNITS[unit or "s"]
        if seconds <= 0:
            raise PlanError(f"--abort-when {text!r}: the duration must be above 0")
        return AbortRule(text.strip(), "no-success", seconds)
    if unit not in ("%", None) or not 0 <= value <= (100 if unit == "%" else 1):
        raise PlanError(f"--abort-when {text!r}: error-rate takes a percentage (0-100%) or a fraction (0-1)")
    window = float(match["window"]) * _UNITS[match["wunit"] or "s"] if match["window"] else DEFAULT_WINDOW_S
    if window <= 0:
        raise PlanError(f"--abort-when {text!r}: the window must be above 0")
    return AbortRule(text.strip(), "error-rate", window, value / 100 if unit == "%" else value)


def rules_of(options: Any) -> list[AbortRule]:
    """The run's abort rules: ``--abort-when``, else the headless default; none with ``--no-abort``."""
    if getattr(options, "no_abort", False):
        return []
    given = list(getattr(options, "abort_when", None) or [])
    if not given and getattr(options, "headless", False):
        given = list(DEFAULT_HEADLESS_RULES)
    return [parse_rule(text) for text in given]


def slos_of(options: Any) -> list[slos.Slo]:
    """The ``--slo`` thresholds; :class:`PlanError` (exit 2) when one does not parse."""
    try:
        return [slos.parse_slo(text) for text in getattr(options, "slo", None) or []]
    except slos.SloError as exc:
        raise PlanError(str(exc)) from None


def slo_results(state: RunState, duration_s: float | None) -> list[dict[str, Any]]:
    """Each ``--slo`` against what was measured (the successes' percentiles, all requests' error rate)."""
    from reporting.summary import scopes_from_book

    return slos.evaluate(state.slos, scopes_from_book(state.book, duration_s)) if state.slos else []


def abort(state: RunState, reason: str) -> None:
    """Stop the run because of ``reason``: a worker tells the master; the master or only process stops."""
    runner = state.environment.runner
    if state.role == "worker":
        if not state.abort_sent:
            state.abort_sent = True
            runner.send_message(ABORT_MESSAGE, {"reason": reason})
        return
    if state.aborted is not None or (state.closing and state.stop_reason):
        return  # already aborted, or ending anyway (-t, --max-requests)
    elapsed = time.time() - state.started_wall if state.started_wall else None
    state.aborted = {"reason": reason, "at_s": round(elapsed, 3) if elapsed is not None else None}
    state.stop_reason, state.closing = f"aborted: {reason}", True
    log.error("aborting the run: %s", reason)
    headless = bool(getattr(state.environment.parsed_options, "headless", False))
    gevent.spawn(runner.quit if headless else runner.stop)  # not from a greenlet the runner may kill


def on_abort_message(state: RunState, msg: Any) -> None:
    """Master: a worker tripped a rule."""
    abort(state, str((msg.data or {}).get("reason") or "a worker tripped an abort rule"))


def watch(state: RunState) -> None:
    """The guard of one test: abort rules on this process's traffic, ``--slo-abort`` on the master's."""
    next_slo = SLO_ABORT_MIN_S
    while not state.closing:
        gevent.sleep(TICK_S)
        if state.started_wall is None or state.closing:
            continue
        now, elapsed = time.monotonic(), time.time() - state.started_wall
        for rule in state.rules if state.role != "master" else ():
            reason = rule.check(state.pulses, now, elapsed)
            if reason:
                abort(state, reason)
                return
        if state.slo_abort and state.role != "worker" and elapsed >= next_slo:
            next_slo = elapsed + SLO_ABORT_EVERY_S
            breached = [r for r in slo_results(state, elapsed) if not r["ok"] and r["actual"] is not None]
            if breached:
                worst = breached[0]
                abort(state, f"--slo {worst['slo']} breached after {elapsed:.1f} s (measured "
                             f"{_actual(worst)}; --slo-abort)")
                return


def _actual(result: dict[str, Any]) -> str:
    actual, metric = result["actual"], result["metric"]
    if metric == "error_rate":
        return f"{100 * actual:.2f}%"
    if metric == "throughput":
        return f"{actual:.1f} req/s"
    return f"{actual / 1000:.3f} ms"


def start(state: RunState) -> None:
    """At test start: a fresh guard greenlet (the previous test's, if any, ends with it)."""
    if state.guard_greenlet is not None:
        state.guard_greenlet.kill(block=False)
    state.guard_greenlet = None
    if state.rules or state.slo_abort:
        state.guard_greenlet = gevent.spawn(watch, state)


def exit_code(state: RunState, slo_breached: bool) -> int | None:
    """The process's exit status for Locust: 3 aborted, 1 an SLO breached, else Locust's own."""
    if state.aborted is not None:
        return EXIT_ABORTED
    return EXIT_SLO_BREACHED if slo_breached else None
