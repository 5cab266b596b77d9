"""Unit tests of failure kinds, the abort rules and stall finding (no Locust, no server)."""

from __future__ import annotations

import pytest

from loadtests._abort import AbortRule, parse_rule, rules_of
from loadtests._health import Pulse, Stalls, stall_warning
from loadtests._outcomes import (
    CONNECTION,
    GRPC_STATUS,
    HTTP_STATUS,
    MALFORMED,
    TIMEOUT,
    WRONG,
    FailureLog,
    Problem,
    as_problem,
    grpc_status_problem,
    problem_of_exception,
)
from loadtests._plan import PlanError
from oip.precise import WireError


def wire_error(cause: OSError) -> WireError:
    try:
        try:
            raise cause
        except OSError as exc:
            raise WireError(f"cannot connect to 127.0.0.1:1: {exc}") from exc
    except WireError as wrapped:
        return wrapped


@pytest.mark.parametrize(("found", "kind", "error"), [
    ("wrong answer: mnist-svm row 17 over REST: server 3, oracle 5", WRONG, "wrong prediction"),
    ("mnist-svm row 17 over REST: HTTP 503 (expected 200): busy", HTTP_STATUS, "HTTP 503"),
    ("mnist-svm row 17 over REST: the body is not JSON: <html>", MALFORMED, "malformed answer"),
])
def test_check_messages_sort_into_kinds_and_keep_the_row_out_of_the_error(found: str, kind: str,
                                                                         error: str) -> None:
    problem = as_problem(found)
    assert problem == Problem(kind, error, found)
    assert "row" not in problem.error and str(problem) == error


@pytest.mark.parametrize(("cause", "kind", "error"), [
    (ConnectionRefusedError(111, "Connection refused"), CONNECTION, "connection refused"),
    (ConnectionResetError(104, "Connection reset by peer"), CONNECTION, "connection reset"),
    (TimeoutError("timed out"), TIMEOUT, "timeout"),
])
def test_no_answer_sorts_by_its_cause(cause: OSError, kind: str, error: str) -> None:
    problem = problem_of_exception(wire_error(cause), "mnist-svm row 3 over gRPC")
    assert (problem.kind, problem.error) == (kind, error)
    assert problem.detail.startswith("mnist-svm row 3 over gRPC: cannot connect")


def test_grpc_statuses_and_closed_connections() -> None:
    assert grpc_status_problem("UNAVAILABLE", "x").kind == GRPC_STATUS
    assert grpc_status_problem("UNAVAILABLE", "x").error == "gRPC UNAVAILABLE"
    assert grpc_status_problem("DEADLINE_EXCEEDED", "x").kind == TIMEOUT
    closed = problem_of_exception(WireError("127.0.0.1:1 closed the connection without answering"), "w")
    assert (closed.kind, closed.error) == (CONNECTION, "connection closed")
    assert problem_of_exception(WireError("not an HTTP status line: b'xx'"), "w").kind == MALFORMED


def test_failure_examples_are_bounded_per_kind() -> None:
    log = FailureLog(limit=2)
    for row in range(100):
        wrong = Problem(WRONG, "wrong prediction", f"wrong answer: row {row}")
        log.add(wrong, "m rest infer", wall=10.0 + row)
    log.add(Problem(CONNECTION, "connection refused", "refused"), "m grpc infer", wall=20.0)
    report = log.report({WRONG: 100, CONNECTION: 1}, started_wall=10.0)
    assert report[WRONG]["count"] == 100 and [e["at_s"] for e in report[WRONG]["examples"]] == [0.0, 1.0]
    assert report[CONNECTION]["examples"][0]["error"] == "connection refused"
    master = FailureLog(limit=2)
    master.merge(log.take_new())
    assert master.examples == log.examples and log.take_new() == []


