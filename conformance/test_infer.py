"""Successful inference: what every answer must contain, for drawn requests over REST and gRPC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.calls import InferCall, Transport
from conformance.checks import (
    answer_fields,
    expect_ok,
    expect_true,
    expect_well_formed_outputs,
    output_arrays,
    output_names,
    prediction_rows,
    sent,
    shape_fits,
)
from conformance.explore import Explore
from conformance.models import ModelUnderTest
from conformance.strategies import LARGE_BATCH, explicit_calls, generated_call, infer_calls, request_ids


def test_infer_echoes_model_name_and_version(transport: Transport, model: ModelUnderTest,
                                             explore_examples) -> None:
    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        expect_ok(reply)
        fields = answer_fields(reply)
        expect_true(fields["model_name"] == model.name, reply, f"model_name should be {model.name!r}",
                    "wrong model_name")
        if model.version is not None:  # an unversioned request names no version to echo
            expect_true(fields["model_version"] == model.version, reply,
                        f"model_version should be the requested {model.version!r}", "wrong model_version")

    explore_examples(infer_calls(model), check, explicit_calls(model))


# An id is any string: these are tried before the drawn ones.
EDGE_IDS = ("plain-id", "é", "日本語", " padded ", "line\nbreak", "tab\there", "😀", "nul\x00byte")


def test_infer_echoes_id(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        expect_ok(reply)
        echoed = answer_fields(reply)["id"]
        expect_true(echoed == call.id, reply, f"id should be echoed as {call.id!r}, got {echoed!r}",
                    "id not echoed")

    if model.spec is not None:
        row = np.zeros((1, model.spec.n_features), dtype=np.float32)
        edge_cases = [InferCall(model.name, model.version, ((model.input_names[0], row),),
                                datatype=model.input_datatype, id=edge) for edge in EDGE_IDS]
    else:
        edge_cases = [generated_call(model, id=edge) for edge in EDGE_IDS]
    explore_examples(infer_calls(model, with_id=True, ids=request_ids()), check, edge_cases)


def test_infer_outputs_well_formed(transport: Transport, model: ModelUnderTest,
                                   explore_examples: Explore) -> None:
    def check(call: InferCall) -> None:
        expect_well_formed_outputs(sent(transport, call))

    explore_examples(infer_calls(model), check, explicit_calls(model))


def test_infer_returns_only_requested_outputs(transport: Transport, model: ModelUnderTest,
                                              explore_examples) -> None:
    if not model.output_names:
        pytest.skip(f"{model.name} declares no outputs: none can be requested by name")

    @st.composite
    def calls(draw: st.DrawFn) -> InferCall:
        wanted = draw(st.lists(st.sampled_from(model.output_names), min_size=1, unique=True))
        return draw(infer_calls(model, outputs=tuple(wanted)))

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        got = output_names(reply)
        expect_true(sorted(got) == sorted(call.outputs or ()), reply,
                    f"asked for outputs {list(call.outputs or ())}, got {got}", "other outputs")

    each = [(name,) for name in model.output_names]
    every = [model.output_names] if len(model.output_names) > 1 else []
    examples = [generated_call(model, outputs=wanted) for wanted in [*each, *every]]
    explore_examples(calls(), check, examples)


def test_infer_returns_all_outputs_when_none_requested(transport: Transport, model: ModelUnderTest,
                                                      explore_examples) -> None:
    if not model.output_names:
        pytest.skip(f"{model.name} declares no outputs: nothing to compare the answer with")

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        got = output_names(reply)
        expect_true(sorted(got) == sorted(model.output_names), reply,
                    f"with no outputs requested, expected every output {list(model.output_names)}, got {got}",
                    "missing outputs")

    explore_examples(infer_calls(model, outputs=None), check, explicit_calls(model, outputs=None))


@pytest.mark.transports("rest")
def test_infer_flat_and_nested_data_agree(transport: Transport, model: ModelUnderTest,
                                          explore_examples) -> None:
    def check(call: InferCall) -> None:
        flat = sent(transport, call.replace(nested=False))
        nested = sent(transport, call.replace(nested=True))
        a, b = output_arrays(flat), output_arrays(nested)
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        expect_true(same, nested, f"flat data gave {a}, nested data gave {b}\nflat request:\n{flat.repro}",
                    "flat != nested")

    explore_examples(infer_calls(model), check)


def test_infer_batch_sizes(transport: Transport, model: ModelUnderTest, explore_examples: Explore) -> None:
    first = model.signature.inputs[0].shape if model.signature.inputs else ()
    if first and first[0] != -1:
        pytest.skip(f"{model.name}'s first input has a fixed first dimension {first[0]}: no batch")

    declared = {spec.name: spec.shape for spec in model.signature.outputs}

    def check(call: InferCall) -> None:
        reply = sent(transport, call)
        n = call.inputs[0][1].shape[0]
        names = [model.main_output] if model.main_output else list(output_arrays(reply))
        for name in names:
            got = prediction_rows(reply, name)
            expect_true(got.ndim >= 1 and got.shape[0] == n, reply,
                        f"{n} input rows gave an output {name!r} of shape {list(got.shape)}",
                        "wrong batch size")
            if declared.get(name):  # the full shape: [n, ...the declared non-batch dimensions]
                want = batch_shape(declared[name], n)
                expect_true(shape_fits(got.shape, want), reply,
                            f"{n} input rows gave an output {name!r} of shape {list(got.shape)}; "
                            f"its declared shape {list(declared[name])} wants {want}", "wrong output shape")

    explore_examples(infer_calls(model, max_batch=LARGE_BATCH), check, explicit_calls(model))


def batch_shape(declared: tuple[int, ...], n: int) -> list[int]:
    """The shape ``n`` rows should give for an output declared ``declared``: the batch dimension
    (a leading -1) is ``n``; any other -1 stays free."""
    return [n, *declared[1:]] if declared and declared[0] == -1 else list(declared)
