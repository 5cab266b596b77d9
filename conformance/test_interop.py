"""Interoperability: the independent ``tritonclient`` package gets the suite's predictions.

tritonclient's HTTP client sends plain JSON tensors (``binary_data=False``); its
gRPC client sends raw contents. It runs in a worker process (see
:mod:`conformance.triton_worker`) and must get what the suite's own client gets.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import note

from conformance.calls import InferCall, Transport
from conformance.checks import RuleViolation, prediction_rows, sent
from conformance.strategies import infer_calls
from conformance.target import ModelUnderTest, Target
from conformance.triton_worker import TritonWorker


@pytest.fixture(scope="module")
def triton() -> Iterator[TritonWorker]:
    worker = TritonWorker()
    yield worker
    worker.close()


def test_interop_tritonclient(transport: Transport, target: Target, model: ModelUnderTest,
                              triton: TritonWorker, explore_examples) -> None:
    url = target.rest_url if transport.name == "rest" else target.grpc_target

    def check(call: InferCall) -> None:
        rows = call.inputs[0][1]
        ours_reply = sent(transport, call)
        ours = prediction_rows(ours_reply, model.spec.output_name)
        note(f"tritonclient ({transport.name}) {model.name} {model.version} rows:\n{rows.tolist()}")
        answer = triton.infer(transport.name, url, model.name, model.version, model.spec.input_name,
                              model.spec.output_name, rows)
        if "error" in answer:
            raise RuleViolation(f"tritonclient failed where the suite's client got {ours.tolist()}: "
                                f"{answer['error']}\nthe suite's request:\n{ours_reply.repro}",
                                "tritonclient failed")
        theirs = np.asarray(answer["predictions"])
        if theirs.size != ours.size or not np.array_equal(theirs.reshape(ours.shape), ours):
            raise RuleViolation(f"tritonclient got {theirs.tolist()}, the suite's client got "
                                f"{ours.tolist()}\nthe suite's request:\n{ours_reply.repro}",
                                "tritonclient differs")

    explore_examples(infer_calls(model, datatype="FP32", with_id=False, outputs=None), check)
