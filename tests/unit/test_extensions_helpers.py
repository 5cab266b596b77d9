"""Pure helpers of the Triton extension rules: binary framing (against tritonclient's own
encoder and decoder), classification entries, statistics shape, and the extensions' proto."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton_http
from google.protobuf import descriptor_pool

from conformance.extension_checks import classification_problems, rest_stat_problems
from oip.codec import build_json_infer_request
from oip.errors import CodecError
from oip.extensions import (
    INFERENCE_HEADER,
    ClassEntry,
    binary_request,
    binary_response_outputs,
    parse_class_entry,
)
from oip.extensions_grpc import ext_pb
from oip.proto import regenerate

FLOATS = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
WORDS = np.array([b"ab", b"", "é".encode()], dtype=object)


def test_binary_request_is_byte_for_byte_tritonclients() -> None:
    body = build_json_infer_request([("x", FLOATS), ("s", WORDS), ("i", np.array([[1, -2]], dtype=np.int64))])
    body["outputs"] = [{"name": "y", "parameters": {"binary_data": True}}]
    content, length = binary_request(body)

    inputs = []
    for name, array, datatype in (("x", FLOATS, "FP32"), ("s", WORDS, "BYTES"),
                                  ("i", np.array([[1, -2]], dtype=np.int64), "INT64")):
        tensor = triton_http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    outputs = [triton_http.InferRequestedOutput("y", binary_data=True)]
    theirs, their_length = triton_http.InferenceServerClient.generate_request_body(inputs, outputs=outputs)

    assert (content, length) == (theirs, their_length)
    assert "data" not in json.loads(content[:length])["inputs"][0]


def test_binary_request_leaves_the_body_alone() -> None:
    body = build_json_infer_request([("x", FLOATS)])
    binary_request(body)
    assert body["inputs"][0]["data"] == FLOATS.ravel().tolist()


def _response(outputs: list[tuple[dict, bytes]]) -> tuple[bytes, int]:
    head = json.dumps({"model_name": "m", "outputs": [o for o, _ in outputs]}).encode()
    return head + b"".join(raw for _, raw in outputs), len(head)


def test_binary_response_decodes_as_tritonclient_does() -> None:
    floats = {"name": "y", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}
    words = {"name": "w", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": 16}}
    plain = {"name": "j", "shape": [2], "datatype": "INT64", "data": [7, 8]}
    raw_words = b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x02\x00\x00\x00" + "é".encode()
    content, length = _response([(floats, FLOATS.astype("<f4").tobytes()), (plain, b""), (words, raw_words)])

    header, mine = binary_response_outputs(content, length)
    theirs = triton_http.InferResult.from_response_body(content, header_length=length)

    assert header["model_name"] == "m"
    for name in ("y", "w", "j"):
        assert mine[name].shape == theirs.as_numpy(name).shape
        assert mine[name].tolist() == theirs.as_numpy(name).tolist()


def test_a_json_only_answer_needs_no_header_length() -> None:
    body = json.dumps({"outputs": [{"name": "j", "shape": [1], "datatype": "FP32", "data": [0.5]}]}).encode()
    assert binary_response_outputs(body, None)[1]["j"].tolist() == [0.5]


@pytest.mark.parametrize(("cut", "length", "why"), [
    (0, 10_000, INFERENCE_HEADER), (-1, None, "announced"), (0, 5, "does not parse"),
])
def test_binary_response_framing_errors(cut: int, length: int | None, why: str) -> None:
    floats = {"name": "y", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}
    content, header_length = _response([(floats, b"\x00\x00\x80?")])
    content = content[:len(content) + cut] if cut else content
    with pytest.raises(CodecError, match=why):
        binary_response_outputs(content, header_length if length is None else length)


def test_trailing_bytes_are_an_error() -> None:
    floats = {"name": "y", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}
    content, length = _response([(floats, b"\x00\x00\x80?")])
    with pytest.raises(CodecError, match="after the last"):
        binary_response_outputs(content + b"!", length)


# ------------------------------------------------------------------ classification


def test_class_entries_parse() -> None:
    assert parse_class_entry(b"3.3:1") == ClassEntry(3.3, 1, None)
    assert parse_class_entry("2.4:3:a:b") == ClassEntry(2.4, 3, "a:b")
    for bad in ("3.3", "x:1", "1:-1", "1:y"):
        with pytest.raises(CodecError):
            parse_class_entry(bad)


def test_classification_of_the_docs_example() -> None:
    plain = np.array([[1.1, 3.3, 0.5, 2.4]], dtype=np.float32)
    assert classification_problems(plain, np.array([[b"3.300000:1", b"2.400000:3"]], dtype=object), 2) == []
    wrong_order = classification_problems(plain, np.array([[b"2.4:3", b"3.3:1"]], dtype=object), 2)
    assert wrong_order and "highest" in wrong_order[0]
    wrong_value = classification_problems(plain, np.array([[b"3.1:1", b"2.4:3"]], dtype=object), 2)
    assert wrong_value and "values" in wrong_value[0]
    out_of_range = classification_problems(plain, np.array([[b"3.3:1", b"2.4:4"]], dtype=object), 2)
    assert out_of_range and "distinct" in out_of_range[0]


def test_classification_of_tied_values_takes_any_index() -> None:
    plain = np.array([[5, 5, 1]], dtype=np.int64)
    assert classification_problems(plain, np.array([[b"5:1", b"5:0"]], dtype=object), 2) == []


# ------------------------------------------------------------------ statistics


def _stat(**changes: object) -> dict:
    duration = {"count": 1, "ns": 10}
    stat = {"name": "m", "version": "1", "last_inference": 1, "inference_count": 1, "execution_count": 1,
            "inference_stats": {k: duration for k in ("success", "fail", "queue", "compute_input",
                                                      "compute_infer", "compute_output", "cache_hit")},
            "batch_stats": []}
    return {**stat, **changes}


def test_statistics_shape() -> None:
    assert rest_stat_problems(_stat()) == []
    assert rest_stat_problems({k: v for k, v in _stat().items() if k != "version"}) == []
    assert rest_stat_problems(_stat(inference_count=-1)) == ["`inference_count` is not a count"]
    assert rest_stat_problems(_stat(inference_stats={"success": {"count": 1}})) != []
    assert rest_stat_problems(_stat(batch_stats=None)) == ["`batch_stats` is not a list"]


# ------------------------------------------------------------------ the extensions' proto


def test_extension_modules_are_in_step_with_their_proto() -> None:
    proto = regenerate.EXTENSIONS_PROTO
    for name in regenerate.modules_of(proto):
        assert regenerate.stamped_digest(regenerate.HERE / name, proto) == regenerate.proto_digest(proto), (
            f"oip/proto/{name} is out of step with {proto.name}: run python -m oip.proto.regenerate")


def test_extension_messages_have_the_documents_fields() -> None:
    assert ext_pb.DESCRIPTOR.pool is not descriptor_pool.Default()
    load = ext_pb.RepositoryModelLoadRequest.DESCRIPTOR.fields_by_name
    assert (load["model_name"].number, load["parameters"].number) == (2, 3)
    index = ext_pb.RepositoryIndexResponse.ModelIndex.DESCRIPTOR.fields_by_name
    assert [index[k].number for k in ("name", "version", "state", "reason")] == [1, 2, 3, 4]
    stats = ext_pb.ModelStatistics.DESCRIPTOR.fields_by_name
    assert (stats["inference_count"].number, stats["inference_stats"].number) == (4, 6)
    assert [m.name for m in ext_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods] == [
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload", "ModelStatistics"]
