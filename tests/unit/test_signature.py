"""Model signatures (model-settings, metadata, samples) and the request generator, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oip._pb import pb
from oip.codec import inputs_from_json_request
from oip.samples import (
    SampleError,
    load_samples,
    model_samples,
    model_signature,
    read_sample,
    signature_from_samples,
)
from oip.signature import (
    Signature,
    SignatureError,
    TensorSpec,
    generate_arrays,
    generate_request,
    response_problems,
)

SETTINGS = {
    "name": "iris-tagged",
    "implementation": "runtime.TaggedIrisClassifier",
    "inputs": [
        {"name": "features", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "tag", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"content_type": "str"}},
    ],
    "outputs": [{"name": "species", "datatype": "BYTES", "shape": [-1, 1]}],
}
ALL_TYPES = Signature(tuple(
    TensorSpec(f"in_{dt.lower()}", dt, (-1, 3))
    for dt in ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
               "FP16", "FP32", "FP64", "BYTES")
))


def _write(folder: Path, name: str, body: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def _request(rows: int = 2, datatype: str = "FP32", width: int = 4, name: str = "features") -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": [rows, width],
                        "data": [1.5] * (rows * width)}]}


# ---------------------------------------------------------------- signatures


def test_from_model_settings():
    signature = Signature.from_model_settings(SETTINGS)
    assert signature.inputs == (TensorSpec("features", "FP32", (-1, 4)), TensorSpec("tag", "BYTES", (-1, 1)))
    assert signature.output("species") == TensorSpec("species", "BYTES", (-1, 1))
    assert signature.input("nope") is None


def test_model_settings_without_tensors_declares_nothing():
    signature = Signature.from_model_settings({"name": "m", "implementation": "x.Y"})
    assert signature == Signature() and not signature.declares_inputs


def test_from_rest_metadata_equals_model_settings():
    metadata = {"name": "iris-tagged", "versions": [], "platform": "", "parameters": {},
                "inputs": SETTINGS["inputs"], "outputs": SETTINGS["outputs"]}
    assert Signature.from_metadata(metadata) == Signature.from_model_settings(SETTINGS)


def test_from_grpc_metadata_equals_model_settings():
    response = pb.ModelMetadataResponse(name="iris-tagged")
    for spec in SETTINGS["inputs"]:
        response.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    for spec in SETTINGS["outputs"]:
        response.outputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    assert Signature.from_grpc_metadata(response) == Signature.from_model_settings(SETTINGS)


@pytest.mark.parametrize(("tensor", "message"), [
    ({"name": "x", "datatype": "fp32", "shape": [-1]}, "unknown datatype 'fp32'"),
    ({"name": "x", "datatype": "FP32", "shape": [-2]}, "shape must be a list of integers >= -1"),
    ({"name": "x", "datatype": "FP32"}, r"has no \['shape'\]"),
    ({"name": "", "datatype": "FP32", "shape": [1]}, "non-empty string name"),
])
def test_bad_declarations_say_what_is_wrong(tensor, message):
    with pytest.raises(SignatureError, match=message):
        Signature.from_model_settings({"inputs": [tensor]}, "m/model-settings.json")


def test_duplicate_names_are_refused():
    spec = {"name": "x", "datatype": "FP32", "shape": [-1]}
    with pytest.raises(SignatureError, match=r"declares \['x'\] twice"):
        Signature.from_model_settings({"inputs": [spec, spec]})


def test_mismatch():
    spec = TensorSpec("x", "FP32", (-1, 4))
    assert spec.mismatch("FP32", [7, 4]) is None
    assert "datatype FP64" in spec.mismatch("FP64", [7, 4])
    assert "shape [7, 3]" in spec.mismatch("FP32", [7, 3])
    assert "shape [7]" in spec.mismatch("FP32", [7])


# ------------------------------------------------------------------- samples


def test_samples_load_sorted_and_infer_the_signature(tmp_path):
    folder = tmp_path / "model" / "samples"
    _write(folder, "b.json", _request(rows=3))
    _write(folder, "a.json", _request(rows=1))
    samples = model_samples(tmp_path / "model")
    assert [s.path.name for s in samples] == ["a.json", "b.json"]
    assert [s.batch_size for s in samples] == [1, 3]
    assert signature_from_samples(samples) == Signature((TensorSpec("features", "FP32", (-1, 4)),))
    assert Signature.from_samples(samples) == signature_from_samples(samples)


def test_samples_by_model_name_and_no_folder_means_none(tmp_path):
    _write(tmp_path / "m", "one.json", _request())
    assert len(load_samples(tmp_path, "m")) == 1
    assert load_samples(tmp_path, "other") == []


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not JSON"),
    ([1, 2], "must hold a JSON object"),
    ({"inputs": []}, "'inputs' must be a non-empty list"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0]}]}, "needs 2 elements"),
    ({"inputs": [{"name": "x", "datatype": "FP33", "shape": [1], "data": [1.0]}]}, "unknown datatype"),
    ({"input": []}, r"unknown key\(s\) \['input'\]"),
    ({**_request(), "outputs": ["predict"]}, "'outputs' must be a list of objects"),
    ({"inputs": [_request()["inputs"][0]] * 2}, "appear twice"),
])
def test_an_invalid_sample_names_the_file_and_the_problem(tmp_path, content, problem):
    path = _write(tmp_path, "bad.json", content)
    with pytest.raises(SampleError, match=problem) as caught:
        read_sample(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("body", "problem"), [
    (_request(datatype="FP64"), "datatype FP64, declared FP32"),
    (_request(width=3), r"shape \[2, 3\], declared \[-1, 4\]"),
    (_request(name="petals"), "sends input 'petals'"),
])
def test_a_sample_contradicting_the_declaration_names_both(tmp_path, body, problem):
    settings = tmp_path / "m" / "model-settings.json"
    signature = Signature.from_model_settings({"inputs": [SETTINGS["inputs"][0]]}, str(settings))
    path = _write(tmp_path / "m" / "samples", "s.json", body)
    with pytest.raises(SampleError, match=problem) as caught:
        model_samples(tmp_path / "m", signature)
    assert str(path) in str(caught.value) and str(settings) in str(caught.value)


def test_a_sample_lacking_a_declared_input_or_asking_an_undeclared_output(tmp_path):
    signature = Signature.from_model_settings(SETTINGS)
    _write(tmp_path / "m" / "samples", "s.json", _request())
    with pytest.raises(SampleError, match=r"lacks input\(s\) \['tag'\]"):
        model_samples(tmp_path / "m", signature)
    first_only = Signature(signature.inputs[:1], signature.outputs)
    _write(tmp_path / "m" / "samples", "s.json", {**_request(), "outputs": [{"name": "proba"}]})
    with pytest.raises(SampleError, match=r"requests output\(s\) \['proba'\]"):
        model_samples(tmp_path / "m", first_only)


def test_samples_that_disagree_cannot_make_a_signature(tmp_path):
    _write(tmp_path, "a.json", _request(width=4))
    _write(tmp_path, "b.json", _request(width=5))
    samples = [read_sample(tmp_path / "a.json"), read_sample(tmp_path / "b.json")]
    with pytest.raises(SampleError, match="a.json") as caught:
        signature_from_samples(samples)
    assert "b.json" in str(caught.value)
    with pytest.raises(SampleError, match="no samples"):
        signature_from_samples([])


def test_model_signature_declared_or_inferred(tmp_path):
    folder = tmp_path / "m"
    _write(folder, "model-settings.json", SETTINGS)
    assert model_signature(folder) == (Signature.from_model_settings(SETTINGS), [])
    outputs_only = {"name": "m", "outputs": SETTINGS["outputs"]}
    _write(folder, "model-settings.json", outputs_only)
    assert model_signature(folder)[0] == Signature((), Signature.from_model_settings(SETTINGS).outputs)
    _write(folder / "samples", "a.json", _request(rows=3))
    signature, samples = model_signature(folder)
    assert signature.inputs == (TensorSpec("features", "FP32", (-1, 4)),)
    assert signature.outputs == Signature.from_model_settings(SETTINGS).outputs and len(samples) == 1
    _write(folder, "model-settings.json", "{oops")
    with pytest.raises(SignatureError, match="is not JSON"):
        model_signature(folder)
    with pytest.raises(SignatureError, match="cannot be read"):
        model_signature(tmp_path / "nothing")


# ----------------------------------------------------------------- generator


def test_generated_request_decodes_to_the_declared_inputs():
    body = generate_request(ALL_TYPES, n=5, seed=3, outputs=["y"], id="g")
    assert body["id"] == "g" and body["outputs"] == [{"name": "y"}]
    arrays = inputs_from_json_request(body)
    for spec in ALL_TYPES.inputs:
        tensor = next(t for t in body["inputs"] if t["name"] == spec.name)
        assert tensor["datatype"] == spec.datatype and tensor["shape"] == [5, 3]
        assert arrays[spec.name].shape == (5, 3)
    assert all(isinstance(b, bytes) and b for b in arrays["in_bytes"].ravel())
    assert np.isfinite(arrays["in_fp16"]).all()


def test_generator_is_deterministic_per_seed():
    assert generate_request(ALL_TYPES, 4, seed=1) == generate_request(ALL_TYPES, 4, seed=1)
    assert generate_request(ALL_TYPES, 4, seed=1) != generate_request(ALL_TYPES, 4, seed=2)


def test_generator_free_inner_dims_and_dtypes():
    signature = Signature((TensorSpec("x", "FP16", (-1, -1, 2)), TensorSpec("t", "BYTES", (-1,))))
    arrays = generate_arrays(signature, n=3)
    assert arrays["x"].shape == (3, 1, 2) and arrays["x"].dtype == np.float16
    assert arrays["t"].shape == (3,) and arrays["t"].dtype == object


def test_no_inputs_no_request():
    with pytest.raises(SignatureError, match="declares no inputs"):
        generate_request(Signature(), 1)


# ------------------------------------------------------- responses vs signature


def test_response_problems():
    signature = Signature.from_model_settings(SETTINGS)
    good = {"outputs": [{"name": "species", "datatype": "BYTES", "shape": [2, 1], "data": ["a", "b"]}]}
    assert response_problems(signature, good, batch=2, requested=["species"]) == []
    bad = {"outputs": [{"name": "species", "datatype": "INT64", "shape": [2], "data": [1, 2]},
                       {"name": "extra", "datatype": "INT64", "shape": [1], "data": [1]}]}
    problems = response_problems(signature, bad, batch=2, requested=["species", "tag"])
    assert any("datatype INT64, declared BYTES" in p for p in problems)
    assert any("'extra' is not declared" in p for p in problems)
    assert any("['tag'] are missing" in p for p in problems)
    assert response_problems(signature, {"error": "x"})[0].startswith("the response has no outputs")


def test_concrete_shape_gives_the_batch_to_the_first_free_dimension() -> None:
    from oip.signature import TensorSpec

    assert TensorSpec("x", "FP32", (-1, 4)).concrete_shape(5) == [5, 4]
    assert TensorSpec("x", "FP32", (3, -1)).concrete_shape(5) == [3, 5]
    assert TensorSpec("x", "FP32", (-1, 4, -1)).concrete_shape(5) == [5, 4, 1]
