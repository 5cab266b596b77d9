"""Triton's extensions of the inference request: binary tensor data, classification, parameters.

Each rule compares the extension's answer with the plain JSON / protobuf answer to the same
request (the seed's held-out rows, else arrays generated from the signature). See
:mod:`conformance.extension_checks` for how a rule treats an extension the server does not
advertise; here "not served" also covers a server that ignores the extension's parameter
and answers as to the plain request.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from conformance.calls import InferCall, Reply, Transport, grpc_request, json_body
from conformance.checks import expect_ok, expect_true, output_arrays, sent, violation
from conformance.explore import CheckOnce
from conformance.extension_checks import (
    advertised,
    answered,
    classification_problems,
    expect_served,
    note_served,
    rest_json,
    rest_raw,
    skip_unserved,
    unserved,
)
from conformance.models import ModelUnderTest
from conformance.strategies import generated_call
from conformance.target import Target
from oip.errors import CodecError
from oip.extensions import (
    BINARY_DATA,
    BINARY_DATA_OUTPUT,
    BINARY_DATA_SIZE,
    INFERENCE_HEADER,
    binary_request,
    binary_response_outputs,
)
from oip.rest import RestResponse, model_path

BATCH = 3
CLASSIFICATION_K = 2  # or fewer, when an output row has fewer elements
CUSTOM_PARAMETERS = {"harness_int": 42, "harness_string": "conformance", "harness_bool": True}
NOT_SERVED_GRPC = frozenset({"UNIMPLEMENTED", "INVALID_ARGUMENT"})


def _call(model: ModelUnderTest) -> InferCall:
    if not model.signature.inputs:
        pytest.skip(model.missing)
    if model.main_output is None:
        pytest.skip(f"{model.name} declares no outputs: none can be asked for by name")
    return generated_call(model, n=BATCH, outputs=(model.main_output,))


def _same(reply: Reply, got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
    expect_true(sorted(got) == sorted(want), reply, f"{what}: outputs {sorted(got)}, the plain answer has "
                                                    f"{sorted(want)}", "other outputs")
    for name, array in want.items():
        same = got[name].shape == array.shape and got[name].dtype == array.dtype and (
            np.array_equal(got[name], array, equal_nan=True) if array.dtype.kind in "fc"
            else np.array_equal(got[name], array))
        expect_true(same, reply, f"{what}: output {name!r} is {got[name].dtype} {got[name].tolist()!r}, the "
                                 f"plain answer {array.dtype} {array.tolist()!r}", "other predictions")


def _decoded(reply: Reply, response: RestResponse | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    expect_ok(reply)
    header = response.headers.get(INFERENCE_HEADER)
    try:
        length = int(header) if header is not None else None
        return binary_response_outputs(response.body, length)
    except (CodecError, ValueError) as exc:
        raise violation(reply, f"the answer does not decode ({INFERENCE_HEADER}: {header}): {exc}",
                        "undecodable binary answer") from None


# ------------------------------------------------------------------ binary_tensor_data


@pytest.mark.transports("rest")
def test_binary_data_input(transport: Transport, model: ModelUnderTest, target: Target,
                           request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    call = _call(model)
    path = model_path(model.name, model.version, "/infer")
    content, length = binary_request(json_body(call))
    headers = {"Content-Type": "application/octet-stream", INFERENCE_HEADER: str(length)}
    is_advertised = advertised(target, request)
    if not is_advertised:
        probe, _ = rest_raw(transport, path, content, headers)
        if unserved(probe):
            skip_unserved(answered(probe))

    def check() -> None:
        plain = output_arrays(sent(transport, call))
        reply, response = rest_raw(transport, path, content, headers)
        expect_served(reply, is_advertised, "inputs sent as binary data")
        _same(reply, _decoded(reply, response)[1], plain, "inputs sent as binary")

    check_once(check)
    if not is_advertised:
        note_served(request)


@pytest.mark.transports("rest")
def test_binary_data_output(transport: Transport, model: ModelUnderTest, target: Target,
                            request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    call = _call(model)
    path = model_path(model.name, model.version, "/infer")
    body = json_body(call)
    body["outputs"] = [{"name": model.main_output, "parameters": {BINARY_DATA: True}}]
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    is_advertised = advertised(target, request)
    if not is_advertised:
        probe, response = rest_raw(transport, path, content, headers)
        if unserved(probe):
            skip_unserved(answered(probe))
        if probe.ok and response.headers.get(INFERENCE_HEADER) is None and isinstance(probe.body, dict):
            skip_unserved(f"`{BINARY_DATA}: true` was ignored: {probe.status}, all JSON, "
                          f"no {INFERENCE_HEADER}")

    # The request-wide form, "binary_data_output": every output as binary unless an output says
    # otherwise, for outputs listed without a flag and for all outputs (none listed).
    listed = json_body(call)
    listed["outputs"] = [{"name": model.main_output}]
    listed["parameters"] = {**(listed.get("parameters") or {}), BINARY_DATA_OUTPUT: True}
    every = {key: value for key, value in listed.items() if key != "outputs"}

    def check() -> None:
        plain = output_arrays(sent(transport, call))
        plain_all = output_arrays(sent(transport, call.replace(outputs=None)))
        variants = ((f"`{BINARY_DATA}: true` on the output", content, plain),
                    (f"`{BINARY_DATA_OUTPUT}: true` on the request, outputs listed without `{BINARY_DATA}`",
                     json.dumps(listed).encode(), plain),
                    (f"`{BINARY_DATA_OUTPUT}: true` on the request, no outputs listed",
                     json.dumps(every).encode(), plain_all))
        for what, sent_body, want in variants:
            reply, response = rest_raw(transport, path, sent_body, headers)
            expect_ok(reply, f"a request with {what}")
            expect_true(response.headers.get(INFERENCE_HEADER) is not None, reply,
                        f"{what}: an answer with binary outputs must carry {INFERENCE_HEADER}",
                        f"no {INFERENCE_HEADER}")
            header, arrays = _decoded(reply, response)
            for output in header["outputs"]:
                expect_true(BINARY_DATA_SIZE in (output.get("parameters") or {}) and "data" not in output,
                            reply, f"{what}: output {output.get('name')!r} needs parameters."
                                   f"{BINARY_DATA_SIZE} and no `data`", "output not binary")
            _same(reply, arrays, want, f"outputs asked as binary by {what}")

    check_once(check)
    if not is_advertised:
        note_served(request)


# ------------------------------------------------------------------ classification


def _classification_reply(transport: Transport, call: InferCall, output: str, k: int) -> Reply:
    if transport.name == "rest":
        body = json_body(call)
        body["outputs"] = [{"name": output, "parameters": {"classification": k}}]
        return rest_json(transport, model_path(call.model, call.version, "/infer"), json.dumps(body).encode())
    message = grpc_request(call)
    del message.outputs[:]
    wanted = message.outputs.add()
    wanted.name = output
    wanted.parameters["classification"].int64_param = k
    return transport.infer_message(message)


def test_classification_top_k(transport: Transport, model: ModelUnderTest, target: Target,
                              request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    call = _call(model)
    output = model.main_output
    plain_reply = sent(transport, call)
    if not plain_reply.ok:
        pytest.skip(f"the plain request is refused ({answered(plain_reply)}): nothing to classify")
    plain = output_arrays(plain_reply)[output]
    plain = plain.reshape(plain.shape[0], -1) if plain.ndim else plain.reshape(1, 1)
    k = min(CLASSIFICATION_K, plain.shape[1])
    is_advertised = advertised(target, request)
    if not is_advertised:
        probe = _classification_reply(transport, call, output, k)
        if unserved(probe, NOT_SERVED_GRPC):
            skip_unserved(answered(probe))
        if probe.ok:
            try:
                got = output_arrays(probe).get(output)
            except AssertionError:
                got = None
            if got is not None and got.dtype != object:
                skip_unserved(f"the `classification` parameter was ignored: {output} came back as "
                              f"{got.dtype} {list(got.shape)}, as in the plain answer")
            if got is not None and got.shape == plain.shape and (got.reshape(plain.shape) == plain).all():
                skip_unserved(f"the `classification` parameter was ignored: {output} came back as in the "
                              "plain answer")  # a BYTES output (labels) looks like classes, but is not

    def check() -> None:
        reply = _classification_reply(transport, call, output, k)
        got = output_arrays(reply).get(output)
        expect_true(got is not None, reply, f"no output {output!r}", "missing output")
        expect_true(got.dtype == object, reply, f"a classification output is BYTES, got {got.dtype}",
                    "not BYTES")
        expect_true(got.size == plain.shape[0] * k and got.shape[-1] == k, reply,
                    f"a classification output has shape [batch, k] = [{plain.shape[0]}, {k}], got "
                    f"{list(got.shape)}", "wrong shape")
        problems = classification_problems(plain, got.reshape(plain.shape[0], k), k)
        expect_true(not problems, reply, "the classes are not the top-k of the plain output "
                                         f"{plain.tolist()}: " + "; ".join(problems), "wrong classes")

    check_once(check)
    if not is_advertised:
        note_served(request)


# ------------------------------------------------------------------ parameters


def _with_parameters(transport: Transport, call: InferCall) -> Reply:
    if transport.name == "rest":
        body = json_body(call)
        body["parameters"] = {**(body.get("parameters") or {}), **CUSTOM_PARAMETERS}
        return rest_json(transport, model_path(call.model, call.version, "/infer"), json.dumps(body).encode())
    message = grpc_request(call)
    for key, value in CUSTOM_PARAMETERS.items():
        field = {bool: "bool_param", int: "int64_param", str: "string_param"}[type(value)]
        setattr(message.parameters[key], field, value)
    return transport.infer_message(message)


def test_parameters_accepted(transport: Transport, model: ModelUnderTest, target: Target,
                             request: pytest.FixtureRequest, check_once: CheckOnce) -> None:
    call = _call(model)
    is_advertised = advertised(target, request)
    if not is_advertised:
        probe = _with_parameters(transport, call)
        if unserved(probe, NOT_SERVED_GRPC):
            skip_unserved(answered(probe))

    def check() -> None:
        plain = output_arrays(sent(transport, call))
        reply = _with_parameters(transport, call)
        expect_ok(reply, f"a request with custom parameters {CUSTOM_PARAMETERS}")
        _same(reply, output_arrays(reply), plain, f"with custom parameters {CUSTOM_PARAMETERS}")

    check_once(check)
    if not is_advertised:
        note_served(request)
