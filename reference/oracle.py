"""The same artifacts run in-process, loaded the way MLServer's runtimes load them.

This is what every check of a server's answer compares against: identical
labels for ``mnist-svm``, probabilities within a tolerance for ``mushroom-xgboost``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from reference.catalog import MODELS
from reference.errors import ConfigError
from reference.paths import MODELS_DIR

# Probability tolerance for mushroom-xgboost (the server returns FP32).
PROBABILITY_ATOL = 1e-6


class _Predictor(Protocol):
    def predict(self, X: np.ndarray) -> np.ndarray: ...


def _artifact(name: str, models_dir: Path) -> Path:
    spec = MODELS[name]
    path = models_dir / name / spec.artifact
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run `python -m reference train` first")
    return path


@lru_cache(maxsize=8)
def _load(name: str, models_dir: Path) -> _Predictor:
    path = _artifact(name, models_dir)
    if name == "mnist-svm":
        import joblib

        return joblib.load(path)
    # mlserver_xgboost loads a native Booster file as an XGBRegressor.
    import xgboost as xgb

    regressor = xgb.XGBRegressor()
    regressor.load_model(path)
    return regressor


def predict(name: str, X: np.ndarray, models_dir: Path = MODELS_DIR) -> np.ndarray:
    """Predictions for rows ``X`` (shape [N, features]) as a 1-D array."""
    if name not in MODELS:
        raise KeyError(f"the oracle knows {sorted(MODELS)}, not {name!r}")
    return np.asarray(_load(name, models_dir).predict(np.asarray(X))).reshape(-1)


def mismatch(name: str, expected: np.ndarray, actual: np.ndarray) -> str | None:
    """Why ``actual`` differs from the oracle's ``expected``, or None when it agrees."""
    expected = np.asarray(expected).reshape(-1)
    actual = np.asarray(actual).reshape(-1)
    if expected.shape != actual.shape:
        return f"{name}: expected {expected.size} predictions, got {actual.size}"
    if name == "mnist-svm":
        bad = np.flatnonzero(expected != actual)
    else:
        bad = np.flatnonzero(~np.isclose(actual, expected, rtol=0, atol=PROBABILITY_ATOL))
    if bad.size == 0:
        return None
    i = int(bad[0])
    return (f"{name}: {bad.size} of {expected.size} predictions differ; "
            f"first at row {i}: server {actual[i]!r}, in-process {expected[i]!r}")
