"""Sample requests: V2 inference request bodies in JSON files, exactly what one would POST.

A model's samples live in ``<models dir>/<model>/samples/*.json`` (see
:func:`model_samples`) or, for a server whose models are not local, in
``<samples dir>/<model>/*.json`` (:func:`load_samples`). Every file is checked
as a V2 request (a bad one raises :class:`SampleError` naming the file and the
problem) and, when a signature is given, against it (naming the file and the
declared tensor). :func:`signature_from_samples` infers the inputs;
:func:`model_signature` gives a local model's signature, declared or inferred.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codec import from_json_tensor
from .errors import CodecError
from .signature import FREE, Signature, SignatureError, TensorSpec

__all__ = [
    "SAMPLES_FOLDER",
    "Sample",
    "SampleError",
    "check_sample",
    "load_sample_files",
    "load_samples",
    "model_samples",
    "model_signature",
    "signature_from_samples",
]

SAMPLES_FOLDER = "samples"
_REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}


class SampleError(SignatureError):
    """A sample file is not a valid V2 request, or contradicts the model's signature."""


@dataclass(frozen=True)
class Sample:
    path: Path
    body: dict[str, Any]

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """Each input's name, datatype and shape as sent (no free dimensions)."""
        return tuple(TensorSpec(t["name"], t["datatype"], t["shape"]) for t in self.body["inputs"])

    @property
    def batch_size(self) -> int:
        shapes = [t["shape"] for t in self.body["inputs"]]
        return shapes[0][0] if shapes and shapes[0] else 1

    @property
    def requested_outputs(self) -> list[str]:
        return [o["name"] for o in self.body.get("outputs") or ()]


def _fail(path: Path, problem: str) -> SampleError:
    return SampleError(f"sample {path} is not a valid V2 inference request: {problem}")


def _check_body(path: Path, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _fail(path, f"it must hold a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - _REQUEST_KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; a request has only {sorted(_REQUEST_KEYS)}")
    if "id" in body and not isinstance(body["id"], str):
        raise _fail(path, f"'id' must be a string, got {body['id']!r}")
    if "parameters" in body and not isinstance(body["parameters"], dict):
        raise _fail(path, "'parameters' must be an object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _fail(path, "'inputs' must be a non-empty list of tensors {name, shape, datatype, data}")
    names = []
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _fail(path, f"input {index} must be an object with a string 'name'")
        try:
            from_json_tensor(tensor)
        except CodecError as exc:
            raise _fail(path, str(exc)) from None
        names.append(tensor["name"])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(path, f"input name(s) {duplicates} appear twice")
    outputs = body.get("outputs", [])
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise _fail(path, "'outputs' must be a list of objects with a string 'name'")
    return body


def read_sample(path: Path) -> Sample:
    """One sample file, checked as a V2 inference request."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise SampleError(f"sample {path} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return Sample(path, _check_body(path, body))


def check_sample(sample: Sample, signature: Signature, where: str = "the declared signature") -> None:
    """Raise :class:`SampleError` when ``sample`` contradicts ``signature`` (inputs, declared outputs)."""
    if signature.inputs:
        sent = {spec.name: spec for spec in sample.input_specs}
        for name, spec in sent.items():
            declared = signature.input(name)
            if declared is None:
                raise SampleError(
                    f"sample {sample.path} sends input {name!r}, but {where} declares only "
                    f"{[s.name for s in signature.inputs]}: rename the input or fix the declaration"
                )
            problem = declared.mismatch(spec.datatype, spec.shape)
            if problem:
                raise SampleError(
                    f"sample {sample.path} input {name!r} has {problem} in {where} "
                    f"({declared.to_dict()}): fix the sample or the declaration"
                )
        missing = [s.name for s in signature.inputs if s.name not in sent]
        if missing:
            raise SampleError(f"sample {sample.path} lacks input(s) {missing} that {where} declares")
    if signature.outputs:
        unknown = [n for n in sample.requested_outputs if signature.output(n) is None]
        if unknown:
            raise SampleError(
                f"sample {sample.path} requests output(s) {unknown}, but {where} declares only "
                f"{[s.name for s in signature.outputs]}"
            )


def load_sample_files(folder: Path, signature: Signature | None = None,
                      where: str = "the declared signature") -> list[Sample]:
    """Every ``*.json`` in ``folder`` (sorted by name), checked; ``[]`` when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    samples = [read_sample(path) for path in sorted(folder.glob("*.json"))]
    if signature is not None:
        for sample in samples:
            check_sample(sample, signature, where)
    return samples


def model_samples(model_folder: Path, signature: Signature | None = None) -> list[Sample]:
    """A local model's samples, ``<model folder>/samples/*.json``."""
    where = f"{Path(model_folder) / 'model-settings.json'}"
    return load_sample_files(Path(model_folder) / SAMPLES_FOLDER, signature, where)


def load_samples(samples_dir: Path, model: str, signature: Signature | None = None) -> list[Sample]:
    """The samples of ``model`` in a samples folder: ``<samples_dir>/<model>/*.json``."""
    return load_sample_files(Path(samples_dir) / model, signature, f"the signature of {model!r}")


def signature_from_samples(samples: Sequence[Sample]) -> Signature:
    """Inputs (name, datatype, shape with the first dimension free) that every sample agrees on.

    Outputs stay undeclared: a request does not say what comes back.
    """
    if not samples:
        raise SampleError("no samples to infer a signature from: add <model>/samples/*.json")
    first = samples[0]
    specs = {s.name: TensorSpec(s.name, s.datatype, (FREE, *s.shape[1:])) for s in first.input_specs}
    for sample in samples[1:]:
        names = [s.name for s in sample.input_specs]
        if sorted(names) != sorted(specs):
            raise SampleError(
                f"samples {first.path} and {sample.path} send different inputs "
                f"({sorted(specs)} vs {sorted(names)}): every sample of a model must send the same inputs"
            )
        for spec in sample.input_specs:
            problem = specs[spec.name].mismatch(spec.datatype, spec.shape)
            if problem:
                raise SampleError(
                    f"sample {sample.path} input {spec.name!r} has {problem} in sample {first.path} "
                    "(only the first dimension may differ): make the samples agree"
                )
    return Signature(tuple(specs.values()), ())


def model_signature(
    model_folder: Path, settings: Mapping[str, Any] | None = None
) -> tuple[Signature, list[Sample]]:
    """A local model's signature and samples: its declared inputs, else those its samples send.

    ``settings`` is its ``model-settings.json`` dict (read from ``model_folder`` when
    omitted). Declared outputs are kept; a model that declares no inputs and has no
    samples gets a signature without inputs (:attr:`Signature.declares_inputs` false).
    """
    model_folder = Path(model_folder)
    where = model_folder / "model-settings.json"
    if settings is None:
        try:
            settings = json.loads(where.read_text())
        except OSError as exc:
            raise SignatureError(f"{where} cannot be read ({exc.strerror}): is it a model folder?") from None
        except json.JSONDecodeError as exc:
            raise SignatureError(f"{where} is not JSON (line {exc.lineno}: {exc.msg}): fix it") from None
    declared = Signature.from_model_settings(settings, str(where))
    samples = model_samples(model_folder, declared)
    if declared.declares_inputs or not samples:
        return declared, samples
    return Signature(signature_from_samples(samples).inputs, declared.outputs), samples
