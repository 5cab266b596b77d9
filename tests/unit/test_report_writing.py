"""report.md and the plots, from a synthetic summary."""

from __future__ import annotations

from reporting import markdown, plots
from reporting.summary import SCHEMA


def _summary() -> dict:
    def scope(p50: float) -> dict:
        return {"requests": 1000, "errors": {"wrong answer": 2}, "error_rate": 0.002,
                "throughput_rps": 500.0,
                "latency_us": {"p50": p50, "p90": p50 * 1.5, "p95": p50 * 2, "p99": p50 * 3,
                               "p99.9": p50 * 4, "max": p50 * 5, "mean": p50 * 1.1},
                "spectrum": [[50.0, p50], [90.0, p50 * 1.5], [99.0, p50 * 3], [99.9, p50 * 4],
                             [100.0, p50 * 5]]}
    return {
        "schema": SCHEMA,
        "run": {"id": "20260101T000000Z-abc", "kind": "bench", "server": {"name": "mlserver",
                "version": "1.7.1"}, "revision": "abc", "duration_s": 10.0, "warmup_s": 2},
        "scopes": {"": scope(600.0), "mnist-svm": scope(512.0), "mnist-svm/rest": scope(512.3),
                   "mushroom-xgboost/grpc": scope(830.0)},
        "server_side": {"mnist-svm": {"requests": 1000, "failures": 0, "inference_mean_us": 120.0,
                                      "client_mean_us": 560.0, "overhead_us": 440.0}},
        "slo": [{"slo": "p99<1ms", "scope": "overall", "metric": "p99", "threshold": 1000.0,
                 "actual": 1800.0, "ok": False}],
        "timeline": [{"t": 100.0 + i, "rps": 500.0, "failures_per_s": 0.0, "p50_ms": 1.0,
                      "p95_ms": 2.0, "p99_ms": 3.0} for i in range(5)],
        "warnings": ["the generator's CPU was saturated"],
        "verdict": "FAIL: 1 threshold breached",
    }


def test_report_shows_verdict_microsecond_latencies_and_failed_slo():
    text = markdown.render(_summary(), images=["latency_percentiles.png"])
    assert "**Verdict: FAIL: 1 threshold breached**" in text
    assert "| mnist-svm/rest | 1000 | 2 | 0.20% | 500.0 | 0.512 |" in text
    assert "**FAIL**" in text and "1.800 ms" in text
    assert "saturated" in text and "![latency_percentiles.png](latency_percentiles.png)" in text
    assert "0.440" in text  # the protocol + queueing overhead


def test_all_three_plots_are_drawn(tmp_path):
    drawn = plots.plot_all(_summary(), tmp_path)
    assert {p.name for p in drawn} == {"latency_percentiles.png", "latency_distribution.png", "timeline.png"}
    for path in drawn:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_plots_skip_what_was_not_measured(tmp_path):
    assert plots.plot_all({"scopes": {}}, tmp_path) == []
