"""Differential rule: the server answers like the same model run in-process.

Two oracles. The model's own MLServer runtime loaded in-process
(:mod:`reference.runtime_oracle`, for a local models dir): every output must
equal its answer (:func:`~reference.runtime_oracle.compare_outputs`), and a
request it refuses must be refused by the server, and the other way round. And
for the seed's two models also the independent check (:mod:`reference.oracle`):
rows from each model's real domain in every datatype that carries it exactly;
identical labels for mnist-svm, probabilities within ``PROBABILITY_ATOL`` for
mushroom-xgboost; a datatype the server refuses cleanly is skipped with that reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance.calls import InferCall, Reply, Transport, json_body
from conformance.checks import expect_true, output_arrays, prediction_rows, sent, violation
from conformance.domains import DECLARED
from conformance.models import ModelUnderTest
from conformance.strategies import explicit_calls, infer_calls
from conformance.target import Target, oracle_status
from oip.codec import to_json_tensor
from oip.errors import CodecError
from reference import oracle
from reference.errors import ConfigError
from reference.runtime_oracle import OracleError, RuntimeOracle, compare_outputs


def _seed_oracle(model: ModelUnderTest) -> str | None:
    """None when the independent seed oracle runs for ``model``, else why not."""
    if model.spec is None:
        return "not a seed model"
    try:
        oracle.predict(model.name, np.zeros((1, model.spec.n_features), dtype=np.float32))
    except ConfigError as exc:
        return str(exc)
    return None


def _refused(reply: Reply) -> bool:
    return reply.status == "INVALID_ARGUMENT" or (reply.transport == "rest" and reply.status.startswith("4"))


def _json_answer(reply: Reply) -> dict[str, Any]:
    """The answer as a V2 JSON response dict (a gRPC answer re-encoded by the oip codec)."""
    if reply.transport == "rest":
        return reply.body if isinstance(reply.body, dict) else {}
    try:
        return {"outputs": [to_json_tensor(name, array) for name, array in output_arrays(reply).items()]}
    except CodecError as exc:
        raise violation(reply, f"an output cannot be compared as JSON: {exc}", "malformed output") from None


def check_runtime(runtime: RuntimeOracle, call: InferCall, reply: Reply) -> None:
    """The server agrees with the runtime in-process: same outputs, or both refuse."""
    try:
        # The runtime gets what the server got: the same JSON, or (gRPC) the same tensors as flat JSON.
        expected = runtime.infer(json_body(call if reply.transport == "rest" else call.replace(nested=False)))
    except OracleError as exc:
        expect_true(not reply.ok, reply, f"the server answered, but {runtime.implementation} in-process "
                                         f"refuses the request: {exc}", "answers what the runtime refuses")
        return
    if not reply.ok:
        raise violation(reply, f"{runtime.implementation} in-process answers this request, "
                               "the server does not")
    problems = compare_outputs(expected, _json_answer(reply))
    expect_true(not problems, reply, "; ".join(problems), "prediction differs")


def test_predictions_match_oracle(transport: Transport, target: Target, model: ModelUnderTest, datatype: str,
                                  explore_examples) -> None:
    seed_why_not = _seed_oracle(model)
    runtime = target.oracles.get(model.name) or None
    if seed_why_not and runtime is None:
        pytest.skip(f"no oracle for {model.name}: {oracle_status(target, model)}")

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        if seed_why_not is None and _refused(reply):
            pytest.skip(f"the server refuses {datatype} for {model.name} ({reply.signature})")
        if runtime is not None:
            check_runtime(runtime, call, reply)
        if seed_why_not is None:
            rows = call.inputs[0][1]
            served = prediction_rows(reply, model.spec.output_name)
            problem = oracle.mismatch(model.name, oracle.predict(model.name, rows), served)
            expect_true(problem is None, reply, str(problem), "prediction differs")

    chosen = None if datatype == DECLARED else datatype
    examples = explicit_calls(model) if chosen is None else []
    explore_examples(infer_calls(model, datatype=chosen), check, examples)
