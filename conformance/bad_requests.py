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

from conformance.bad_requests_wire import (
    contents_field_mismatch,
    missing_required_field,
    missing_required_field_grpc,
    mistyped_element,
    non_integer_dimension,
    raw_contents_layout,
)
from conformance.calls import GrpcBytes, InferCall, Probe, RestBody, json_body
from conformance.checks import CLIENT_ERROR_CODES, TOO_LARGE_CODES
from conformance.domains import domain_of
from conformance.models import ModelUnderTest
from conformance.strategies import generated_call, infer_calls
from oip.datatypes import DATATYPES, datatype_of
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
NAMED_ELSEWHERE = frozenset({"BF16"})  # in no datatype table, but the proto names it (spec audit C11, F9)


def names(exclude: set[str]) -> st.SearchStrategy[str]:
    return st.text(NAME_ALPHABET, min_size=1, max_size=16).filter(lambda s: s not in exclude)


def _call(model: ModelUnderTest, **kw: object) -> st.SearchStrategy[InferCall]:
    return infer_calls(model, max_batch=4, **kw)


@st.composite
def unknown_datatype(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    near_misses = st.sampled_from(["FP31", "FLOAT32", "INT128", "STRING", "UINT", "FP 32", "FP32 ", ""])
    invented = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=8)
    label = draw(st.one_of(near_misses, invented).filter(
        lambda s: s.upper() not in DATATYPES and s.upper() not in NAMED_ELSEWHERE))
    return draw(_call(model)).replace(datatype_label=label)


