"""Builders of requests broken in their structure: missing fields, ill-typed JSON, misplaced gRPC data.

Like :mod:`conformance.bad_requests` (which registers them in ``BUILDERS``), each
builder starts from a valid call and breaks exactly one thing. Each request is
marked with what was broken (``broken``: feature -> value, e.g. ``field=name``),
so a known deviation can name the examples it covers (a deviation ``trigger``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.calls import GrpcBytes, InferCall, Probe, RestBody, grpc_request, json_body
from conformance.models import ModelUnderTest
from conformance.strategies import infer_calls
from oip.datatypes import DATATYPES, datatype_of
from oip.rest import model_path

INPUT_FIELDS = ("name", "shape", "datatype", "data")  # rest.yaml request_input `required`
OUTPUT_NAME = "outputs.name"
GRPC_EMPTY_FIELDS = ("name", "datatype", OUTPUT_NAME)  # proto3: an unset string is ""
NON_INTEGERS = ("fraction", "string", "bool", "null", "2^64")
TYPED_FIELDS = ("bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                "fp32_contents", "fp64_contents", "bytes_contents")
#: JSON element kinds that are not the datatype's own, by the datatype's kind.
MISTYPED = {"float": ("string", "bool"), "int": ("fraction", "string", "bool"),
            "bool": ("number", "string"), "bytes": ("number", "bool")}


# ------------------------------------------------------------ requests marked with what is broken


@dataclass(frozen=True)
class BrokenCall(InferCall):
    broken: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, repr=False)
class BrokenBody(RestBody):
    broken: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BrokenBytes(GrpcBytes):
    broken: tuple[tuple[str, str], ...] = ()


def marked(probe: Probe, **features: object) -> Probe:
    """``probe`` carrying ``features`` (what was broken) for deviation triggers."""
    kind = {InferCall: BrokenCall, RestBody: BrokenBody, GrpcBytes: BrokenBytes}[type(probe)]
    fields = {f.name: getattr(probe, f.name) for f in dataclasses.fields(probe)}
    return kind(**fields, broken=tuple((k, str(v)) for k, v in features.items()))


def broken_features(probe: object) -> dict[str, str]:
    return dict(getattr(probe, "broken", ()))


def _call(model: ModelUnderTest) -> st.SearchStrategy[InferCall]:
    return infer_calls(model, max_batch=4)


def _body(call: InferCall, body: dict[str, Any], **features: object) -> Probe:
    path = model_path(call.model, call.version, "/infer")
    return marked(RestBody(path, _dumps(body)), **features)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


# ------------------------------------------------------------ REST


@st.composite
def missing_required_field(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """No `inputs`; or one input without name/shape/datatype/data; or a requested output without name."""
    call = draw(_call(model))
    body = json_body(call)
    field = draw(st.sampled_from(("inputs", *INPUT_FIELDS, OUTPUT_NAME)))
    index = draw(st.integers(0, len(body["inputs"]) - 1))
    if field == "inputs":
        del body["inputs"]
    elif field == OUTPUT_NAME:
        body["outputs"] = [draw(st.sampled_from([{}, {"parameters": {}}]))]
    else:
        del body["inputs"][index][field]
    return _body(call, body, field=field)


@st.composite
def missing_required_field_grpc(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """gRPC cannot leave a string out: an input name, its datatype, or a requested output name is ""."""
    call = draw(_call(model))
    field = draw(st.sampled_from(GRPC_EMPTY_FIELDS))
    if field == "name":
        index = draw(st.integers(0, len(call.inputs) - 1))
        inputs = list(call.inputs)
        inputs[index] = ("", inputs[index][1])
        call = call.replace(inputs=tuple(inputs))
    elif field == "datatype":
        call = call.replace(datatype_label="")
    else:
        call = call.replace(outputs=("",))
    return marked(call, field=field)


@st.composite
def non_integer_dimension(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """One dimension of one input as 1.5-like, "2", null or past 2^64 (the data left valid); ``true``
    only for a dimension of size 1, so that a server reading it as 1 is seen to accept it."""
    call = draw(_call(model))
    body = json_body(call)
    tensor = body["inputs"][draw(st.integers(0, len(body["inputs"]) - 1))]
    ones = [d for d, size in enumerate(tensor["shape"]) if size == 1]
    kind = draw(st.sampled_from([k for k in NON_INTEGERS if k != "bool" or ones]))
    dim = draw(st.sampled_from(ones) if kind == "bool" else st.integers(0, len(tensor["shape"]) - 1))
    size = tensor["shape"][dim]
    tensor["shape"][dim] = {"fraction": size + 0.5, "string": str(size), "bool": True, "null": None,
                            "2^64": 2**64 + size}[kind]
    return _body(call, body, dimension=kind)


def _datatype_kind(datatype: str) -> str:
    if datatype == "BYTES":
        return "bytes"
    if datatype == "BOOL":
        return "bool"
    return "float" if datatype.startswith("FP") else "int"


def _leaves(data: list[Any]) -> Iterator[tuple[list[Any], int]]:
    """(list, index) of every element of flat or nested ``data``."""
    for i, value in enumerate(data):
        if isinstance(value, list):
            yield from _leaves(value)
        else:
            yield data, i


def _mistyped(value: Any, kind: str) -> Any:
    if kind == "string":
        return json.dumps(value) if isinstance(value, bool) else str(value)
    if kind == "bool":
        return bool(value)
    if kind == "fraction":
        return value + 0.5
    return len(value) if isinstance(value, str) else int(value)  # "number"


@st.composite
def mistyped_element(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """1 to 3 elements of one input in a JSON type other than the datatype's ("1" or true in FP32 ...)."""
    call = draw(_call(model))
    body = json_body(call)
    tensor = body["inputs"][draw(st.integers(0, len(body["inputs"]) - 1))]
    kind = draw(st.sampled_from(MISTYPED[_datatype_kind(tensor["datatype"])]))
    leaves = list(_leaves(tensor["data"]))
    for index in draw(st.sets(st.integers(0, len(leaves) - 1), min_size=1, max_size=3)):
        container, i = leaves[index]
        container[i] = _mistyped(container[i], kind)
    return _body(call, body, element=kind, datatype=tensor["datatype"])


