"""Training and held-out data for both models, as the seed scenario splits them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reference import agaricus

DIGITS_FEATURES = 64
AGARICUS_FEATURES = 126


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    sha256: str  # of the training data as used (features then labels)
    source: str


def _sha256_arrays(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def digits() -> Split:
    """``load_digits()`` flattened to 64 features, first half train, second half test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X = data.images.reshape((len(data.images), -1))
    X_train, X_test, y_train, y_test = train_test_split(
        X, data.target, test_size=0.5, shuffle=False
    )
    return Split(X_train, y_train, X_test, y_test, _sha256_arrays(X_train, y_train),
                 "sklearn.datasets.load_digits")


@lru_cache(maxsize=4)
def mushrooms(folder: str | os.PathLike | None = None) -> Split:
    """agaricus.txt.train / .test as dense 0/1 matrices of 126 features."""
    from sklearn.datasets import load_svmlight_file

    train_path = agaricus.locate("agaricus.txt.train", folder)
    test_path = agaricus.locate("agaricus.txt.test", folder)
    X_train, y_train = load_svmlight_file(str(train_path), n_features=AGARICUS_FEATURES)
    X_test, y_test = load_svmlight_file(str(test_path), n_features=AGARICUS_FEATURES)
    return Split(
        X_train.toarray(), y_train, X_test.toarray(), y_test,
        agaricus.SHA256["agaricus.txt.train"], str(train_path),
    )


def heldout(model_name: str, folder: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows (float32, as clients send them) and labels for a model."""
    if model_name == "mnist-svm":
        split = digits()
    elif model_name == "mushroom-xgboost":
        split = mushrooms(folder)
    else:
        raise KeyError(f"no held-out data for model {model_name!r}")
    return split.X_test.astype(np.float32), split.y_test
