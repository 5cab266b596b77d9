"""Any model's payloads, encoded once, and every answer checked against its own runtime.

For a model of a model repository other than the seed's ``models/`` (or of a
server whose models are not local), :func:`build_any_load` takes the requests
to send from, in order: ``--samples DIR/<model>/*.json``, the model's own
``samples/*.json``, the seed's held-out rows (a seed model's name, in
batches of ``--batch-size``), else :data:`GENERATED_REQUESTS` requests generated
from its signature (every declared output requested). Each is encoded once as
a JSON body and a ``ModelInferRequest`` (raw contents when an FP16 tensor is
involved: it has no typed field). The expected answer of each is computed once,
by the model's own MLServer runtime loaded in-process
(:func:`reference.runtime_oracle.load_oracle`; MLServer is imported only
then); a model it cannot load is checked against its signature only (names,
datatypes, shapes, element counts, the batch).

A check returns ``None`` when the answer is right, else one line naming the
model, the request and what differs: the Locust failure's message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from google.protobuf.message import DecodeError

from oip._pb import pb
from oip.codec import build_infer_request, from_json_tensor, outputs_from_grpc_response, to_json_tensor
from oip.errors import CodecError, OipError
from oip.precise import http_request
from oip.rest import model_path
from oip.samples import Sample, load_samples, model_signature, signature_from_samples
from oip.signature import Signature, generate_request, response_problems
from reference.catalog import MODELS
from reporting.latency import SeriesKey

from ._plan import PlanError

log = logging.getLogger("loadtests")

REST_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
ENDPOINT = "infer"
GENERATED_REQUESTS = 16  # distinct generated requests per model
MAX_HELDOUT_REQUESTS = 64  # held-out batches per seed-named model outside the seed
SNIPPET = 160
MAX_PROBLEMS = 3


@dataclass(frozen=True)
class AnyItem:
    """One request, pre-encoded for both transports, with what its answer must be."""

    label: str  # where it comes from: "sample one-row.json", "generated request 3", "rows 0-3"
    rest_body: bytes
    rest_request: bytes  # the whole HTTP/1.1 request, for the precise client
    grpc_body: bytes
    expected: dict[str, Any] | None  # the runtime's V2 JSON answer; None: the signature only
    requested: tuple[str, ...]
    batch: int


@dataclass(frozen=True)
class AnyModelLoad:
    """Everything the users need to send one model's requests and check the answers."""

    name: str
    grpc_version: str  # the version it is called with ("": none)
    items: tuple[AnyItem, ...]
    rest_path: str
    signature: Signature
    checked_by: str  # how its answers are checked, for the log
    rest_key: SeriesKey
    grpc_key: SeriesKey

    @property
    def grpc_name(self) -> str:
        return f"ModelInfer {self.name}" + (f" {self.grpc_version}" if self.grpc_version else "")

    def check_rest(self, item: AnyItem, status: int, body: bytes) -> str | None:
        """Why a REST answer is wrong, or None when it is right."""
        where = f"{self.name} {item.label} over REST"
        doc, problem = rest_envelope(self.name, where, status, body)
        return problem if doc is None else self._problems(item, doc, where)

    def check_grpc(self, item: AnyItem, raw: bytes) -> str | None:
        """Why a gRPC answer (serialised ``ModelInferResponse``) is wrong, or None when it is right."""
        where = f"{self.name} {item.label} over gRPC"
        try:
            response = pb.ModelInferResponse.FromString(raw)
        except DecodeError as exc:
            return f"{where}: the response is not a ModelInferResponse ({exc})"
        if response.model_name != self.name:
            return f"{where}: model_name is {response.model_name!r}, expected {self.name!r}"
        try:
            arrays = outputs_from_grpc_response(response)
            doc = {"outputs": [to_json_tensor(t.name, arrays[t.name], t.datatype, allow_nonfinite=True)
                               for t in response.outputs]}
        except (CodecError, KeyError) as exc:
            return f"{where}: an output is not a valid V2 tensor: {exc}"
        return self._problems(item, doc, where)

    def _problems(self, item: AnyItem, doc: dict[str, Any], where: str) -> str | None:
        if item.expected is not None:
            from reference.runtime_oracle import compare_outputs

            wrong = compare_outputs(item.expected, doc)
            if wrong:
                return f"wrong answer: {where}: " + "; ".join(wrong[:MAX_PROBLEMS]) + " (server vs runtime)"
        batch = None if item.expected is not None else item.batch
        bad = response_problems(self.signature, doc, batch=batch, requested=item.requested)
        if bad:
            return f"{where}: the answer breaks the signature: " + "; ".join(bad[:MAX_PROBLEMS])
        return None


