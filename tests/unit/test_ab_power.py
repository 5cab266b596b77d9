"""bench.ab_power's pieces: the slow model repository, Clopper-Pearson rates, the smallest slowdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ab_power


def test_slow_models_put_each_model_behind_its_own_slow_runtime_module(tmp_path: Path) -> None:
    source = tmp_path / "models"
    for name, impl in (("mnist-svm", "mlserver_sklearn.SKLearnModel"),
                       ("mushroom-xgboost", "mlserver_xgboost.XGBoostModel")):
        (source / name).mkdir(parents=True)
        (source / name / "model-settings.json").write_text(json.dumps(
            {"name": name, "implementation": impl, "parameters": {"version": "v1"}}))
        (source / name / "model.bin").write_text("weights")
    slow = ab_power.slow_models(source, tmp_path / "slow", 0.002)
    svm = json.loads((slow / "mnist-svm" / "model-settings.json").read_text())
    xgb = json.loads((slow / "mushroom-xgboost" / "model-settings.json").read_text())
    assert svm["implementation"] == "slow_mnist_svm.SlowSKLearnModel"
    assert xgb["implementation"] == "slow_mushroom_xgboost.SlowXGBoostModel"
    assert svm["parameters"] == {"version": "v1", "extra": {"delay_s": 0.002}}
    assert (slow / "mnist-svm" / "slow_mnist_svm.py").is_file()
    assert (slow / "mnist-svm" / "model.bin").read_text() == "weights"


def test_clopper_pearson_is_exact() -> None:
    low, high = ab_power.clopper_pearson(1, 20)
    assert low == pytest.approx(0.00126, abs=1e-4) and high == pytest.approx(0.2487, abs=1e-3)
    assert "1 of 20 (5%, 95% CI 0% .. 25%)" in ab_power.rate_line("x", 1, 20, "at most 1 in 20")


def test_smallest_slowdown_called_slower_is_about_tolerance_plus_half_width() -> None:
    import math

    out = ab_power.smallest_called_slower(0.05, [0.04, 0.06, 0.05], [0.0, 0.02, -0.02])
    assert out["p50"] == pytest.approx(1 - 0.95 * math.exp(-0.05))  # ~9.6 %: tolerance + half-width
    assert out["p80"] == pytest.approx(1 - 0.95 * math.exp(-(0.05 + 0.84 * 0.02)))
    assert ab_power.smallest_called_slower(0.05, [3.0], [0.0, 2.0])["p80"] < 1  # never beyond 100 %


def test_next_delay_scales_one_point_and_interpolates_two() -> None:
    """One point: proportional; two: the line through them (0.122 ms cost 15.5 %, 0.076 ms 7.5 %)."""
    assert ab_power.next_delay([(0.122e-3, 0.155)], 0.10) == pytest.approx(0.122e-3 * 0.10 / 0.155)
    assert ab_power.next_delay([(0.122e-3, 0.155), (0.076e-3, 0.075)], 0.10) == pytest.approx(0.090375e-3)
    assert ab_power.next_delay([(1e-4, 0.0), (2e-4, 0.0)], 0.10) > 0  # no slowdown seen: still positive
