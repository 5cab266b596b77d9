"""``python -m reference smoke``: one request per model of a running deployment, checked.

For the seed (``models/``): sends ``X_test_digits[0:1]`` and ``X_test_agar[0:1]``
as FP32 to ``/v2/models/{name}/versions/v0.1.0/infer`` and compares each
prediction with the same artifact run in-process.

For any other model repository (``--models-dir DIR``): per model, its first
sample (``<model>/samples/*.json``), else a request generated from its declared
inputs (two rows, every declared output requested), compared with the answer of
the model's own runtime loaded in-process (:mod:`reference.runtime_oracle`) and
checked against the declared signature; a model the oracle cannot load is checked
against the signature only (and each output's first dimension against the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oip.codec import build_json_infer_request, outputs_from_json_response
from oip.errors import OipError
from oip.rest import RestClient
from oip.samples import Sample, model_signature
from oip.signature import Signature, generate_request, response_problems
from reference import datasets, oracle
from reference.catalog import MODELS, ModelSpec
from reference.config import DeployedModel, discover_models, is_seed_dir

GENERATED_ROWS = 2


@dataclass(frozen=True)
class SmokeResult:
    model: str
    ok: bool
    detail: str


def smoke_one(client: RestClient, spec: ModelSpec, data_dir: str | None = None) -> SmokeResult:
    X, _ = datasets.heldout(spec.name, data_dir)
    rows = X[0:1]
    payload = build_json_infer_request({spec.input_name: rows}, datatypes={spec.input_name: "FP32"})
    response = client.infer(spec.name, payload, version=spec.version)
    if response.status != 200:
        return SmokeResult(spec.name, False, f"HTTP {response.status}: {response.body[:300]!r}")
    try:
        outputs = outputs_from_json_response(response.json)
        served = outputs[spec.output_name]
    except (KeyError, TypeError, ValueError) as exc:
        return SmokeResult(spec.name, False, f"unreadable response ({exc}): {response.body[:300]!r}")
    expected = oracle.predict(spec.name, rows)
    problem = oracle.mismatch(spec.name, expected, served)
    if problem:
        return SmokeResult(spec.name, False, problem)
    return SmokeResult(spec.name, True, f"{spec.output_name}={served.reshape(-1).tolist()} "
                                        f"(in-process {expected.tolist()})")


def _request_for(signature: Signature, samples: list[Sample]) -> tuple[dict[str, Any], str, int]:
    """The request to send, where it comes from, and its batch size."""
    if samples:
        return samples[0].body, f"sample {samples[0].path.name}", samples[0].batch_size
    outputs = [o.name for o in signature.outputs] or None
    request = generate_request(signature, GENERATED_ROWS, seed=0, outputs=outputs, id="smoke")
    return request, f"generated {GENERATED_ROWS} rows", GENERATED_ROWS


def _summary(body: Any) -> str:
    outputs = body.get("outputs", []) if isinstance(body, dict) else []
    return ", ".join(f"{o.get('name')} {o.get('datatype')} {o.get('shape')}" for o in outputs)


def smoke_model(client: RestClient, model: DeployedModel) -> SmokeResult:
    """Send one request to ``model`` and check the answer (runtime oracle, else the signature)."""
    from reference.runtime_oracle import OracleError, compare_outputs, load_oracle

    try:
        signature, samples = model_signature(model.folder, model.settings)
        request, source, batch = _request_for(signature, samples)
    except OipError as exc:
        return SmokeResult(model.name, False, str(exc))
    response = client.infer(model.name, request, version=model.version)
    if response.status != 200:
        return SmokeResult(model.name, False, f"{source}: HTTP {response.status}: {response.body[:300]!r}")
    requested = [o["name"] for o in request.get("outputs") or ()]
    oracle_ = load_oracle(model.folder)
    if not oracle_:
        problems = response_problems(signature, response.json, batch=batch, requested=requested)
        checked = f"checked against the signature only (no in-process runtime: {oracle_.reason})"
    else:
        try:
            expected = oracle_.infer(request)
        except OracleError as exc:
            return SmokeResult(model.name, False, f"{source}: the server answered 200 but the runtime "
                                                  f"in-process refuses the request: {exc}")
        finally:
            oracle_.close()
        problems = compare_outputs(expected, response.json)
        problems += response_problems(signature, response.json, requested=requested)
        checked = f"equal to {oracle_.implementation} in-process, fits the signature"
    if problems:
        return SmokeResult(model.name, False, f"{source}: " + "; ".join(problems))
    return SmokeResult(model.name, True, f"{source}: {_summary(response.json)}; {checked}")


def run_smoke(rest_url: str, data_dir: str | None = None, *,
              models_dir: Path | None = None) -> list[SmokeResult]:
    """Smoke every model: the seed's held-out rows for ``models/``, else each model's sample."""
    if models_dir is None or is_seed_dir(models_dir):
        with RestClient(rest_url) as client:
            return [smoke_one(client, spec, data_dir) for spec in MODELS.values()]
    models = discover_models(Path(models_dir), require_artifacts=False)
    with RestClient(rest_url) as client:
        return [smoke_model(client, model) for model in models]
