"""Differential rule: the server's predictions equal the same artifact run in-process.

Rows are drawn from each model's real domain, in every datatype that carries
that domain exactly; identical labels for mnist-svm, probabilities within
``reference.oracle.PROBABILITY_ATOL`` for mushroom-xgboost. A datatype the
server refuses cleanly (4xx / INVALID_ARGUMENT) is skipped with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance.calls import InferCall, Reply, Transport
from conformance.checks import expect_true, prediction_rows, sent
from conformance.strategies import infer_calls
from conformance.target import ModelUnderTest
from reference import oracle
from reference.errors import ConfigError


@pytest.fixture
def in_process(model: ModelUnderTest) -> ModelUnderTest:
    """The model, once its artifact is known to load here (else the rule is skipped)."""
    try:
        oracle.predict(model.name, np.zeros((1, model.spec.n_features), dtype=np.float32))
    except ConfigError as exc:
        pytest.skip(f"no in-process oracle for {model.name}: {exc}")
    return model


def _refused(reply: Reply) -> bool:
    return reply.status == "INVALID_ARGUMENT" or (reply.transport == "rest" and reply.status.startswith("4"))


def test_predictions_match_oracle(transport: Transport, in_process: ModelUnderTest, datatype: str,
                                  explore_examples) -> None:
    model = in_process

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        if _refused(reply):
            pytest.skip(f"the server refuses {datatype} for {model.name} ({reply.signature})")
        rows = call.inputs[0][1]
        served = prediction_rows(reply, model.spec.output_name)
        problem = oracle.mismatch(model.name, oracle.predict(model.name, rows), served)
        expect_true(problem is None, reply, str(problem), "prediction differs")

    explore_examples(infer_calls(model, datatype=datatype), check)
