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
from conformance.models import ModelUnderTest
from conformance.strategies import explicit_calls, infer_calls
from conformance.target import Target
from conformance.triton_worker import TritonWorker

# What the worker sends as plain numbers (BYTES and FP16 are left to the suite's own rules).
INTEROP_DATATYPES = frozenset({"BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
                               "INT8", "INT16", "INT32", "INT64", "FP32", "FP64"})


@pytest.fixture(scope="module")
def triton() -> Iterator[TritonWorker]:
    worker = TritonWorker()
    yield worker
    worker.close()


def test_interop_tritonclient(transport: Transport, target: Target, model: ModelUnderTest,
                              triton: TritonWorker, explore_examples) -> None:
    url = target.rest_url if transport.name == "rest" else target.grpc_target
    inputs = model.signature.inputs
    if len(inputs) != 1 or inputs[0].datatype not in INTEROP_DATATYPES or model.main_output is None:
        pytest.skip(f"the tritonclient check sends one numeric input and reads one declared output; "
                    f"{model.name} has inputs {[s.to_dict() for s in inputs]}, "
                    f"outputs {list(model.output_names)}")
    datatype = "FP32" if model.spec is not None else inputs[0].datatype

    def check(call: InferCall) -> None:
        rows = call.inputs[0][1]
        ours_reply = sent(transport, call)
        ours = prediction_rows(ours_reply, model.main_output)
        note(f"tritonclient ({transport.name}) {model.name} {model.version} rows:\n{rows.tolist()}")
        answer = triton.infer(transport.name, url, model.name, model.version or "", inputs[0].name,
                              model.main_output, rows, datatype)
        if "error" in answer:
            raise RuleViolation(f"tritonclient failed where the suite's client got {ours.tolist()}: "
                                f"{answer['error']}\nthe suite's request:\n{ours_reply.repro}",
                                "tritonclient failed")
        theirs = np.asarray(answer["predictions"])
        if theirs.size != ours.size or not np.array_equal(theirs.reshape(ours.shape), ours):
            raise RuleViolation(f"tritonclient got {theirs.tolist()}, the suite's client got "
                                f"{ours.tolist()}\nthe suite's request:\n{ours_reply.repro}",
                                "tritonclient differs")

    chosen = "FP32" if model.spec is not None else None
    examples = explicit_calls(model, id=None, outputs=None)
    explore_examples(infer_calls(model, datatype=chosen, with_id=False, outputs=None), check, examples)
