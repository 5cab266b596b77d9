"""Unit tests of the pre-encoded payloads and of the answer checks (no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadtests._plan import PlanError
from loadtests._workload import ModelLoad, build_model_load, check_grpc, check_rest
from oip._pb import pb
from oip.codec import build_infer_response, inputs_from_grpc_request, inputs_from_json_request, to_json_tensor
from reference import datasets


@pytest.fixture(scope="module")
def mnist() -> ModelLoad:
    return build_model_load("mnist-svm", batch_size=2, versioned=True)


@pytest.fixture(scope="module")
def mushroom() -> ModelLoad:
    return build_model_load("mushroom-xgboost", batch_size=1, versioned=False)


def as_output(values: list, datatype: str) -> np.ndarray:
    return np.asarray(values, dtype=np.float32 if datatype == "FP32" else np.int64).reshape(-1, 1)


def rest_answer(load: ModelLoad, values: list, datatype: str | None = None, **changes: object) -> bytes:
    datatype = datatype or load.spec.output_datatype
    tensor = to_json_tensor(load.spec.output_name, as_output(values, datatype), datatype)
    body = {"model_name": load.name, "outputs": [tensor], **changes}
    return json.dumps(body).encode()


def grpc_answer(load: ModelLoad, values: list, model_name: str | None = None) -> bytes:
    response = build_infer_response(
        model_name or load.name, {load.spec.output_name: as_output(values, load.spec.output_datatype)},
        datatypes={load.spec.output_name: load.spec.output_datatype})
    return response.SerializeToString()


def test_payloads_carry_the_held_out_rows(mnist: ModelLoad, mushroom: ModelLoad) -> None:
    X, _ = datasets.heldout("mnist-svm")
    assert len(mnist.items) == len(X) // 2
    item = mnist.items[3]
    sent = inputs_from_json_request(json.loads(item.rest_body))["predict"]
    np.testing.assert_array_equal(sent, X[6:8])
    request = pb.ModelInferRequest.FromString(item.grpc_body)
    assert (request.model_name, request.model_version) == ("mnist-svm", "v0.1.0")
    np.testing.assert_array_equal(inputs_from_grpc_request(request)["predict"], X[6:8])
    assert mnist.rest_path == "/v2/models/mnist-svm/versions/v0.1.0/infer"
    assert mushroom.rest_path == "/v2/models/mushroom-xgboost/infer"
    assert pb.ModelInferRequest.FromString(mushroom.items[0].grpc_body).model_version == ""


def test_right_answers_pass(mnist: ModelLoad, mushroom: ModelLoad) -> None:
    item = mnist.items[0]
    assert check_rest(mnist, item, 200, rest_answer(mnist, list(item.expected))) is None
    assert check_grpc(mnist, item, grpc_answer(mnist, list(item.expected))) is None
    item = mushroom.items[5]
    close = [item.expected[0] + 5e-7]
    assert check_rest(mushroom, item, 200, rest_answer(mushroom, close)) is None
    assert check_grpc(mushroom, item, grpc_answer(mushroom, close)) is None


def test_a_wrong_prediction_names_model_row_and_values(mnist: ModelLoad) -> None:
    item = mnist.items[10]
    wrong = [item.expected[0], (item.expected[1] + 1) % 10]
    for problem in (check_rest(mnist, item, 200, rest_answer(mnist, wrong)),
                    check_grpc(mnist, item, grpc_answer(mnist, wrong))):
        assert problem is not None
        assert "wrong answer: mnist-svm row 21" in problem
        assert f"server {wrong[1]}" in problem and f"oracle {item.expected[1]}" in problem


def test_probabilities_beyond_the_tolerance_fail(mushroom: ModelLoad) -> None:
    item = mushroom.items[0]
    problem = check_rest(mushroom, item, 200, rest_answer(mushroom, [item.expected[0] + 1e-3]))
    assert problem is not None and "mushroom-xgboost row 0" in problem


@pytest.mark.parametrize(("status", "body", "fragment"), [
    (500, b'{"error": "boom"}', "HTTP 500"),
    (200, b"not json", "not JSON"),
    (200, b"[1, 2]", "not a V2 response"),
    (200, b'{"model_name": "other", "outputs": []}', "model_name is 'other'"),
    (200, b'{"model_name": "mnist-svm"}', "no 'outputs' list"),
    (200, b'{"model_name": "mnist-svm", "outputs": [{"name": "proba"}]}', "no output named 'predict'"),
    (200, b'{"model_name": "mnist-svm", "outputs": [{"name": "predict", "shape": [2, 1], '
          b'"datatype": "INT64", "data": [1]}]}', "not a valid V2 tensor"),
])
def test_malformed_rest_answers_fail(mnist: ModelLoad, status: int, body: bytes, fragment: str) -> None:
    problem = check_rest(mnist, mnist.items[0], status, body)
    assert problem is not None and fragment in problem, problem


def test_wrong_datatype_and_shape_fail(mnist: ModelLoad) -> None:
    item = mnist.items[0]
    problem = check_rest(mnist, item, 200, rest_answer(mnist, [1.0, 2.0], datatype="FP32"))
    assert problem is not None and "datatype FP32" in problem
    problem = check_rest(mnist, item, 200, rest_answer(mnist, [1, 2, 3]))
    assert problem is not None and "shape" in problem


def test_malformed_grpc_answers_fail(mnist: ModelLoad) -> None:
    item = mnist.items[0]
    assert "not a ModelInferResponse" in check_grpc(mnist, item, b"\xff\xff\xff")
    assert "model_name is 'x'" in check_grpc(mnist, item, grpc_answer(mnist, list(item.expected), "x"))


def test_a_batch_larger_than_the_data_is_refused() -> None:
    with pytest.raises(PlanError, match="held-out rows"):
        build_model_load("mnist-svm", batch_size=10_000, versioned=True)
