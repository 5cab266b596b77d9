"""The build recipe of the test model repository: ``python -m reference train --models-dir tests/model_repo``.

Every artifact is trained on data that ships with scikit-learn, deterministically
(fixed splits and seeds), and written beside its ``model-settings.json``:

* ``iris-tagged/model.joblib``: ``LogisticRegression`` on ``load_iris`` (served by its custom runtime);
* ``digits-lowprec/model.joblib``: ``LogisticRegression`` on ``load_digits`` (served by its custom runtime);
* ``wine-proba/model.joblib``: ``StandardScaler`` + ``LogisticRegression`` on ``load_wine``;
* ``cancer-samples/model.joblib``: ``DecisionTreeClassifier(max_depth=4)`` on ``load_breast_cancer``,
  and ``cancer-samples/samples/*.json``: held-out rows as V2 inference request bodies.

The artifacts and samples are generated files (gitignored). ``heldout(name)`` gives
the rows each model did not see, for tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEED = 0


def _split(loader) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    data = loader()
    return train_test_split(data.data, data.target, test_size=0.3, random_state=SEED,
                            stratify=data.target)


def _loaders() -> dict:
    from sklearn import datasets

    return {"iris-tagged": datasets.load_iris, "digits-lowprec": datasets.load_digits,
            "wine-proba": datasets.load_wine, "cancer-samples": datasets.load_breast_cancer}


def heldout(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows (float64) and labels of one model of this repository."""
    _, X_test, _, y_test = _split(_loaders()[name])
    return X_test, y_test


def _estimator(name: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    if name in ("iris-tagged", "digits-lowprec"):
        return LogisticRegression(max_iter=2000)
    if name == "wine-proba":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return DecisionTreeClassifier(max_depth=4, random_state=SEED)


def _write_samples(folder: Path) -> None:
    X_test, _ = heldout("cancer-samples")
    samples = folder / "samples"
    samples.mkdir(exist_ok=True)
    for file_name, rows in (("one-row.json", X_test[:1]), ("three-rows.json", X_test[1:4])):
        body = {
            "id": file_name.removesuffix(".json"),
            "inputs": [{"name": "features", "datatype": "FP32", "shape": list(rows.shape),
                        "data": rows.astype(np.float32).ravel().tolist()}],
        }
        (samples / file_name).write_text(json.dumps(body, indent=1) + "\n")


def build(folder: Path) -> None:
    """Train the four models and write their artifacts (and samples) into ``folder``."""
    import joblib

    for name, loader in _loaders().items():
        X_train, _, y_train, _ = _split(loader)
        estimator = _estimator(name).fit(X_train, y_train)
        joblib.dump(estimator, folder / name / "model.joblib")
    _write_samples(folder / "cancer-samples")
