"""Unit tests of oip.codec: numpy <-> V2 JSON and gRPC tensors, all 13 datatypes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from oip import (
    DATATYPES,
    CodecError,
    build_infer_request,
    build_infer_response,
    build_json_infer_request,
    datatype_of,
    from_grpc_tensor,
    from_json_tensor,
    inputs_from_grpc_request,
    outputs_from_grpc_response,
    outputs_from_json_response,
    to_grpc_input,
    to_json_tensor,
)
from oip._pb import pb

NUMERIC = [name for name in DATATYPES if name != "BYTES"]
TYPED = [name for name in NUMERIC if name != "FP16"]
SHAPES = array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
FAST = settings(max_examples=25, deadline=None)


def numeric_arrays(datatype: str, finite: bool = False) -> st.SearchStrategy[np.ndarray]:
    dtype = DATATYPES[datatype].dtype
    elements = {"allow_nan": False, "allow_infinity": False} if finite and dtype.kind == "f" else None
    return arrays(dtype, SHAPES, elements=elements)


def bytes_arrays(elements: st.SearchStrategy[bytes]) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.object_, SHAPES, elements=elements)


BINARY = st.binary(max_size=12)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8).map(str.encode)


def sent(array: np.ndarray) -> np.ndarray:
    """What a receiver should see: 0-d arrays travel with shape [1]."""
    return array.reshape(1) if array.ndim == 0 else array


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    expected = sent(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(actual, expected)  # treats NaN == NaN
    else:
        assert actual.tolist() == expected.tolist()


def over_the_wire(tensor: dict) -> dict:
    return json.loads(json.dumps(tensor, allow_nan=False))


# ------------------------------------------------------------- the table


def test_table_has_the_13_datatypes_with_their_grpc_fields() -> None:
    assert {name: info.grpc_field for name, info in DATATYPES.items()} == {
        "BOOL": "bool_contents",
        "UINT8": "uint_contents",
        "UINT16": "uint_contents",
        "UINT32": "uint_contents",
        "UINT64": "uint64_contents",
        "INT8": "int_contents",
        "INT16": "int_contents",
        "INT32": "int_contents",
        "INT64": "int64_contents",
        "FP16": None,
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }
    assert DATATYPES["BOOL"].itemsize == 1
    assert DATATYPES["FP16"].itemsize == 2
    assert DATATYPES["UINT64"].itemsize == 8
    assert DATATYPES["BYTES"].itemsize is None


@pytest.mark.parametrize("datatype", NUMERIC)
def test_datatype_of_inverts_the_table(datatype: str) -> None:
    assert datatype_of(np.zeros(2, DATATYPES[datatype].dtype)) == datatype


def test_datatype_of_bytes_like_and_python_values() -> None:
    assert datatype_of(np.array([b"a"], dtype=object)) == "BYTES"
    assert datatype_of(np.array([b"a"])) == "BYTES"
    assert datatype_of(np.array(["a"])) == "BYTES"
    assert datatype_of(np.dtype(">i4")) == "INT32"
    assert datatype_of([1, 2]) == "INT64"
    assert datatype_of([1.5]) == "FP64"


def test_datatype_of_rejects_unsupported_dtypes() -> None:
    with pytest.raises(CodecError, match="complex128 has no V2 datatype"):
        datatype_of(np.zeros(1, np.complex128))


# ------------------------------------------------------------- JSON


@pytest.mark.parametrize("datatype", NUMERIC)
@FAST
@given(data=st.data())
def test_json_round_trip_flat_and_nested(datatype: str, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype, finite=True))
    flat = over_the_wire(to_json_tensor("t", array))
    nested = over_the_wire(to_json_tensor("t", array, nested=True))
    assert flat["datatype"] == nested["datatype"] == datatype
    assert flat["shape"] == nested["shape"] == list(sent(array).shape)
    assert all(not isinstance(x, list) for x in flat["data"])
    assert_same(from_json_tensor(flat), array)
    assert_same(from_json_tensor(nested), array)


@FAST
@given(array=bytes_arrays(TEXT))
def test_json_round_trip_bytes_as_text(array: np.ndarray) -> None:
    for nested in (False, True):
        tensor = over_the_wire(to_json_tensor("t", array, nested=nested))
        assert tensor["datatype"] == "BYTES"
        assert_same(from_json_tensor(tensor), array)


def test_json_bytes_travel_as_utf8_strings() -> None:
    tensor = to_json_tensor("t", np.array([b"caf\xc3\xa9", "π"], dtype=object))
    assert tensor["data"] == ["café", "π"]
    assert from_json_tensor(tensor).tolist() == ["café".encode(), "π".encode()]


def test_json_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(CodecError, match="not valid UTF-8.*gRPC"):
        to_json_tensor("t", np.array([b"\xff"], dtype=object))


def test_json_scalar_is_sent_with_shape_1() -> None:
    assert to_json_tensor("t", np.float32(2.5)) == {
        "name": "t",
        "shape": [1],
        "datatype": "FP32",
        "data": [2.5],
    }


def test_json_zero_sized_dims() -> None:
    array = np.zeros((2, 0, 3), np.int16)
    nested = to_json_tensor("t", array, nested=True)
    assert nested["data"] == [[], []]
    assert from_json_tensor(nested).shape == (2, 0, 3)


def test_json_explicit_datatype_converts_losslessly() -> None:
    tensor = to_json_tensor("t", [1, 2, 3], datatype="UINT8")
    assert tensor["datatype"] == "UINT8"
    assert to_json_tensor("t", np.arange(3, dtype=np.int16), "FP32")["data"] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("value", "datatype", "message"),
    [
        (np.array([1.5]), "INT32", "astype"),
        (np.array([-1], np.int64), "UINT64", "without losing data"),
        ([300], "UINT8", "out of range"),
        ([1.5], "INT32", "cannot send float64 values as INT32"),
        ([1], "BOOL", "cannot send int64 values as BOOL"),
        ([1, 2], "BYTES", "BYTES element 0 is a int"),
    ],
)
def test_lossy_conversion_is_refused(value: object, datatype: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        to_json_tensor("t", value, datatype)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_json_refuses_nan_and_infinity_unless_allowed(bad: float, datatype: str) -> None:
    array = np.array([1.0, bad], DATATYPES[datatype].dtype)
    with pytest.raises(CodecError, match="NaN or Infinity.*allow_nonfinite=True"):
        to_json_tensor("t", array)
    tensor = json.loads(json.dumps(to_json_tensor("t", array, allow_nonfinite=True)))
    assert_same(from_json_tensor(tensor), array)


def tensor(datatype: str = "INT32", shape: object = (2,), data: object = (1, 2)) -> dict:
    return {"name": "t", "datatype": datatype, "shape": list(shape), "data": list(data)}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (tensor(shape=[3]), r"shape \[3\] needs 3 elements but there are 2"),
        (tensor(shape=[2, 2], data=[[1, 2], [3]]), "needs 4 elements but there are 3"),
        (tensor(datatype="FLOAT32"), "unknown datatype 'FLOAT32'; expected one of BOOL"),
        (tensor(datatype="int32"), "case-sensitive: did you mean 'INT32'"),
        (tensor(datatype="Fp32"), "did you mean 'FP32'"),
        (tensor(shape=[-1, 2]), "non-negative integers"),
        (tensor(data=[1, 2.5]), "element 1 is 2.5 .*INT32 data must be int"),
        (tensor(data=[1, True]), "element 1 is True"),
        (tensor("BOOL", data=[1, 0]), "BOOL data must be bool"),
        (tensor("FP32", data=[1.0, "NaN"]), "FP32 data must be int or float"),
        (tensor("BYTES", data=["a", 1]), "BYTES data must be string"),
        (tensor("UINT8", data=[1, 256]), "out of range for UINT8"),
        (tensor("INT8", data=[-129, 0]), "out of range for INT8"),
        ({"name": "t", "datatype": "INT32", "shape": [1]}, "no 'data' field"),
        ({**tensor(), "data": 5}, "'data' must be a list"),
    ],
)
def test_json_decode_errors(bad: dict, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        from_json_tensor(bad)


def test_codec_error_is_a_value_error() -> None:
    assert issubclass(CodecError, ValueError)


def test_json_request_and_response() -> None:
    body = build_json_infer_request(
        {"a": np.array([[1, 2]], np.int32), "b": np.array([b"x"], dtype=object)},
        id="r1",
        outputs=["y"],
        parameters={"content_type": "np"},
        datatypes={"a": "INT64"},
    )
    assert body == {
        "id": "r1",
        "parameters": {"content_type": "np"},
        "inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]},
            {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["x"]},
        ],
        "outputs": [{"name": "y"}],
    }
    response = {"model_name": "m", "outputs": body["inputs"]}
    outputs = outputs_from_json_response(response)
    assert outputs["a"].dtype == np.int64 and outputs["a"].tolist() == [[1, 2]]
    assert outputs["b"].tolist() == [b"x"]


def test_json_request_datatypes_must_name_an_input() -> None:
    with pytest.raises(CodecError, match=r"\['b'\] which are not among the tensors"):
        build_json_infer_request({"a": [1]}, datatypes={"b": "FP32"})


def test_json_response_without_outputs_reports_the_server_error() -> None:
    with pytest.raises(CodecError, match="no 'outputs' list.*server said: 'boom'"):
        outputs_from_json_response({"error": "boom"})


def test_json_response_with_duplicate_names() -> None:
    with pytest.raises(CodecError, match="two tensors named 't'"):
        outputs_from_json_response({"outputs": [tensor(), tensor()]})


# ------------------------------------------------------------- gRPC


@pytest.mark.parametrize("datatype", TYPED)
@FAST
@given(data=st.data())
def test_grpc_typed_and_raw_give_the_same_array(datatype: str, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype))
    typed, none = to_grpc_input("t", array)
    raw_tensor, raw = to_grpc_input("t", array, raw=True)
    assert none is None and isinstance(raw, bytes)
    assert typed.datatype == raw_tensor.datatype == datatype
    assert list(typed.shape) == list(raw_tensor.shape) == list(sent(array).shape)
    assert not raw_tensor.HasField("contents")
    assert_same(from_grpc_tensor(typed), array)
    assert_same(from_grpc_tensor(raw_tensor, raw), array)


@pytest.mark.parametrize("datatype", NUMERIC)
@FAST
@given(data=st.data())
def test_grpc_raw_is_little_endian_row_major(datatype: str, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype))
    _, raw = to_grpc_input("t", array, raw=True)
    assert raw == array.astype(array.dtype.newbyteorder("<")).tobytes(order="C")


def test_grpc_raw_of_big_endian_array() -> None:
    _, raw = to_grpc_input("t", np.array([1, 2], dtype=">i4"), raw=True)
    assert raw == b"\x01\x00\x00\x00\x02\x00\x00\x00"


@FAST
@given(array=numeric_arrays("FP16"))
def test_grpc_fp16_round_trips_raw(array: np.ndarray) -> None:
    request = build_infer_request("m", {"h": array}, raw=True)
    assert_same(inputs_from_grpc_request(request)["h"], array)


def test_grpc_fp16_typed_is_refused_with_the_fix() -> None:
    with pytest.raises(CodecError, match="no typed contents field.*raw=True"):
        to_grpc_input("h", np.zeros(2, np.float16))
    with pytest.raises(CodecError, match="raw=True"):
        build_infer_request("m", {"a": [1], "h": np.zeros(2, np.float16)})


@FAST
@given(array=bytes_arrays(BINARY))
def test_grpc_bytes_round_trip_typed_and_raw(array: np.ndarray) -> None:
    typed, _ = to_grpc_input("b", array)
    raw_tensor, raw = to_grpc_input("b", array, raw=True)
    assert_same(from_grpc_tensor(typed), array)
    assert_same(from_grpc_tensor(raw_tensor, raw), array)


def test_grpc_bytes_raw_layout_is_length_prefixed() -> None:
    _, raw = to_grpc_input("b", np.array([b"ab", b"", b"\x00"], dtype=object), raw=True)
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 1) + b"\x00"


def test_grpc_bytes_from_str_and_lists() -> None:
    typed, _ = to_grpc_input("b", ["héllo", b"\xff"])
    assert list(typed.contents.bytes_contents) == ["héllo".encode(), b"\xff"]


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_request_and_response(raw: bool) -> None:
    arrays_in = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "flag": np.array([True, False]),
        "s": np.array([[b"a", b"bc"]], dtype=object),
        "empty": np.zeros((0, 4), np.uint16),
    }
    request = build_infer_request(
        "m",
        arrays_in,
        model_version="2",
        id="r1",
        outputs=["y"],
        raw=raw,
        parameters={"flag": True, "n": 3, "s": "v"},
    )
    assert (request.model_name, request.model_version, request.id) == ("m", "2", "r1")
    assert [o.name for o in request.outputs] == ["y"]
    assert request.parameters["flag"].bool_param is True
    assert request.parameters["n"].int64_param == 3
    assert request.parameters["s"].string_param == "v"
    assert len(request.raw_input_contents) == (4 if raw else 0)
    for name, array in inputs_from_grpc_request(request).items():
        assert_same(array, arrays_in[name])

    response = build_infer_response("m", arrays_in, raw=raw)
    assert len(response.raw_output_contents) == (4 if raw else 0)
    decoded = outputs_from_grpc_response(response)
    assert list(decoded) == list(arrays_in)
    for name, array in decoded.items():
        assert_same(array, arrays_in[name])


def test_grpc_uint8_goes_in_uint_contents_and_int16_in_int_contents() -> None:
    u8, _ = to_grpc_input("u", np.array([255], np.uint8))
    i16, _ = to_grpc_input("i", np.array([-5], np.int16))
    assert list(u8.contents.uint_contents) == [255]
    assert list(i16.contents.int_contents) == [-5]


def out(
    datatype: str = "INT32", shape: tuple = (2,), **contents: list
) -> pb.ModelInferResponse.InferOutputTensor:
    return pb.ModelInferResponse.InferOutputTensor(
        name="t", datatype=datatype, shape=shape, contents=pb.InferTensorContents(**contents)
    )


@pytest.mark.parametrize(
    ("bad", "raw", "message"),
    [
        (
            out(int_contents=[1]),
            None,
            r"shape \[2\] needs 2 elements but there are 1 values in contents.int_contents",
        ),
        (
            out(int64_contents=[1, 2]),
            None,
            "belongs in contents.int_contents, but contents.int64_contents is set",
        ),
        (out("FP16"), None, "no typed contents field"),
        (out("fp32"), None, "did you mean 'FP32'"),
        (out("UINT8", uint_contents=[1, 256]), None, "out of range for UINT8"),
        (out(), b"\x01\x00\x00\x00", "raw contents hold 4 bytes but 2 INT32 elements need 8"),
        (out(int_contents=[1, 2]), b"\x00" * 8, "raw contents and also typed contents.int_contents"),
        (out("BOOL"), b"\x01\x02", "must be 0 or 1"),
        (out("BYTES"), b"\x05\x00\x00\x00ab", "declares 5 bytes but only 2 remain"),
        (out("BYTES"), b"\x01\x00\x00\x00a\x01\x00", "inside a 4-byte length prefix"),
        (out("BYTES"), b"\x01\x00\x00\x00a", "hold 1 elements but the shape needs 2"),
        (out(shape=(-1,)), None, "non-negative integers"),
    ],
)
def test_grpc_decode_errors(bad: object, raw: bytes | None, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        from_grpc_tensor(bad, raw)


def test_grpc_raw_entries_must_pair_with_every_output() -> None:
    response = build_infer_response("m", {"a": [1], "b": [2]}, raw=True)
    del response.raw_output_contents[1]
    with pytest.raises(CodecError, match="1 raw_output_contents entries for 2 outputs"):
        outputs_from_grpc_response(response)


def test_grpc_duplicate_output_names_are_an_error() -> None:
    response = build_infer_response("m", [("a", [1]), ("a", [2])])
    with pytest.raises(CodecError, match="two tensors named 'a'"):
        outputs_from_grpc_response(response)


def test_inputs_must_be_a_mapping_or_pairs() -> None:
    with pytest.raises(CodecError, match=r"mapping of name -> array or a list of \(name, array\) pairs"):
        build_infer_request("m", [np.zeros(2)])