def snippet(body: bytes) -> str:
    """The start of a body, for a failure message."""
    text = body[:SNIPPET].decode("utf-8", errors="replace")
    return text + ("..." if len(body) > SNIPPET else "")


def rest_envelope(model: str, where: str, status: int,
                  body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A REST answer's V2 response object, or why it is not one (status, JSON, object, model_name)."""
    if status != 200:
        return None, f"{where}: HTTP {status} (expected 200): {snippet(body or b'')}"
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, f"{where}: the body is not JSON: {snippet(body)}"
    if not isinstance(doc, dict):
        return None, f"{where}: the body is a JSON {type(doc).__name__}, not a V2 response object"
    if doc.get("model_name") != model:
        return None, f"{where}: model_name is {doc.get('model_name')!r}, expected {model!r}"
    return doc, None


# ------------------------------------------------------------------ what to send


@dataclass(frozen=True)
class Source:
    """A model as the workload sees it: its signature, its folder (None: not local) and its samples."""

    name: str
    version: str | None
    signature: Signature
    folder: Path | None = None
    samples: tuple[Sample, ...] = ()


def local_source(deployed: Any, samples_dir: str | None) -> Source:
    """A local model (``reference.config.DeployedModel``): its signature and samples, checked."""
    try:
        signature, samples = model_signature(deployed.folder, deployed.settings)
        if samples_dir:
            given = load_samples(Path(samples_dir), deployed.name, signature if signature.inputs else None)
            if given:
                samples = given
                if not signature.inputs:
                    signature = Signature(signature_from_samples(given).inputs, signature.outputs)
    except OipError as exc:
        raise PlanError(str(exc)) from None
    return Source(deployed.name, deployed.version, signature, deployed.folder, tuple(samples))


def server_source(rest_url: str, name: str, version: str | None, samples_dir: str | None) -> Source:
    """A model known only by the server's metadata (and ``--samples``)."""
    from oip.rest import RestClient

    with RestClient(rest_url, timeout=5.0) as client:
        meta = client.model_metadata(name, version)
    if meta.status != 200 or not isinstance(meta.json, dict):
        raise PlanError(f"{rest_url}{model_path(name, version)} answered HTTP {meta.status}: no signature "
                        f"for {name!r}")
    try:
        signature = Signature.from_metadata(meta.json, f"the metadata of {name!r}")
        samples = load_samples(Path(samples_dir), name, signature if signature.inputs else None) \
            if samples_dir else []
        if samples and not signature.inputs:
            signature = Signature(signature_from_samples(samples).inputs, signature.outputs)
    except OipError as exc:
        raise PlanError(str(exc)) from None
    return Source(name, version, signature, None, tuple(samples))


def request_bodies(source: Source, batch_size: int) -> list[tuple[str, dict[str, Any], int]]:
    """(label, V2 JSON request body, batch) for every request of ``source``."""
    if source.samples:
        return [(f"sample {s.path.name}", s.body, s.batch_size) for s in source.samples]
    outputs = [o.name for o in source.signature.outputs] or None
    if source.name in MODELS:
        from oip.codec import build_json_infer_request
        from reference import datasets

        spec = MODELS[source.name]
        X, _ = datasets.heldout(source.name)
        bodies = []
        for start in range(0, len(X) - batch_size + 1, batch_size)[:MAX_HELDOUT_REQUESTS]:
            rows = X[start:start + batch_size]
            body = build_json_infer_request({spec.input_name: rows}, datatypes={spec.input_name: "FP32"})
            label = f"row {start}" if batch_size == 1 else f"rows {start}-{start + batch_size - 1}"
            bodies.append((label, body, batch_size))
        if bodies:
            return bodies
    if not source.signature.inputs:
        raise PlanError(
            f"{source.name} declares no inputs and has no samples, so nothing can be sent: declare `inputs` "
            f"in its model-settings.json, add {source.name}/samples/*.json, or pass --samples DIR "
            f"with DIR/{source.name}/*.json"
        )
    return [(f"generated request {i}",
             generate_request(source.signature, batch_size, seed=i, outputs=outputs), batch_size)
            for i in range(GENERATED_REQUESTS)]


def _oracle(source: Source) -> tuple[Any, str]:
    """The model's runtime in-process (or None) and how answers are checked."""
    if source.folder is None:
        return None, "against its signature (no local model folder)"
    from reference.runtime_oracle import load_oracle

    oracle = load_oracle(source.folder)
    if not oracle:
        log.warning("%s: answers checked against the signature only: %s", source.name, oracle.reason)
        return None, f"against its signature ({oracle.reason})"
    return oracle, f"against {oracle.implementation} in-process"


def _grpc_request(name: str, version: str, body: dict[str, Any], raw: bool) -> bytes:
    pairs = [(t["name"], from_json_tensor(t)) for t in body["inputs"]]
    datatypes = {t["name"]: t["datatype"] for t in body["inputs"]}
    parameters = {k: v for k, v in (body.get("parameters") or {}).items() if isinstance(v, (bool, int, str))}
    request = build_infer_request(name, pairs, model_version=version, id=str(body.get("id") or ""),
                                  outputs=[o["name"] for o in body.get("outputs") or ()], raw=raw,
                                  datatypes=datatypes, parameters=parameters or None)
    return request.SerializeToString()


def _uses_fp16(body: dict[str, Any], signature: Signature, expected: dict[str, Any] | None) -> bool:
    datatypes = {t.get("datatype") for t in body["inputs"]}
    datatypes |= {s.datatype for s in signature.outputs}
    datatypes |= {t.get("datatype") for t in (expected or {}).get("outputs") or ()}
    return "FP16" in datatypes


def build_any_load(source: Source, batch_size: int, versioned: bool, rest_url: str) -> AnyModelLoad:
    """Encode ``source``'s requests and compute each one's expected answer once."""
    from reference.runtime_oracle import OracleError

    version = (source.version or "") if versioned else ""
    rest_path = model_path(source.name, version or None, "/infer")
    base = urlsplit(rest_url)
    target = base.path.rstrip("/") + rest_path
    bodies = request_bodies(source, batch_size)
    oracle, checked_by = _oracle(source)
    items = []
    try:
        for label, body, batch in bodies:
            expected = None
            if oracle is not None:
                try:
                    expected = oracle.infer(body)
                except OracleError as exc:
                    raise PlanError(f"{source.name} {label}: its own runtime refuses the request "
                                    f"in-process: {exc}") from None
            rest_body = json.dumps(body, separators=(",", ":")).encode()
            try:
                grpc_body = _grpc_request(source.name, version, body,
                                          _uses_fp16(body, source.signature, expected))
            except OipError as exc:
                raise PlanError(f"{source.name} {label} cannot be encoded for gRPC: {exc}") from None
            items.append(AnyItem(
                label=label, rest_body=rest_body,
                rest_request=http_request("POST", base.netloc, target, rest_body, REST_HEADERS),
                grpc_body=grpc_body, expected=expected,
                requested=tuple(o["name"] for o in body.get("outputs") or ()), batch=batch,
            ))
    finally:
        if oracle is not None:
            oracle.close()
    log.info("%s: %d requests, answers checked %s", source.name, len(items), checked_by)
    return AnyModelLoad(
        name=source.name, grpc_version=version, items=tuple(items), rest_path=rest_path,
        signature=source.signature, checked_by=checked_by,
        rest_key=SeriesKey(source.name, "rest", ENDPOINT), grpc_key=SeriesKey(source.name, "grpc", ENDPOINT),
    )
