"""``python -m reference smoke``: the seed's two requests, checked against the oracle.

Sends ``X_test_digits[0:1]`` and ``X_test_agar[0:1]`` as FP32 to
``/v2/models/{name}/versions/v0.1.0/infer`` of a running deployment and compares
each prediction with the same artifact run in-process.
"""

from __future__ import annotations

from dataclasses import dataclass

from oip.codec import build_json_infer_request, outputs_from_json_response
from oip.rest import RestClient
from reference import datasets, oracle
from reference.catalog import MODELS, ModelSpec


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


def run_smoke(rest_url: str, data_dir: str | None = None) -> list[SmokeResult]:
    with RestClient(rest_url) as client:
        return [smoke_one(client, spec, data_dir) for spec in MODELS.values()]