@st.composite
def lowercase_datatype(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    call = draw(_call(model))
    name = _first_datatype(call)
    variants = sorted({name.lower(), name.title(), name.capitalize(), name.swapcase()} - {name})
    return call.replace(datatype_label=draw(st.sampled_from(variants)))


def _first_datatype(call: InferCall) -> str:
    return call.datatype or datatype_of(call.inputs[0][1])


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
    n, *rest = call.inputs[0][1].shape
    rows_declared = draw(st.integers(0, 2 * n + 1).filter(lambda r: r != n))
    return call.replace(shape=(rows_declared, *rest))


def fixed_dimensions(model: ModelUnderTest) -> list[tuple[int, int]]:
    """(input index, dimension index) of every fixed (not -1) dimension the model declares."""
    return [(i, d) for i, spec in enumerate(model.signature.inputs) for d, size in enumerate(spec.shape)
            if size != -1]


def _resized(array: np.ndarray, shape: list[int]) -> np.ndarray:
    return np.resize(array.ravel(), int(np.prod(shape))).reshape(shape).astype(array.dtype)


@st.composite
def wrong_feature_count(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    """A wrong size on one fixed dimension of one input (the data resized to match)."""
    call = draw(_call(model))
    index, dim = draw(st.sampled_from(fixed_dimensions(model)))
    name, array = call.inputs[index]
    shape = list(array.shape)
    shape[dim] = draw(st.integers(1, 2 * shape[dim]).filter(lambda w, size=shape[dim]: w != size))
    values = _resized(array, shape)
    domain = domain_of(model)
    if domain is not None:
        values = np.clip(values, domain.low, domain.high)
    inputs = list(call.inputs)
    inputs[index] = (name, values)
    return call.replace(inputs=tuple(inputs))


@st.composite
def wrong_input_name(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    """One input renamed to a name the model does not declare."""
    call = draw(_call(model))
    index = draw(st.integers(0, len(call.inputs) - 1))
    inputs = list(call.inputs)
    inputs[index] = (draw(names(set(model.input_names))), inputs[index][1])
    return call.replace(inputs=tuple(inputs))


@st.composite
def two_inputs(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    """Every declared input plus one the model does not have."""
    call = draw(_call(model))
    extra = draw(names(set(model.input_names)))
    return call.replace(inputs=(*call.inputs, (extra, call.inputs[0][1])))


@st.composite
def missing_input(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    """One declared input left out (models with two inputs or more)."""
    call = draw(_call(model))
    index = draw(st.integers(0, len(call.inputs) - 1))
    return call.replace(inputs=call.inputs[:index] + call.inputs[index + 1:])


def other_datatypes(datatype: str) -> list[str]:
    """The V2 datatypes a value of ``datatype`` can be re-encoded in, other than ``datatype``."""
    if datatype == "BYTES":
        return ["INT32", "FP32"]
    return [d for d in DATATYPES if d not in (datatype, "BYTES")]


@st.composite
def undeclared_datatype(draw: st.DrawFn, model: ModelUnderTest) -> InferCall:
    """One input sent in a valid V2 datatype other than the one the model declares."""
    call = draw(_call(model))
    index = draw(st.integers(0, len(call.inputs) - 1))
    name, array = call.inputs[index]
    declared = model.signature.inputs[index].datatype if model.signature.inputs else datatype_of(array)
    datatype = draw(st.sampled_from(other_datatypes(declared)))
    values = np.ones(array.shape, DATATYPES[datatype].dtype) if declared == "BYTES" else \
        np.asarray(array).astype(DATATYPES[datatype].dtype)
    inputs = [(n, a if call.datatype is None else a.astype(DATATYPES[call.datatype].dtype))
              for n, a in call.inputs]
    inputs[index] = (name, values)
    return call.replace(inputs=tuple(inputs), datatype=None)


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
    numeric = [i for i, (_, a) in enumerate(call.inputs) if a.dtype.kind != "O"] or [0]
    which = numeric[0]
    batch = np.asarray(call.inputs[which][1]).astype(np.float32)
    flat = batch.ravel()
    literals = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
    for index in draw(st.sets(st.integers(0, flat.size - 1), min_size=1, max_size=3)):
        flat[index] = literals[draw(st.sampled_from(NONFINITE_LITERALS))]
    inputs = list(call.inputs)
    inputs[which] = (inputs[which][0], flat.reshape(batch.shape))
    return call.replace(inputs=tuple(inputs), datatype=call.datatype if len(inputs) == 1 else None)


def oversized_payload(model: ModelUnderTest) -> st.SearchStrategy[InferCall]:
    """One fixed valid one-row call, padded (a request parameter) to far past normal size.

    Fixed, so hypothesis sends it once: drawing many 24 MiB bodies would only cost time.
    """
    if domain_of(model) is not None:
        row = np.ones((1, model.spec.n_features), dtype=np.float32)
        return st.just(InferCall(model.name, model.version, ((model.input_names[0], row),),
                                 datatype=model.input_datatype, padding=OVERSIZE_BYTES))
    return st.just(generated_call(model, padding=OVERSIZE_BYTES))


@st.composite
def wrong_content_type(draw: st.DrawFn, model: ModelUnderTest) -> RestBody:
    call = draw(_call(model))
    return RestBody(model_path(call.model, call.version, "/infer"), json.dumps(json_body(call)).encode(),
                    {"Content-Type": draw(st.sampled_from(WRONG_CONTENT_TYPES))})


def deep_json(model: ModelUnderTest) -> st.SearchStrategy[RestBody]:
    """One fixed body whose ``data`` is nested far past any parser's limit."""
    first = model.signature.inputs[0]
    shape = json.dumps(first.concrete_shape(1), separators=(",", ":"))
    head = (f'{{"inputs":[{{"name":"{first.name}","shape":{shape},'
            f'"datatype":"{first.datatype}","data":')
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
    "error_missing_input": BadRequests(missing_input, missing_input),
    "error_undeclared_datatype": BadRequests(undeclared_datatype, undeclared_datatype),
    "error_unknown_output": BadRequests(unknown_output, unknown_output),
    "error_nonfinite_literals": BadRequests(nonfinite_literals, None),
    "error_oversized_payload": BadRequests(oversized_payload, oversized_payload, TOO_LARGE_CODES),
    "error_wrong_content_type": BadRequests(wrong_content_type, None),
    "error_deep_json": BadRequests(deep_json, None),
    "error_missing_required_field": BadRequests(missing_required_field, missing_required_field_grpc),
    "error_non_integer_dimension": BadRequests(non_integer_dimension, None),
    "error_raw_contents_layout": BadRequests(None, raw_contents_layout),
    "error_contents_field_mismatch": BadRequests(None, contents_field_mismatch),
    # not a client error for sure (a server MAY coerce): its own check; here for the liveness rule
    "infer_mistyped_element_coerced_or_refused": BadRequests(mistyped_element, None),
}


def any_bad_request(model: ModelUnderTest, transport: str) -> st.SearchStrategy[Probe]:
    """Any of the bad requests that apply to ``transport`` (for the liveness rule)."""
    builders = [b.for_transport(transport) for rule, b in BUILDERS.items() if not not_applicable(rule, model)]
    return st.one_of([build(model) for build in builders if build is not None])


def not_applicable(rule: str, model: ModelUnderTest) -> str | None:
    """Why ``rule`` cannot be checked on ``model`` (None when it can)."""
    if not model.signature.inputs:
        return model.missing
    if rule == "error_missing_input" and len(model.signature.inputs) < 2:
        return f"{model.name} has one input: leaving it out is not a missing input of a multi-input model"
    if rule == "error_wrong_feature_count" and not fixed_dimensions(model):
        return f"{model.name} declares no fixed dimension: no size can be wrong"
    return None

