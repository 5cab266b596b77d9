"""The models under test: name, version, signature, samples, where each piece comes from.

A model's signature comes from its ``model-settings.json`` when a local models dir
is in use (the reference deployment serves it, or ``--models-dir`` was given), else
from the server's model metadata, else from its samples. A model whose inputs
cannot be known stays in the run (its infer rules are skipped) and the report says
what to add. Nothing here imports MLServer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oip.errors import OipError
from oip.samples import Sample, check_sample, load_samples, model_signature, signature_from_samples
from oip.signature import Signature
from reference.catalog import MODELS, ModelSpec
from reference.config import discover_models, is_seed_dir
from reference.errors import ConfigError
from reference.paths import MODELS_DIR

FROM_SETTINGS = "model-settings.json"
FROM_METADATA = "server metadata"
FROM_SAMPLES = "samples"
UNKNOWN = "unknown"


class ModelsError(Exception):
    """A models dir or samples folder the suite cannot use; the message says what to fix."""


@dataclass(frozen=True)
class LocalModel:
    """A model of the local models dir, as its files declare it."""

    name: str
    version: str | None
    folder: Path
    implementation: str
    declared: Signature  # what model-settings.json declares (possibly nothing)
    signature: Signature  # declared inputs, else those its samples send
    samples: tuple[Sample, ...]


@dataclass(frozen=True, eq=False)
class ModelUnderTest:
    """One model the rules run against."""

    name: str
    version: str | None  # the version the probe chose (conformance/probe.py); None: unversioned path
    signature: Signature = field(default_factory=Signature)
    signature_from: str = UNKNOWN
    samples: tuple[Sample, ...] = ()
    folder: Path | None = None  # the local model folder (runtime oracle, metadata rule)
    implementation: str | None = None  # the runtime class, when known
    declared: Signature | None = None  # what model-settings.json declares, when local
    spec: ModelSpec | None = None  # the seed's catalogue entry (domain, held-out rows, own oracle)
    oracle_dir: Path | None = None  # where the runtime oracle loads from; None: no runtime oracle

    @property
    def input_datatype(self) -> str:
        return self.signature.inputs[0].datatype if self.signature.inputs else "FP32"

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signature.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.signature.outputs:
            return tuple(s.name for s in self.signature.outputs)
        return (self.spec.output_name,) if self.spec else ()

    @property
    def main_output(self) -> str | None:
        """The output rows are read from: the seed's, else the first declared one."""
        names = self.output_names
        return self.spec.output_name if self.spec else (names[0] if names else None)

    @property
    def missing(self) -> str:
        """Why no request can be built for this model ("" when one can), and what to add."""
        if self.signature.inputs:
            return ""
        where = self.folder / "model-settings.json" if self.folder else "the server's model metadata"
        samples = (f"{self.folder}/samples/*.json" if self.folder else "--samples DIR with DIR/"
                   f"{self.name}/*.json")
        return (f"{self.name}: its inputs are unknown (not declared in {where}, no samples): declare "
                f"`inputs` in model-settings.json or add V2 request samples ({samples})")

    def __str__(self) -> str:
        return self.name


def local_models(models_dir: Path, samples_dir: Path | None = None) -> dict[str, LocalModel]:
    """Every model below ``models_dir``, its signature and samples checked; :class:`ModelsError` else."""
    try:
        deployed = discover_models(Path(models_dir), require_artifacts=False)
    except ConfigError as exc:
        raise ModelsError(f"--models-dir {models_dir}: {exc}") from None
    found = {}
    for model in deployed:
        try:
            where = str(model.folder / "model-settings.json")
            declared = Signature.from_model_settings(model.settings, where)
            signature, samples = model_signature(model.folder, model.settings)
            samples = samples + _extra_samples(samples_dir, model.name, signature)
            if not signature.inputs and samples:
                signature = Signature(signature_from_samples(samples).inputs, signature.outputs)
        except OipError as exc:
            raise ModelsError(str(exc)) from None
        found[model.name] = LocalModel(model.name, model.version, model.folder,
                                       str(model.settings.get("implementation")), declared, signature,
                                       tuple(samples))
    return found


def _extra_samples(samples_dir: Path | None, name: str, signature: Signature) -> list[Sample]:
    if samples_dir is None:
        return []
    return load_samples(samples_dir, name, signature if signature.inputs else None)


def from_local(local: LocalModel, metadata: Any, oracle: bool) -> ModelUnderTest:
    """The model of a local models dir; ``metadata`` (REST body) fills a signature nothing else gives."""
    signature, source = local.signature, FROM_SETTINGS if local.declared.inputs else FROM_SAMPLES
    if not signature.inputs:
        signature, source = _metadata_or_nothing(metadata, local.declared)
    seed = MODELS.get(local.name) if is_seed_dir(local.folder.parent) else None
    return ModelUnderTest(local.name, local.version, signature, source, local.samples, local.folder,
                          local.implementation, local.declared, seed, local.folder if oracle else None)


def from_server(name: str, version: str | None, metadata: Any,
                samples_dir: Path | None) -> ModelUnderTest:
    """A model known only from the server (and maybe ``--samples``)."""
    signature, source = _metadata_or_nothing(metadata, Signature())
    try:
        samples = _extra_samples(samples_dir, name, signature)
        if not signature.inputs and samples:
            signature = Signature(signature_from_samples(samples).inputs, signature.outputs)
            source = FROM_SAMPLES
        elif signature.inputs:
            for sample in samples:
                check_sample(sample, signature, f"the server's metadata of {name!r}")
    except OipError as exc:
        raise ModelsError(str(exc)) from None
    spec = MODELS.get(name)
    return ModelUnderTest(name, version, signature, source, tuple(samples), None, _seed_implementation(name),
                          None, spec, None)


def _metadata_or_nothing(metadata: Any, declared: Signature) -> tuple[Signature, str]:
    if isinstance(metadata, dict):
        try:
            served = Signature.from_metadata(metadata)
        except OipError:
            served = Signature()
        if served.inputs:
            return Signature(served.inputs, declared.outputs or served.outputs), FROM_METADATA
    return Signature((), declared.outputs), UNKNOWN


def _seed_implementation(name: str) -> str | None:
    """The runtime of a seed model (so its scoped deviations apply to a remote copy of it)."""
    if name not in MODELS:
        return None
    try:
        return json.loads((MODELS_DIR / name / "model-settings.json").read_text()).get("implementation")
    except (OSError, ValueError):
        return None
