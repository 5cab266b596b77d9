"""reporting.compare: a baseline comparison with intervals over windows, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from reporting import compare


def _summary(rps: list[float], p99: list[float], errors: list[float] | None = None, run_id: str = "x",
             **extra_latency: float) -> dict:
    errors = errors or [0.0] * len(rps)
    windows = [{"index": i, "measured": True,
                "scopes": {"": {"throughput": r, "p50": 1000.0, "p99": p, "error_rate": e, **extra_latency}}}
               for i, (r, p, e) in enumerate(zip(rps, p99, errors, strict=True))]
    mean = sum(rps) / len(rps)
    return {"schema": compare.SCHEMA, "run": {"id": run_id}, "windows": windows,
            "scopes": {"": {"latency_us": {"p50": 1000.0, "p99": sum(p99) / len(p99), **extra_latency},
                            "throughput_rps": mean, "error_rate": sum(errors) / len(errors)}}}


BASE = _summary([1000, 1010, 990], [10_000, 10_100, 9_900])


def _row(result: dict, metric: str) -> dict:
    return next(r for r in result["rows"] if r["metric"] == metric and r["scope"] == "overall")


def test_within_tolerance_is_same() -> None:
    result = compare.compare_to_baseline(_summary([1001, 1005, 995], [10_050, 10_000, 9_950]), BASE)
    assert result["verdict"] == "same"
    interval = _row(result, "throughput")["interval"]
    assert interval["low"] <= 1.0 <= interval["high"]


def test_slower_and_faster_from_the_interval() -> None:
    slower = compare.compare_to_baseline(_summary([700, 705, 695], [14_000, 14_100, 13_900]), BASE)
    assert slower["verdict"] == "slower" and _row(slower, "throughput")["judgement"] == "slower"
    assert _row(slower, "p99")["judgement"] == "slower"
    faster = compare.compare_to_baseline(_summary([1300, 1310, 1290], [7_000, 7_100, 6_900]), BASE)
    assert faster["verdict"] == "faster"


def test_error_rate_rise_in_points_is_worse() -> None:
    current = _summary([1000, 1010, 990], [10_000, 10_100, 9_900], errors=[0.02, 0.021, 0.019])
    result = compare.compare_to_baseline(current, BASE, error_tolerance=0.005)
    row = _row(result, "error_rate")
    assert row["judgement"] == "worse" and row["change"] == pytest.approx(0.02)
    assert result["verdict"] == "slower"


def test_noisy_windows_are_inconclusive() -> None:
    current = _summary([700, 1300, 1000], [10_000, 10_100, 9_900])
    row = _row(compare.compare_to_baseline(current, BASE), "throughput")
    assert row["judgement"].startswith("inconclusive")


def test_a_baseline_without_windows_is_inconclusive_not_judged_on_one_number() -> None:
    old = {**BASE, "windows": []}
    row = _row(compare.compare_to_baseline(_summary([500, 505, 495], [20_000] * 3), old), "throughput")
    assert row["judgement"].startswith("inconclusive") and row["change"] == pytest.approx(-0.5)


@pytest.mark.parametrize("metric", ["p95", "p99.9", "max", "mean", "p90", "min"])
def test_every_latency_metric_reads_worse_when_higher(metric: str) -> None:
    base = _summary([1000] * 3, [10_000] * 3, **{metric: 5_000.0})
    for w, v in zip(base["windows"], (5_000.0, 5_050.0, 4_950.0), strict=True):
        w["scopes"][""][metric] = v
    current = _summary([1000] * 3, [10_000] * 3, **{metric: 8_000.0})
    for w, v in zip(current["windows"], (8_000.0, 8_050.0, 7_950.0), strict=True):
        w["scopes"][""][metric] = v
    row = _row(compare.compare_to_baseline(current, base, metrics=(metric,)), metric)
    assert row["judgement"] == "slower"


def test_a_baseline_without_the_metric_asked_for_is_refused() -> None:
    with pytest.raises(compare.BaselineError, match=r"no 'p99\.9'"):
        compare.compare_to_baseline(BASE, BASE, metrics=("p99.9",))


def test_a_tolerance_outside_0_1_is_refused() -> None:
    with pytest.raises(compare.BaselineError, match=r"\(0, 1\)"):
        compare.compare_to_baseline(BASE, BASE, tolerance=1.5)


def test_cli_refuses_a_bad_tolerance_in_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--tolerance", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(0, 1)" in err


def test_cli_refuses_a_baseline_without_the_metric_before_starting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(BASE))
    code = main(["run", "--baseline", str(path), "--metrics", "throughput,p99.9",
                 "--reports-root", str(tmp_path / "reports")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "p99.9" in err
    assert not (tmp_path / "reports").exists()


def test_describe_row_prints_the_interval() -> None:
    row = _row(compare.compare_to_baseline(_summary([700, 705, 695], [14_000] * 3), BASE), "throughput")
    line = compare.describe_row(row)
    assert line.startswith("throughput: 0.") and "95% CI" in line and line.endswith("slower")