# ------------------------------------------------------------ gRPC


def _datatype(call: InferCall, index: int) -> str:
    return call.datatype or datatype_of(call.inputs[index][1])


def _typed_contents(call: InferCall, index: int) -> Any:
    """The typed ``contents`` of input ``index`` alone (its datatype must have a typed field)."""
    alone = call.replace(inputs=(call.inputs[index],), raw=False, outputs=None, shape=None,
                         datatype_label=None)
    return grpc_request(alone).inputs[0].contents


def _payload(request: Any, **features: object) -> Probe:
    return marked(GrpcBytes("ModelInfer", request.SerializeToString()), **features)


@st.composite
def raw_contents_layout(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """A raw request with an extra (or, with 2+ inputs, a missing) raw entry, or one input also typed."""
    call = draw(_call(model)).replace(raw=True)
    request = grpc_request(call)
    count = len(request.inputs)
    typed = [i for i in range(count) if DATATYPES[_datatype(call, i)].grpc_field]
    hows = ["extra", *(["missing"] if count >= 2 else []), *(["typed too"] if typed else [])]
    how = draw(st.sampled_from(hows))
    if how == "extra":
        for _ in range(draw(st.integers(1, 2))):
            request.raw_input_contents.append(request.raw_input_contents[draw(st.integers(0, count - 1))])
    elif how == "missing":
        del request.raw_input_contents[draw(st.integers(0, count - 1))]
    else:
        index = draw(st.sampled_from(typed))
        request.inputs[index].contents.CopyFrom(_typed_contents(call, index))
    return _payload(request, layout=how, raw_entries=len(request.raw_input_contents), inputs=count)


def _as_field(values: np.ndarray, field: str) -> list[Any]:
    """``values`` as the element type of ``field`` (BYTES elements by their length)."""
    items = [len(v) if isinstance(v, bytes | str) else v for v in values.ravel().tolist()]
    if field == "bytes_contents":
        return [str(v).encode() for v in items]
    if field == "bool_contents":
        return [bool(v) for v in items]
    if field.startswith("fp"):
        return [float(v) for v in items]
    return [abs(int(v)) if field.startswith("uint") else int(v) for v in items]


@st.composite
def contents_field_mismatch(draw: st.DrawFn, model: ModelUnderTest) -> Probe:
    """Typed data of one input in another datatype's field (an FP16 input: in any typed field)."""
    call = draw(_call(model)).replace(raw=False)
    datatypes = [_datatype(call, i) for i in range(len(call.inputs))]
    untyped = [i for i, d in enumerate(datatypes) if DATATYPES[d].grpc_field is None]
    index = draw(st.sampled_from(untyped or range(len(call.inputs))))
    right = DATATYPES[datatypes[index]].grpc_field
    wrong = draw(st.sampled_from([f for f in TYPED_FIELDS if f != right]))
    request = grpc_request(call)
    del request.raw_input_contents[:]  # an FP16 input made it all raw: every other input goes typed
    for i, tensor in enumerate(request.inputs):
        tensor.ClearField("contents")
        if i == index or i in untyped:
            values = np.asarray(call.inputs[i][1])
            if datatypes[i] != "BYTES":
                values = values.astype(DATATYPES[datatypes[i]].dtype)
            getattr(tensor.contents, wrong).extend(_as_field(values, wrong))
        else:
            tensor.contents.CopyFrom(_typed_contents(call, i))
    return _payload(request, field=wrong, datatype=datatypes[index])
