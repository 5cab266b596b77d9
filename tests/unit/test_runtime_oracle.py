"""The runtime oracle (a model's own MLServer runtime in-process) and the output comparison, no server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from oip.codec import build_json_infer_request, outputs_from_json_response
from reference import datasets, oracle, train
from reference.catalog import MODELS
from reference.paths import MODELS_DIR, REPO_ROOT
from reference.runtime_oracle import (
    OracleError,
    OracleUnavailable,
    RuntimeOracle,
    compare_outputs,
    load_oracle,
)

MODEL_REPO = REPO_ROOT / "tests" / "model_repo"


@pytest.fixture(scope="module")
def model_repo() -> Path:
    train.build_models_dir(MODEL_REPO)  # no work when up to date
    return MODEL_REPO


@pytest.fixture(scope="module")
def seeds() -> Path:
    train.train_all()  # no work when up to date
    return MODELS_DIR


@pytest.fixture(scope="module")
def iris(model_repo):
    loaded = load_oracle(model_repo / "iris-tagged")
    assert isinstance(loaded, RuntimeOracle), loaded
    yield loaded
    loaded.close()


def _iris_request(rows: np.ndarray, tags: list[str], outputs: list[str] | None = None) -> dict:
    tag_array = np.array([t.encode() for t in tags], dtype=object).reshape(-1, 1)
    return build_json_infer_request({"features": rows.astype(np.float32), "tag": tag_array},
                                    datatypes={"features": "FP32", "tag": "BYTES"}, outputs=outputs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_seed_runtime_agrees_with_the_artifact_run_directly(seeds, name):
    spec = MODELS[name]
    X, _ = datasets.heldout(name)
    rows = X  # every held-out row: 899 digits, 1611 mushrooms
    loaded = load_oracle(seeds / name)
    assert isinstance(loaded, RuntimeOracle), loaded
    try:
        request = build_json_infer_request({spec.input_name: rows}, datatypes={spec.input_name: "FP32"})
        response = loaded.infer(request)
    finally:
        loaded.close()
    assert response["model_name"] == name and response["model_version"] == spec.version
    served = outputs_from_json_response(response)[spec.output_name]
    assert response["outputs"][0]["datatype"] == spec.output_datatype
    assert oracle.mismatch(name, oracle.predict(name, rows), served) is None


def _build_module(model_repo: Path):
    """tests/model_repo/build.py as a module (for its held-out rows)."""
    recipe = importlib.util.spec_from_file_location("_repo_build_for_test", model_repo / "build.py")
    module = importlib.util.module_from_spec(recipe)
    recipe.loader.exec_module(module)
    return module


def test_custom_runtime_answers(iris, model_repo):
    X, y = _build_module(model_repo).heldout("iris-tagged")
    tags = [f"row-{i}" for i in range(len(y))]
    response = iris.infer(_iris_request(X, tags))
    assert response["model_version"] == "2"
    outputs = outputs_from_json_response(response)
    assert [o["name"] for o in response["outputs"]] == ["species", "probability", "tag"]
    assert outputs["tag"].reshape(-1).tolist() == [t.encode() for t in tags]
    names = np.array([b"setosa", b"versicolor", b"virginica"], dtype=object)
    accuracy = np.mean(outputs["species"].reshape(-1) == names[y])
    assert accuracy > 0.9
    assert ((outputs["probability"] > 0.33) & (outputs["probability"] <= 1)).all()


def test_custom_runtime_returns_only_requested_outputs(iris):
    response = iris.infer(_iris_request(np.ones((1, 4)), ["a"], outputs=["tag"]))
    assert [o["name"] for o in response["outputs"]] == ["tag"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["inputs"].pop(), "exactly two inputs"),
    (lambda r: r["inputs"][0].update(shape=[2, 2]), r"shape \[rows, 4\], not \[2, 2\]"),
    (lambda r: r["inputs"][1].update(shape=[4, 1], data=["a"] * 4), r"shape \[1, 1\]"),
    (lambda r: r.update(outputs=[{"name": "nope"}]), "not \\['nope'\\]"),
])
def test_custom_runtime_refuses_a_bad_request(iris, mutate, message):
    request = _iris_request(np.ones((1, 4)), ["a"])
    mutate(request)
    with pytest.raises(OracleError, match=message) as caught:
        iris.infer(request)
    assert caught.value.status == 400


def test_invalid_v2_request_is_an_oracle_error(iris):
    with pytest.raises(OracleError, match="not a valid V2 request") as caught:
        iris.infer({"inputs": "nope"})
    assert caught.value.status == 422


def test_oracle_works_inside_a_running_event_loop(iris):
    async def call():
        return iris.infer(_iris_request(np.ones((1, 4)), ["a"], outputs=["species"]))

    assert asyncio.run(call())["outputs"][0]["name"] == "species"


def test_second_custom_runtime_uint8_in_uint8_fp16_bool_out(model_repo, iris):
    digits = load_oracle(model_repo / "digits-lowprec")
    assert isinstance(digits, RuntimeOracle), digits
    X, y = _build_module(model_repo).heldout("digits-lowprec")
    try:
        response = digits.infer(build_json_infer_request({"pixels": X.astype(np.uint8)}))
        with pytest.raises(OracleError, match=r"must be UINT8 \(0-16\), not FP32"):
            digits.infer(build_json_infer_request({"pixels": X[:1].astype(np.float32)}))
    finally:
        digits.close()
    kinds = {o["name"]: o["datatype"] for o in response["outputs"]}
    assert kinds == {"digit": "UINT8", "confidence": "FP16", "even": "BOOL"}
    outputs = outputs_from_json_response(response)
    assert np.mean(outputs["digit"].reshape(-1) == y) > 0.9
    assert (outputs["even"].reshape(-1) == (outputs["digit"].reshape(-1) % 2 == 0)).all()
    # both custom runtimes live in a module named `runtime`: iris still answers
    assert iris.infer(_iris_request(np.ones((1, 4)), ["a"], outputs=["tag"]))["outputs"][0]["data"] == ["a"]


def test_sklearn_runtime_returns_both_outputs_when_asked(model_repo):
    wine = load_oracle(model_repo / "wine-proba")
    assert isinstance(wine, RuntimeOracle), wine
    with wine:
        request = build_json_infer_request({"features": np.full((2, 13), 3.0)},
                                           outputs=["predict", "predict_proba"])
        response = wine.infer(request)
    wine.close()  # idempotent
    assert "model_version" not in response  # unversioned
    shapes = {o["name"]: (o["datatype"], o["shape"]) for o in response["outputs"]}
    assert shapes == {"predict": ("INT64", [2, 1]), "predict_proba": ("FP64", [2, 3])}


@pytest.mark.parametrize(("settings", "reason"), [
    (None, "does not exist"),
    ("{broken", "MLServer refuses"),
    ({"name": "m", "implementation": "no_such_module.Model"}, "cannot import implementation 'no_such"),
    ({"name": "m", "implementation": "mlserver_sklearn.SKLearnModel"}, "load() failed"),
])
def test_unloadable_model_gives_a_reason(tmp_path, settings, reason):
    if settings is not None:
        text = settings if isinstance(settings, str) else json.dumps(settings)
        (tmp_path / "model-settings.json").write_text(text)
    loaded = load_oracle(tmp_path)
    assert isinstance(loaded, OracleUnavailable) and not loaded
    assert reason in loaded.reason


ECHO_RUNTIME = """
from mlserver import MLModel
from mlserver.types import InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self):
        return True

    async def predict(self, payload):
        first = payload.inputs[0]
        return InferenceResponse(model_name=self.name, outputs=[ResponseOutput(
            name="echo", datatype=first.datatype, shape=first.shape, data=first.data)])
