"""SLO expressions, baseline and A/B comparisons, Prometheus diffs, run folders."""

from __future__ import annotations

import json

import pytest

from reporting import compare, prometheus, slo
from reporting.runs import latest_run, new_run

# -- SLOs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "metric", "op", "threshold"),
    [
        ("p99<25ms", "", "p99", "<", 25_000.0),
        ("p99.9 <= 2s", "", "p99.9", "<=", 2_000_000.0),
        ("mnist-svm:p50<800us", "mnist-svm", "p50", "<", 800.0),
        ("mushroom-xgboost/grpc:max<1", "mushroom-xgboost/grpc", "max", "<", 1_000.0),
        ("error_rate<0.1%", "", "error_rate", "<", 0.001),
        ("error_rate<=0.01", "", "error_rate", "<=", 0.01),
        ("throughput>500rps", "", "throughput", ">", 500.0),
    ],
)
def test_slo_parses(text, scope, metric, op, threshold):
    parsed = slo.parse_slo(text)
    assert (parsed.scope, parsed.metric, parsed.op) == (scope, metric, op)
    assert parsed.threshold == pytest.approx(threshold)


@pytest.mark.parametrize("text", ["p99", "p99<", "p98<2ms", "p99<2kg", "error_rate<2ms", "p99 = 2ms", ""])
def test_malformed_slo_says_the_grammar(text):
    with pytest.raises(slo.SloError, match="SLO"):
        slo.parse_slo(text)


def test_slo_evaluation_against_scopes():
    scopes = {
        "": {"latency_us": {"p99": 30_000.0}, "error_rate": 0.0, "throughput_rps": 900.0},
        "mnist-svm": {"latency_us": {"p99": 10_000.0}, "error_rate": 0.002, "throughput_rps": 600.0},
    }
    results = slo.evaluate(
        [slo.parse_slo(s) for s in ("p99<25ms", "mnist-svm:p99<25ms", "mnist-svm:error_rate<0.1%",
                                    "throughput>500", "nope/grpc:p50<1ms")],
        scopes,
    )
    assert [r["ok"] for r in results] == [False, True, False, True, False]
    assert results[-1]["actual"] is None  # not measured is not a pass


# -- comparisons -----------------------------------------------------------------


# Verdicts with intervals: tests/unit/test_compare_baseline.py and test_stats_verdicts.py.


def test_baseline_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "oip-harness/summary/v0"}))
    with pytest.raises(compare.BaselineError, match="schema"):
        compare.load_baseline(path)


def test_missing_baseline_says_how_to_record_one(tmp_path):
    with pytest.raises(compare.BaselineError, match="tox -e bench"):
        compare.load_baseline(tmp_path / "none.json")


# -- Prometheus --------------------------------------------------------------------

SCRAPE = """
# TYPE model_infer_request_success counter
model_infer_request_success_total{{model="mnist-svm",version="v0.1.0"}} {ok}
model_infer_request_success_total{{model="mnist-svm",version="None"}} 1.0
# TYPE model_infer_request_failure counter
model_infer_request_failure_total{{model="mnist-svm",version="v0.1.0"}} {bad}
# TYPE model_infer_request_duration summary
model_infer_request_duration_count{{model="mnist-svm",version="v0.1.0"}} {count}
model_infer_request_duration_sum{{model="mnist-svm",version="v0.1.0"}} {seconds}
"""


def test_model_view_diffs_two_scrapes():
    before = prometheus.parse(SCRAPE.format(ok=10, bad=0, count=10, seconds=0.01))
    after = prometheus.parse(SCRAPE.format(ok=110, bad=2, count=112, seconds=0.01 + 102 * 0.0002))
    view = prometheus.model_view(before, after)["mnist-svm"]
    assert view["requests"] == 102 and view["failures"] == 2
    assert view["inference_mean_us"] == pytest.approx(200.0)


def test_model_view_without_scrapes_is_empty():
    assert prometheus.model_view(None, {}) == {}


# -- run folders -------------------------------------------------------------------


def test_runs_never_overwrite_and_latest_follows(tmp_path):
    first = new_run("bench", root=tmp_path)
    second = new_run("bench", root=tmp_path)
    assert first.path != second.path and first.path.is_dir() and second.path.is_dir()
    assert latest_run("bench", root=tmp_path) == second.path
    assert (tmp_path / "bench" / "LATEST").read_text().strip() == second.run_id