@pytest.mark.parametrize(("text", "rule"), [
    ("no-success>5s", AbortRule("no-success>5s", "no-success", 5.0)),
    ("no-success > 1500ms", AbortRule("no-success > 1500ms", "no-success", 1.5)),
    ("error-rate>50%/10s", AbortRule("error-rate>50%/10s", "error-rate", 10.0, 0.5)),
    ("error-rate>0.2", AbortRule("error-rate>0.2", "error-rate", 10.0, 0.2)),
    ("error-rate>5%/1m", AbortRule("error-rate>5%/1m", "error-rate", 60.0, 0.05)),
])
def test_rules_parse(text: str, rule: AbortRule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize("text", ["no-success>>5", "no-success>5%", "error-rate>150%", "latency>5s", "",
                                  "no-success>0s", "error-rate>50%/0s"])
def test_bad_rules_say_the_grammar(text: str) -> None:
    with pytest.raises(PlanError, match="--abort-when"):
        parse_rule(text)


def test_default_rule_is_for_headless_runs_only() -> None:
    class Options:
        abort_when: list[str] = []
        no_abort = False
        headless = True

    options = Options()
    assert [r.text for r in rules_of(options)] == ["no-success>5s"]
    options.headless = False
    assert rules_of(options) == []
    options.abort_when = ["error-rate>50%"]
    assert [r.text for r in rules_of(options)] == ["error-rate>50%"]
    options.no_abort = True
    assert rules_of(options) == []


def test_no_success_counts_from_the_first_unanswered_good_request() -> None:
    rule = parse_rule("no-success>5s")
    pulse = Pulse()
    assert rule.check({"rest": pulse}, 100.0, 100.0) is None  # nothing sent: an idle run is not sick
    pulse.attempt(10.0)
    pulse.answer(10.1, ok=True)
    assert rule.check({"rest": pulse}, 50.0, 50.0) is None  # idle since: still nothing waits
    pulse.attempt(50.0)
    pulse.answer(50.001, ok=False)
    pulse.attempt(50.002)
    assert rule.check({"rest": pulse}, 54.0, 54.0) is None  # a 4 s stall does not trip it
    reason = rule.check({"rest": pulse}, 55.5, 55.5)
    assert reason is not None and "over REST for 5.5 s" in reason


def test_error_rate_over_a_window() -> None:
    rule = parse_rule("error-rate>50%/10s")
    pulse = Pulse()
    for t in range(100):
        pulse.answer(t + 0.1, ok=True)
        pulse.answer(t + 0.2, ok=t < 80)
    assert rule.check({"grpc": pulse}, 99.9, 5.0) is None  # the run is younger than the window
    reason = rule.check({"grpc": pulse}, 99.9, 99.9)  # seconds 90-99: 20 answers, 10 failed
    assert reason is None  # 50% is not above 50%
    pulse.answer(99.95, ok=False)
    reason = rule.check({"grpc": pulse}, 99.96, 99.96)
    assert reason is not None and "52.4% of the 21 requests of the last 10 s" in reason
    assert rule.check({"grpc": pulse}, 85.5, 85.5) is None  # 5 of 20 failed


def test_a_stall_is_every_request_in_flight_waiting() -> None:
    stalls = Stalls()
    for _ in range(4):
        stalls.sent(0.0)
    stalls.answered(0.002, pool=4, typical_s=lambda: 0.002)
    stalls.sent(0.003)
    assert stalls.ongoing(1.0, pool=4) is not None
    stalls.answered(2.5, pool=4, typical_s=lambda: 0.002)  # 2.5 s without an answer, 4 of 4 waiting
    stalls.answered(2.6, pool=8, typical_s=lambda: 0.002)  # not every user waited: no stall
    (found,) = stalls.report(started_wall=None)
    assert found["duration_s"] == pytest.approx(2.498, abs=0.01) and found["in_flight"] == 4
    warning = stall_warning([{**found, "start_s": 1.0}], queued=12)
    assert warning is not None and "stopped answering" in warning and "12 open-loop requests" in warning


def test_idle_time_before_a_burst_is_no_stall() -> None:
    """--turn: users wait out the other run's turn with nothing in flight; that is not the server."""
    stalls = Stalls()
    stalls.sent(0.0)
    stalls.answered(0.002, pool=1, typical_s=lambda: 0.002)
    stalls.sent(1.0)  # idle for a second, then every user sends at once
    stalls.answered(1.002, pool=1, typical_s=lambda: 0.002)
    assert stalls.report(started_wall=None) == []