"""


def test_another_custom_runtime_module_named_runtime_loads_too(iris, tmp_path):
    """MLServer re-imports `runtime` from each model's folder: two custom runtimes may share the name."""
    (tmp_path / "runtime.py").write_text(ECHO_RUNTIME)
    settings = {"name": "echo", "implementation": "runtime.Echo"}
    (tmp_path / "model-settings.json").write_text(json.dumps(settings))
    echo = load_oracle(tmp_path)
    assert isinstance(echo, RuntimeOracle), echo
    try:
        request = build_json_infer_request({"x": np.arange(3, dtype=np.int32)})
        assert echo.infer(request)["outputs"][0]["data"] == [0, 1, 2]
    finally:
        echo.close()
    assert iris.infer(_iris_request(np.ones((1, 4)), ["a"], outputs=["tag"]))["outputs"][0]["data"] == ["a"]


def test_the_oracle_keeps_apart_two_custom_runtimes_with_one_module_name(two_models_one_module_name):
    oracles = [load_oracle(folder) for folder in two_models_one_module_name]
    try:
        answers = [o.infer({"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}]})
                   for o in oracles]
    finally:
        for o in oracles:
            o.close()
    assert [a["outputs"][0]["data"] for a in answers] == [["a"], ["b"]]


def test_a_broken_custom_runtime_gives_a_reason(tmp_path):
    (tmp_path / "runtime.py").write_text("def broken(:\n")
    (tmp_path / "model-settings.json").write_text(json.dumps({"name": "b", "implementation": "runtime.Nope"}))
    loaded = load_oracle(tmp_path)
    assert isinstance(loaded, OracleUnavailable)
    assert "cannot import implementation 'runtime.Nope'" in loaded.reason and "SyntaxError" in loaded.reason


# ---------------------------------------------------------------- compare


def _response(*outputs: dict) -> dict:
    return {"model_name": "m", "outputs": list(outputs)}


def _tensor(name: str, datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


@pytest.mark.parametrize(("datatype", "close", "far"), [
    ("FP16", 1.0005, 1.01),
    ("FP32", 1.000005, 1.0001),
    ("FP64", 1 + 1e-10, 1 + 1e-7),
])
def test_float_tolerance_by_datatype(datatype, close, far):
    expected = _response(_tensor("y", datatype, [1.0, 0.0]))
    assert compare_outputs(expected, _response(_tensor("y", datatype, [close, 0.0]))) == []
    problems = compare_outputs(expected, _response(_tensor("y", datatype, [far, 0.0])))
    assert len(problems) == 1 and "1 of 2 elements differ" in problems[0]


@pytest.mark.parametrize(("datatype", "a", "b"), [
    ("INT64", [1, 2], [1, 3]),
    ("BOOL", [True, False], [True, True]),
    ("BYTES", ["a", "b"], ["a", "c"]),
])
def test_exact_datatypes(datatype, a, b):
    assert compare_outputs(_response(_tensor("y", datatype, a)), _response(_tensor("y", datatype, a))) == []
    assert compare_outputs(_response(_tensor("y", datatype, a)), _response(_tensor("y", datatype, b)))


def test_compare_reports_names_datatypes_shapes():
    expected = _response(_tensor("a", "FP32", [1.0, 2.0]), _tensor("b", "INT64", [1]))
    actual = _response(_tensor("a", "FP64", [1.0, 2.0]), _tensor("c", "INT64", [1]))
    problems = compare_outputs(expected, actual)
    assert any("'a': datatype FP64, expected FP32" in p for p in problems)
    assert any("'b' is missing" in p for p in problems)
    assert any("'c' was not expected" in p for p in problems)
    reshaped = _response(_tensor("a", "FP32", [1.0, 2.0], [2, 1]), _tensor("b", "INT64", [1]))
    assert "shape [2, 1], expected [2]" in compare_outputs(expected, reshaped)[0]
    nested = _response(_tensor("a", "FP32", [[1.0], [2.0]], [2, 1]), _tensor("b", "INT64", [1]))
    assert compare_outputs(reshaped, nested) == []
    assert compare_outputs(expected, {"error": "boom"}) == ["the actual response has no 'outputs' list"]
