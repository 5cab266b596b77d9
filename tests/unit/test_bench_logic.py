"""The benchmark's verdicts and the sweep's choice, without a server."""

from __future__ import annotations

from bench.benchmark import verdict_of
from bench.sweep import best_under_limit


def _summary(errors: int = 0, slo_ok: bool = True, comparison: str | None = None) -> dict:
    summary = {"scopes": {"": {"requests": 100, "errors": {"wrong answer": errors} if errors else {}}},
               "slo": [{"slo": "p99<25ms", "ok": slo_ok}]}
    if comparison:
        summary["comparison"] = {"verdict": comparison}
    return summary


def test_pass_when_nothing_is_wrong():
    assert verdict_of(_summary(), fail_on_regression=False) == ("PASS", False)


def test_failed_requests_and_breached_slo_fail_the_run():
    verdict, failed = verdict_of(_summary(errors=3, slo_ok=False), fail_on_regression=False)
    assert failed and "3 failed requests" in verdict and "p99<25ms" in verdict


def test_regression_fails_only_when_asked():
    assert verdict_of(_summary(comparison="slower"), fail_on_regression=False) == (
        "PASS; slower against the baseline", False)
    assert verdict_of(_summary(comparison="slower"), fail_on_regression=True)[1] is True


def test_no_requests_is_a_failure():
    assert verdict_of({"scopes": {}}, fail_on_regression=False)[1] is True


def test_best_under_limit_skips_steps_over_the_limit_or_with_errors():
    steps = [
        {"users": 1, "throughput_rps": 100.0, "p99_us": 2_000, "errors": 0},
        {"users": 4, "throughput_rps": 300.0, "p99_us": 9_000, "errors": 0},
        {"users": 8, "throughput_rps": 400.0, "p99_us": 60_000, "errors": 0},
        {"users": 16, "throughput_rps": 500.0, "p99_us": 8_000, "errors": 2},
    ]
    assert best_under_limit(steps, 10_000) == {"users": 4, "throughput_rps": 300.0, "p99_us": 9_000}
    assert best_under_limit(steps, 1_000)["users"] is None
