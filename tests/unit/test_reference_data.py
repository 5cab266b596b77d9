"""Agaricus lookup, settings checks and training, without a server."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from oip.names import LOOPBACK
from reference import __main__ as cli
from reference import agaricus, config, oracle, train
from reference.catalog import MODELS
from reference.errors import ConfigError, DataError
from reference.paths import MODELS_DIR

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "agaricus"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@pytest.fixture
def no_local_data(monkeypatch, tmp_path):
    monkeypatch.delenv(agaricus.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(agaricus, "BASE_URL", f"http://{LOOPBACK}:{_closed_port()}/data/")
    agaricus_cache_clear()


def agaricus_cache_clear() -> None:
    from reference import datasets

    datasets.mushrooms.cache_clear()


def test_offline_with_nothing_local_names_url_and_option(no_local_data):
    with pytest.raises(DataError) as info:
        agaricus.locate("agaricus.txt.train")
    message = str(info.value)
    assert "\n" not in message
    assert agaricus.BASE_URL + "agaricus.txt.train" in message
    assert "--agaricus-dir" in message and agaricus.ENV_VAR in message


def test_cli_offline_prints_one_line_and_exits_nonzero(no_local_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "MODELS_DIR", tmp_path / "models")
    code = cli.main(["train"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]


def test_wrong_sha256_is_refused(tmp_path):
    (tmp_path / "agaricus.txt.train").write_text("1 3:1 10:1\n")
    with pytest.raises(DataError, match="refusing"):
        agaricus.locate("agaricus.txt.train", tmp_path)


def test_missing_file_in_named_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        agaricus.locate("agaricus.txt.test", tmp_path)


def test_cache_is_used_when_no_folder_is_named(no_local_data, tmp_path):
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/datasets/agaricus beside the repo")
    cached = agaricus.cache_dir()
    cached.mkdir(parents=True)
    shutil.copy(SHARED / "agaricus.txt.test", cached / "agaricus.txt.test")
    assert agaricus.locate("agaricus.txt.test") == cached / "agaricus.txt.test"


def test_bad_model_settings_json_is_reported(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model-settings.json").write_text('{"name": "broken",')
    with pytest.raises(ConfigError, match="not valid JSON"):
        config.discover_models(tmp_path)


def test_missing_artifact_tells_to_train(tmp_path):
    shutil.copytree(MODELS_DIR / "mnist-svm", tmp_path / "mnist-svm",
                    ignore=shutil.ignore_patterns("model.joblib"))
    with pytest.raises(ConfigError, match="python -m reference train"):
        config.discover_models(tmp_path)


def test_unknown_server_setting_is_reported(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"http_prot": 8080}))
    with pytest.raises(ConfigError, match="http_prot"):
        config.load_server_settings(path)


def test_shipped_settings_bind_loopback_and_declare_tensors():
    settings = config.load_server_settings(MODELS_DIR.parent / "settings.json")
    assert settings["host"] == "127.0.0.1" and settings["debug"] is False
    for model in config.discover_models(MODELS_DIR, require_artifacts=False):
        assert model.version == "v0.1.0"
        for tensor in model.settings["inputs"] + model.settings["outputs"]:
            assert tensor["shape"][0] == -1


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    for name in MODELS:
        shutil.copytree(MODELS_DIR / name, models / name,
                        ignore=shutil.ignore_patterns("model.*", "manifest.json"))
    first = train.train_all(models_dir=models)
    X = {name: __import__("reference.datasets", fromlist=["heldout"]).heldout(name)[0] for name in MODELS}
    before = {name: oracle.predict(name, X[name], models) for name in MODELS}
    again = train.train_all(models_dir=models)
    forced = train.train_all(models_dir=models, force=True)
    oracle._load.cache_clear()
    after = {name: oracle.predict(name, X[name], models) for name in MODELS}
    return first, again, forced, before, after


def test_training_is_deterministic(trained_twice):
    _, _, _, before, after = trained_twice
    for name in MODELS:
        np.testing.assert_array_equal(before[name], after[name])


def test_second_run_does_no_work_and_force_retrains(trained_twice):
    first, again, forced, _, _ = trained_twice
    assert [r.trained for r in first] == [True, True]
    assert [r.trained for r in again] == [False, False]
    assert [r.trained for r in forced] == [True, True]


def test_manifest_records_accuracy_and_hashes(trained_twice):
    first = {r.model: r.manifest for r in trained_twice[0]}
    assert first["mnist-svm"]["heldout"]["accuracy"] == pytest.approx(0.969, abs=0.002)
    assert first["mushroom-xgboost"]["heldout"]["accuracy"] == pytest.approx(0.978, abs=0.002)
    for manifest in first.values():
        assert len(manifest["training_data"]["sha256"]) == 64
        assert len(manifest["artifact"]["sha256"]) == 64
        assert {"numpy", "scikit-learn", "xgboost"} <= set(manifest["libraries"])
