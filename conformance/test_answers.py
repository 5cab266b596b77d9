"""Answers checked in full: against the model metadata, REST against gRPC, and a request without a version.

``infer_outputs_match_metadata`` reads the metadata over the transport it checks, builds
requests as that metadata declares them and holds each output to the declared datatype
and shape. ``transports_agree`` sends the same drawn request over both transports.
The REST envelope (headers, strict JSON) is checked in :mod:`conformance.test_wire_envelope`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.calls import InferCall, Reply, Transport
from conformance.checks import answer_fields, expect_ok, expect_true, output_arrays, sent, shape_fits
from conformance.explore import Explore
from conformance.models import ModelUnderTest
from conformance.strategies import explicit_calls, infer_calls
from oip.errors import OipError
from oip.signature import Signature, generate_arrays

FP16_ULPS = 1  # JSON has no FP16 form: a decimal read back through float64 may round once more


# ------------------------------------------------------------ metadata vs infer


def served_signature(transport: Transport, model: ModelUnderTest) -> Signature:
    """The inputs and outputs the model metadata declares over ``transport`` (skips when unreadable)."""
    reply = transport.model_metadata(model.name, model.version)
    if not reply.ok:
        pytest.skip(f"no model metadata over {transport.name} ({reply.signature}): see model_metadata")
    try:
        if transport.name == "grpc":
            return Signature.from_grpc_metadata(reply.message)
        return Signature.from_metadata(reply.body if isinstance(reply.body, dict) else {})
    except OipError as exc:
        pytest.skip(f"the model metadata does not read as a signature ({exc}): see model_metadata")


def answered_tensors(reply: Reply) -> list[tuple[Any, Any, Any]]:
    """(name, datatype, shape) of each output as the answer states them, unchecked."""
    if reply.transport == "grpc":
        return [(t.name, t.datatype, list(t.shape)) for t in reply.message.outputs]
    outputs = reply.body.get("outputs") if isinstance(reply.body, dict) else None
    return [(o.get("name"), o.get("datatype"), o.get("shape")) for o in outputs or [] if isinstance(o, dict)]


def metadata_calls(model: ModelUnderTest, served: Signature) -> tuple[st.SearchStrategy[InferCall],
                                                                       list[InferCall]]:
    """Requests whose inputs are shaped as ``served`` declares, and the fixed ones tried first."""
    if not served.inputs or served.inputs == model.signature.inputs:
        return infer_calls(model), explicit_calls(model)  # the seed's own rows where it has a domain
    as_served = dataclasses.replace(model, signature=Signature(served.inputs, served.outputs), spec=None,
                                    samples=())
    fixed = InferCall(model.name, model.version, tuple(generate_arrays(as_served.signature, 1).items()))
    return infer_calls(as_served), [fixed]


def test_infer_outputs_match_metadata(transport: Transport, model: ModelUnderTest,
                                      explore_examples: Explore) -> None:
    served = served_signature(transport, model)
    if not served.inputs and not served.outputs:
        pytest.skip(f"{model.name}'s metadata declares no inputs and no outputs: nothing to hold answers to")
    declared = {spec.name: spec for spec in served.outputs}

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        expect_ok(reply, "a request shaped as the model metadata declares")
        for name, datatype, shape in answered_tensors(reply) if declared else ():
            spec = declared.get(name)
            expect_true(spec is not None, reply, f"output {name!r} is not among the metadata's outputs "
                                                 f"{sorted(declared)}", "output not in metadata")
            expect_true(datatype == spec.datatype, reply, f"output {name!r} is {datatype}, the metadata "
                                                          f"declares {spec.datatype}", "datatype != metadata")
            expect_true(shape_fits(shape, spec.shape), reply,
                        f"output {name!r} has shape {shape}, the metadata declares {list(spec.shape)}",
                        "shape != metadata")

    strategy, examples = metadata_calls(model, served)
    explore_examples(strategy, check, examples)


# ------------------------------------------------------------ no version


def test_infer_without_version(transport: Transport, model: ModelUnderTest,
                               explore_examples: Explore) -> None:
    if model.version is None:
        pytest.skip(f"{model.name} is unversioned: every infer rule already sends no version")

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        if transport.name == "rest" and reply.status.startswith("4"):
            expect_true(isinstance(reply.body, dict) and isinstance(reply.body.get("error"), str), reply,
                        'REST may refuse a request without a version, with {"error": "<string>"}',
                        reply.signature)
            return
        expect_ok(reply, "an infer without a version (the server chooses one)")
        fields = answer_fields(reply)
        expect_true(fields["model_name"] == model.name, reply, f"model_name should be {model.name!r}",
                    "wrong model_name")
        if transport.name == "grpc":
            expect_true(bool(fields["model_version"]), reply,
                        "the answer should name the version the server chose (model_version is empty)",
                        "no model_version")

    unversioned = [c.replace(version=None) for c in explicit_calls(model)]
    explore_examples(infer_calls(model).map(lambda c: c.replace(version=None)), check, unversioned)


# ------------------------------------------------------------ parameters


def _scalar(value: object) -> bool:
    return isinstance(value, (str, bool, int, float))


def parameter_problems(body: Any) -> list[str]:
    """Where ``parameters`` of an answer or of one of its outputs is not an object of scalars."""
    if not isinstance(body, dict):
        return []
    places = [("the answer", body)]
    places += [(f"output {o.get('name')!r}", o) for o in body.get("outputs") or [] if isinstance(o, dict)]
    problems = []
    for where, holder in places:
        if "parameters" not in holder:
            continue
        params = holder["parameters"]
        if not isinstance(params, dict):
            problems.append(f"`parameters` of {where} is {params!r:.60}, not an object")
            continue
        problems += [f"parameter {key!r} of {where} is {value!r:.60}: not a string, number or boolean"
                     for key, value in params.items() if not _scalar(value)]
    return problems


@pytest.mark.transports("rest")
def test_infer_parameters_are_scalars(transport: Transport, model: ModelUnderTest,
                                      explore_examples: Explore) -> None:
    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        expect_ok(reply)
        problems = parameter_problems(reply.body)
        expect_true(not problems, reply, "; ".join(problems), "non-scalar parameter")

    explore_examples(infer_calls(model), check, explicit_calls(model))


# ------------------------------------------------------------ REST == gRPC


def _datatypes(reply: Reply) -> dict[str, Any]:
    return {name: datatype for name, datatype, _ in answered_tensors(reply)}


def _same_values(a: np.ndarray, b: np.ndarray, datatype: str) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.tolist() == b.tolist()
    if datatype == "FP16":
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        ulp = np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(np.float16)).astype(np.float32)
        close = np.abs(a32 - b32) <= FP16_ULPS * ulp
        return bool(np.all(close | (np.isnan(a32) & np.isnan(b32)) | (a32 == b32)))
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


@pytest.mark.transports("grpc")
def test_transports_agree(transport: Transport, rest_transport: Transport, model: ModelUnderTest,
                          explore_examples: Explore) -> None:
    """``transport`` is gRPC (a run with no gRPC target skips here); the REST twin is ``rest_transport``."""

    def check(call: InferCall) -> None:
        grpc_reply, rest_reply = sent(transport, call), sent(rest_transport, call)
        both = (f"\nREST request:\n{rest_reply.repro}\n"
                f"REST answered {rest_reply.status} {rest_reply.text[:300]!r}")
        if not grpc_reply.ok or not rest_reply.ok:
            expect_true(grpc_reply.ok == rest_reply.ok, grpc_reply,
                        f"one transport answers, the other refuses{both}",
                        f"rest {rest_reply.signature} / grpc {grpc_reply.signature}")
            return
        g, r = output_arrays(grpc_reply), output_arrays(rest_reply)
        expect_true(sorted(g) == sorted(r), grpc_reply, f"gRPC outputs {sorted(g)}, REST {sorted(r)}{both}",
                    "output names differ")
        gtypes, rtypes = _datatypes(grpc_reply), _datatypes(rest_reply)
        for name in g:
            a, b = g[name], r[name]
            expect_true(gtypes.get(name) == rtypes.get(name), grpc_reply,
                        f"output {name!r}: gRPC {gtypes.get(name)}, REST {rtypes.get(name)}{both}",
                        "datatypes differ")
            expect_true(a.shape == b.shape, grpc_reply,
                        f"output {name!r}: gRPC shape {list(a.shape)}, REST {list(b.shape)}{both}",
                        "shapes differ")
            expect_true(_same_values(a, b, str(gtypes.get(name))), grpc_reply,
                        f"output {name!r}: gRPC {a.tolist()!r:.300}, REST {b.tolist()!r:.300}{both}",
                        "values differ")

    explore_examples(infer_calls(model), check, explicit_calls(model))
