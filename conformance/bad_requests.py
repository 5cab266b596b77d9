"""Hypothesis builders of deliberately wrong requests, one per error rule.

Each builder starts from a valid call (:func:`conformance.strategies.infer_calls`)
and breaks exactly one thing, so a failure points at one rule. ``BUILDERS``
maps each error rule to its builder and the transports it applies to.
"""

from __future__ import annotations

import json
import shlex
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from conformance.calls import GrpcBytes, InferCall, Probe, RestBody, json_body
from conformance.checks import CLIENT_ERROR_CODES, TOO_LARGE_CODES
from conformance.domains import DOMAINS
from conformance.strategies import infer_calls
from conformance.target import ModelUnderTest
from oip.datatypes import DATATYPES
from oip.rest import model_path

UNKNOWN_MODEL = "no-such-model"
UNKNOWN_VERSION = "v-no-such-version"
OVERSIZE_BYTES = 24 << 20  # 6x gRPC's default 4 MiB limit; normal requests here are < 100 KiB
DEEP_JSON_LEVELS = 100_000  # far past any JSON parser's recursion limit
MAX_NEGATIVE = 1 << 20
NAME_ALPHABET = string.ascii_letters + string.digits + "_-."
WRONG_CONTENT_TYPES = (
    "text/plain", "text/html", "application/xml", "application/octet-stream",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "image/png",
)
NONFINITE_LITERALS = ("NaN", "Infinity", "-Infinity")
MALFORMED_PROTOBUF = (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10", b"\x08")


def names(exclude: set[str]) -> st.SearchStrategy[str]:
    return st.text(NAME_ALPHABET, min_size=1, max_size=16).filter(lambda s: s not in exclude)


def _call(model: ModelUnderTest, **kw: object) -> st.SearchStrategy[InferCall]:
    return infer_calls(model, max_batch=4, **kw)


@st.composite
def unknown_datatype(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    near_misses = st.sampled_from(["FP31", "FLOAT32", "INT128", "STRING", "UINT", "FP 32", "FP32 ", ""])
    invented = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=8)
    label = draw(st.one_of(near_misses, invented).filter(lambda s: s.upper() not in DATATYPES))
    return draw(_call(model)).replace(datatype_label=label)


@st.composite
def lowercase_datatype(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    name = call.datatype or model.input_datatype
    variants = sorted({name.lower(), name.title(), name.capitalize(), name.swapcase()} - {name})
    return call.replace(datatype_label=draw(st.sampled_from(variants)))


@st.composite
def negative_dimension(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    shape = list(call.inputs[0][1].shape)
    for index in draw(st.sets(st.sampled_from(range(len(shape))), min_size=1)):
        shape[index] = -draw(st.integers(1, MAX_NEGATIVE))
    return call.replace(shape=tuple(shape))


@st.composite
def data_length_mismatch(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    n, width = call.inputs[0][1].shape
    rows_declared = draw(st.integers(0, 2 * n + 1).filter(lambda r: r != n))
    return call.replace(shape=(rows_declared, width))


@st.composite
def wrong_feature_count(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    batch = call.inputs[0][1]
    width = draw(st.integers(1, 2 * batch.shape[1]).filter(lambda w: w != batch.shape[1]))
    domain = DOMAINS[model.name]
    values = np.resize(batch.ravel(), batch.shape[0] * width).reshape(batch.shape[0], width)
    values = np.clip(values, domain.low, domain.high)
    return call.replace(inputs=((call.inputs[0][0], values),))


@st.composite
def wrong_input_name(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    return call.replace(inputs=((draw(names({model.spec.input_name})), call.inputs[0][1]),))


@st.composite
def two_inputs(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    extra = draw(names({model.spec.input_name}))
    return call.replace(inputs=(*call.inputs, (extra, call.inputs[0][1])))


@st.composite
def unknown_output(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    wanted = draw(st.lists(names(set(model.output_names)), min_size=1, max_size=2, unique=True))
    return draw(_call(model, outputs=tuple(wanted)))


@st.composite
def malformed_json(draw: st.DrawFn, model: ModelUnderTest) -> RestBody:
    call = draw(_call(model))
    text = json.dumps(json_body(call))
    how = draw(st.sampled_from(["truncate", "trailing", "unquote", "comma"]))
    if how == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "trailing":
        text += draw(st.sampled_from(["}", "]", ",", "x", "{"]))
    elif how == "unquote":
        text = text.replace('"inputs"', "inputs", 1)
    else:
        text = text.replace("]", ",]", 1)
    return RestBody(model_path(call.model, call.version, "/infer"), text.encode())


@st.composite
def malformed_protobuf(draw: st.DrawFn, model: ModelUnderTest) -> GrpcBytes:
    return GrpcBytes("ModelInfer", draw(st.sampled_from(MALFORMED_PROTOBUF)))


@st.composite
def nonfinite_literals(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model, datatype="FP32"))
    batch = call.inputs[0][1].astype(np.float32)
    flat = batch.ravel()
    literals = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
    for index in draw(st.sets(st.integers(0, flat.size - 1), min_size=1, max_size=3)):
        flat[index] = literals[draw(st.sampled_from(NONFINITE_LITERALS))]
    return call.replace(inputs=((call.inputs[0][0], flat.reshape(batch.shape)),))


def oversized_payload(model: ModelUnderTest) -> st.SearchStrategy[InferCall]:
    """One fixed valid one-row call, padded (a request parameter) to far past normal size.

    Fixed, so hypothesis sends it once: drawing many 24 MiB bodies would only cost time.
    """
    row = np.ones((1, model.spec.n_features), dtype=np.float32)
    return st.just(InferCall(model.name, model.version, ((model.spec.input_name, row),),
                             datatype=model.input_datatype, padding=OVERSIZE_BYTES))


@st.composite
def wrong_content_type(draw: st.DrawFn, model: ModelUnderTest) -> RestBody:
    call = draw(_call(model))
    return RestBody(model_path(call.model, call.version, "/infer"), json.dumps(json_body(call)).encode(),
                    {"Content-Type": draw(st.sampled_from(WRONG_CONTENT_TYPES))})


def deep_json(model: ModelUnderTest) -> st.SearchStrategy[RestBody]:
    """One fixed body whose ``data`` is nested far past any parser's limit."""
    width = model.spec.n_features
    head = (f'{{"inputs":[{{"name":"{model.spec.input_name}","shape":[1,{width}],'
            f'"datatype":"{model.input_datatype}","data":')
    depth = DEEP_JSON_LEVELS
    body = head + "[" * depth + "1" + "]" * depth + "}]}"
    script = f"import sys; d={depth}; sys.stdout.write({head!r} + '['*d + '1' + ']'*d + '}}]}}')"
    return st.just(RestBody(model_path(model.name, model.version, "/infer"), body.encode(),
                            regenerate=f"python3 -c {shlex.quote(script)}"))


@st.composite
def unknown_model(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    return draw(_call(model)).replace(model=UNKNOWN_MODEL)


@st.composite
def unknown_version(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    return draw(_call(model)).replace(version=UNKNOWN_VERSION)


Builder = Callable[[ModelUnderTest], st.SearchStrategy[Probe]]


@dataclass(frozen=True)
class BadRequests:
    rest: Builder | None
    grpc: Builder | None
    grpc_codes: frozenset[str] = CLIENT_ERROR_CODES  # the gRPC codes that answer it correctly

    def for_transport(self, transport: str) -> Builder | None:
        return self.rest if transport == "rest" else self.grpc


BUILDERS: dict[str, BadRequests] = {
    "error_unknown_model": BadRequests(unknown_model, unknown_model),
    "error_unknown_version": BadRequests(unknown_version, unknown_version),
    "error_malformed_body": BadRequests(malformed_json, malformed_protobuf),
    "error_unknown_datatype": BadRequests(unknown_datatype, unknown_datatype),
    "error_lowercase_datatype": BadRequests(lowercase_datatype, lowercase_datatype),
    "error_negative_dimension": BadRequests(negative_dimension, negative_dimension),
    "error_data_length_mismatch": BadRequests(data_length_mismatch, data_length_mismatch),
    "error_wrong_feature_count": BadRequests(wrong_feature_count, wrong_feature_count),
    "error_wrong_input_name": BadRequests(wrong_input_name, wrong_input_name),
    "error_two_inputs": BadRequests(two_inputs, two_inputs),
    "error_unknown_output": BadRequests(unknown_output, unknown_output),
    "error_nonfinite_literals": BadRequests(nonfinite_literals, None),
    "error_oversized_payload": BadRequests(oversized_payload, oversized_payload, TOO_LARGE_CODES),
    "error_wrong_content_type": BadRequests(wrong_content_type, None),
    "error_deep_json": BadRequests(deep_json, None),
}


def any_bad_request(model: ModelUnderTest, transport: str) -> st.SearchStrategy[Probe]:
    """Any of the bad requests that apply to ``transport`` (for the liveness rule)."""
    builders = [b.for_transport(transport) for b in BUILDERS.values()]
    return st.one_of([build(model) for build in builders if build is not None])

