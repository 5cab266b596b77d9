"""bench.windows: measure until the last three windows agree, or say it never stabilised."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import windows
from bench.benchmark import window_plan
from bench.scenario import Measurement
from reporting.latency import LatencyBook
from reporting.summary import scopes_from_book


def _measurement(rps: float, latency_us: float, seconds: float = 2.0, failed: int = 0) -> Measurement:
    book = LatencyBook()
    for i in range(int(rps * seconds)):
        book.record("m", "rest", "infer", latency_us * (1 + (i % 5) / 100), ok=i >= failed)
    return Measurement(returncode=0, latency={"hdr": book.to_wire(), "duration_s": seconds},
                       run_dir=Path("."), scopes=scopes_from_book(book, seconds))


def _fake(monkeypatch: pytest.MonkeyPatch, series: list[tuple[float, float]]) -> list[int]:
    calls: list[int] = []

    def measure(rest, grpc, seconds, root, scenario):
        calls.append(len(calls))
        return _measurement(*series[min(len(calls) - 1, len(series) - 1)])

    monkeypatch.setattr(windows, "measure", measure)
    return calls


def test_stops_after_three_agreeing_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _fake(monkeypatch, [(50, 9000), (100, 2000), (102, 2010), (99, 1990), (100, 2000)])
    run = windows.measure_until_stable("r", "g", {}, tmp_path, window_s=2, stability=0.10, max_windows=8)
    assert run.stabilised and len(calls) == 4
    info = run.describe()
    assert info["measured_windows"] == [1, 2, 3] and info["stabilised"]
    assert [w["measured"] for w in run.windows] == [False, True, True, True]
    # merged figures: the measured windows only (the slow first one is left out)
    assert run.scopes[""]["throughput_rps"] == pytest.approx(100.3, rel=0.02)


def test_says_when_it_never_stabilised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _fake(monkeypatch, [(50, 2000), (100, 2000), (150, 2000), (60, 2000), (140, 2000)])
    run = windows.measure_until_stable("r", "g", {}, tmp_path, window_s=2, stability=0.10, max_windows=5)
    assert not run.stabilised and len(calls) == 5
    assert run.describe()["measured_windows"] == [2, 3, 4]
    assert "never stabilised" in run.describe()["note"]


def test_latency_counts_for_stability_too() -> None:
    same_rps = [{"scopes": {"": {"throughput": 100, "p50": p, "p99": 5000}}} for p in (1000, 1000, 1500)]
    ok, spreads = windows.stable(same_rps, 0.10)
    assert not ok and spreads["p50"] > 0.10 and spreads["throughput"] == 0


def test_errors_of_every_measured_window_are_kept(tmp_path: Path) -> None:
    merged = windows.merged_scopes([_measurement(100, 2000, failed=3), _measurement(100, 2000, failed=2)])
    assert merged[""]["error_rate"] == pytest.approx(5 / 400)
    assert merged[""]["throughput_rps"] == pytest.approx(100)


def test_window_plan_bounds_the_measured_time() -> None:
    assert window_plan(60, 10) == (10, 6)
    assert window_plan(3, 10) == (1, 3)  # at least three windows, each a second or more
    assert window_plan(9, 10) == (3, 3)


def test_every_measurement_restarts_its_statistics_after_the_spawn_ramp() -> None:
    from bench.scenario import FIXED_SCENARIO, locust_args

    assert "--reset-stats" in locust_args(FIXED_SCENARIO, 3, "http://h:1", "h:2")
