"""``python -m reference train``: the seed's training recipe, deterministic and incremental.

Each artifact gets a ``manifest.json`` beside it (library versions, sha256 of the
training data and of the artifact, held-out accuracy). A run whose inputs match
an existing manifest and artifact does no work; ``force=True`` retrains.

Any other model repository brings its own recipe: a ``build.py`` at its root
exposing ``build(folder: Path) -> None`` (:func:`build_models_dir`). Its record,
``.build.json``, holds a fingerprint (the recipe's source and the library
versions) and the sha256 of every file in the folder after the build; a run with
the same fingerprint and unchanged files does no work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference import datasets
from reference.agaricus import sha256_of
from reference.catalog import MNIST_SVM, MUSHROOM_XGBOOST, ModelSpec
from reference.errors import ConfigError
from reference.paths import MODELS_DIR

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
# Bump when a recipe changes, so existing artifacts are rebuilt.
RECIPES = {
    MNIST_SVM.name: "sklearn.svm.SVC(gamma=0.001); digits first half (shuffle=False)",
    MUSHROOM_XGBOOST.name: (
        "xgb.train({'max_depth': 2, 'eta': 1, 'objective': 'binary:logistic'}, dtrain, 2);"
        " agaricus.txt.train"
    ),
}


def library_versions() -> dict[str, str]:
    import joblib
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "joblib": joblib.__version__,
    }


@dataclass(frozen=True)
class TrainResult:
    model: str
    trained: bool  # False when the existing artifact was up to date
    manifest: dict


def _fingerprint(model: str, data_sha256: str, versions: dict[str, str]) -> str:
    blob = json.dumps([RECIPES[model], data_sha256, versions], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_manifest(spec: ModelSpec, models_dir: Path | None = None) -> dict | None:
    path = (models_dir or MODELS_DIR) / spec.name / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fit_mnist(artifact: Path) -> tuple[float, datasets.Split]:
    import joblib
    from sklearn import svm

    split = datasets.digits()
    classifier = svm.SVC(gamma=0.001)
    classifier.fit(split.X_train, split.y_train)
    joblib.dump(classifier, artifact)
    accuracy = float(np.mean(classifier.predict(split.X_test) == split.y_test))
    return accuracy, split


def _fit_mushroom(artifact: Path, data_dir: str | None) -> tuple[float, datasets.Split]:
    import xgboost as xgb

    split = datasets.mushrooms(data_dir)
    dtrain = xgb.DMatrix(split.X_train, label=split.y_train)
    params = {"max_depth": 2, "eta": 1, "objective": "binary:logistic"}
    booster = xgb.train(params, dtrain, 2)
    booster.save_model(artifact)
    probabilities = booster.predict(xgb.DMatrix(split.X_test))
    accuracy = float(np.mean((probabilities > 0.5) == split.y_test))
    return accuracy, split


def train_one(
    spec: ModelSpec,
    *,
    force: bool = False,
    data_dir: str | None = None,
    models_dir: Path | None = None,
) -> TrainResult:
    models_dir = models_dir or MODELS_DIR
    folder = models_dir / spec.name
    artifact = folder / spec.artifact
    versions = library_versions()
    if spec.name == MNIST_SVM.name:
        data_sha = datasets.digits().sha256
        fit: Callable[[Path], tuple[float, datasets.Split]] = _fit_mnist
    else:
        data_sha = datasets.mushrooms(data_dir).sha256
        def fit(path: Path) -> tuple[float, datasets.Split]:
            return _fit_mushroom(path, data_dir)
    fingerprint = _fingerprint(spec.name, data_sha, versions)

    existing = read_manifest(spec, models_dir)
    if (
        not force
        and existing is not None
        and existing.get("fingerprint") == fingerprint
        and artifact.is_file()
        and sha256_of(artifact) == existing["artifact"]["sha256"]
    ):
        return TrainResult(spec.name, False, existing)

    folder.mkdir(parents=True, exist_ok=True)
    tmp = artifact.with_name(artifact.name + ".tmp" + artifact.suffix)
    accuracy, split = fit(tmp)
    os.replace(tmp, artifact)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model": spec.name,
        "version": spec.version,
        "recipe": RECIPES[spec.name],
        "libraries": versions,
        "training_data": {"source": split.source, "rows": int(len(split.y_train)),
                          "sha256": data_sha},
        "artifact": {"file": spec.artifact, "sha256": sha256_of(artifact)},
        "heldout": {"rows": int(len(split.y_test)), "accuracy": round(accuracy, 6)},
        "fingerprint": fingerprint,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return TrainResult(spec.name, True, manifest)


def train_all(*, force: bool = False, data_dir: str | None = None,
              models_dir: Path | None = None) -> list[TrainResult]:
    return [
        train_one(spec, force=force, data_dir=data_dir, models_dir=models_dir)
        for spec in (MNIST_SVM, MUSHROOM_XGBOOST)
    ]


BUILD_RECIPE = "build.py"
BUILD_RECORD = ".build.json"
_NOT_RECORDED = {BUILD_RECORD, "__pycache__"}


@dataclass(frozen=True)
class BuildResult:
    models_dir: Path
    built: bool  # False when the record said everything was up to date
    files: int  # files recorded after the build


def _recorded_files(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): sha256_of(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not _NOT_RECORDED & set(path.relative_to(folder).parts)
    }


def _load_recipe(recipe: Path) -> Callable[[Path], None]:
    module_name = "_model_repo_build_" + hashlib.sha256(str(recipe).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, recipe)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{recipe} cannot be imported as Python: check the file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{recipe} failed to import ({type(exc).__name__}: {exc}): fix the recipe") from exc
    build = getattr(module, "build", None)
    if not callable(build):
        raise ConfigError(f"{recipe} has no `build(folder: Path) -> None` function: add one")
    return build


def build_models_dir(models_dir: Path, *, force: bool = False) -> BuildResult:
    """Run ``models_dir/build.py``'s ``build(models_dir)`` unless its record says it is up to date."""
    folder = Path(models_dir).resolve()
    recipe = folder / BUILD_RECIPE
    if not recipe.is_file():
        raise ConfigError(
            f"{models_dir} has no {BUILD_RECIPE}: add one exposing `build(folder: Path) -> None` "
            "that writes the artifacts, or put the artifacts there yourself (nothing to train)"
        )
    blob = json.dumps([recipe.read_text(), library_versions()], sort_keys=True)
    fingerprint = hashlib.sha256(blob.encode()).hexdigest()
    record_path = folder / BUILD_RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = None
    if (
        not force
        and isinstance(record, dict)
        and record.get("fingerprint") == fingerprint
        and all((folder / name).is_file() and sha256_of(folder / name) == digest
                for name, digest in record.get("files", {}).items())
    ):
        return BuildResult(folder, False, len(record["files"]))
    build = _load_recipe(recipe)
    build(folder)
    files = _recorded_files(folder)
    record_path.write_text(json.dumps({"fingerprint": fingerprint, "files": files}, indent=2) + "\n")
    return BuildResult(folder, True, len(files))
