"""The seed's payloads, encoded once, and the check of every answer against the oracle.

:func:`build_plan_workload` is where a run's payloads come from: this module for
the seed's ``models/``, :mod:`._expected` for any other model repository.

Before a run starts, each model's held-out rows are cut into batches of
``--batch-size`` rows and encoded with the harness's one V2 codec
(:mod:`oip.codec`) into ready-to-send bytes: a JSON body for REST and a
serialised ``ModelInferRequest`` for gRPC. The in-process oracle
(:mod:`reference.oracle`) predicts every row once, so the hot path only sends
bytes, parses the answer and compares a few numbers.

A check returns ``None`` when the answer is right, otherwise one line naming
the model, the held-out row and both values, which becomes the Locust
failure's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.message import DecodeError

from oip._pb import pb
from oip.codec import build_infer_request, build_json_infer_request, from_grpc_tensor, from_json_tensor
from oip.errors import CodecError
from oip.names import GRPC_MODEL_INFER, LOOPBACK
from oip.precise import http_request
from oip.rest import model_path
from reference import datasets, oracle
from reference.catalog import MODELS, ModelSpec
from reporting.latency import SeriesKey

from ._expected import AnyModelLoad, rest_envelope, snippet
from ._plan import Plan, PlanError

REST_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
GRPC_METHOD = GRPC_MODEL_INFER  # kept for the callers that import it from here
ENDPOINT = "infer"


@dataclass(frozen=True)
class Item:
    """One request's worth of held-out rows, pre-encoded, with the oracle's answers."""

    first_row: int
    rest_body: bytes
    rest_request: bytes  # the whole HTTP/1.1 request (head and rest_body), for the precise client
    grpc_body: bytes
    expected: tuple[Any, ...]

    @property
    def label(self) -> str:
        n = len(self.expected)
        return f"row {self.first_row}" if n == 1 else f"rows {self.first_row}-{self.first_row + n - 1}"


@dataclass(frozen=True)
class ModelLoad:
    """Everything the users need to send one model's requests and check the answers."""

    spec: ModelSpec
    items: tuple[Item, ...]
    rest_path: str
    grpc_version: str
    exact: bool  # integer outputs compare exactly, float outputs within the oracle's tolerance
    rest_key: SeriesKey
    grpc_key: SeriesKey

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def grpc_name(self) -> str:
        return f"ModelInfer {self.spec.name}" + (f" {self.grpc_version}" if self.grpc_version else "")

    def check_rest(self, item: Item, status: int, body: bytes) -> str | None:
        return check_rest(self, item, status, body)

    def check_grpc(self, item: Item, raw: bytes) -> str | None:
        return check_grpc(self, item, raw)


def build_model_load(name: str, batch_size: int, versioned: bool, data_dir: str | None = None,
                     rest_url: str = f"http://{LOOPBACK}") -> ModelLoad:
    """Encode ``name``'s held-out rows in batches of ``batch_size`` (a trailing partial batch is dropped).

    ``rest_url`` (the target's base URL) gives the HTTP requests their Host header and path prefix.
    """
    spec = MODELS[name]
    X, _ = datasets.heldout(name, data_dir)
    if batch_size > len(X):
        raise PlanError(
            f"--batch-size {batch_size} is larger than {name}'s {len(X)} held-out rows; "
            f"use at most {len(X)}"
        )
    predictions = oracle.predict(name, X)
    version = spec.version if versioned else ""
    rest_path = model_path(name, version or None, "/infer")
    base = urlsplit(rest_url)
    target = base.path.rstrip("/") + rest_path
    items = []
    for start in range(0, len(X) - batch_size + 1, batch_size):
        rows = X[start:start + batch_size]
        inputs = {spec.input_name: rows}
        datatypes = {spec.input_name: "FP32"}
        body = build_json_infer_request(inputs, datatypes=datatypes)
        grpc_request = build_infer_request(name, inputs, model_version=version, datatypes=datatypes)
        rest_body = json.dumps(body, separators=(",", ":")).encode()
        items.append(Item(
            first_row=start,
            rest_body=rest_body,
            rest_request=http_request("POST", base.netloc, target, rest_body, REST_HEADERS),
            grpc_body=grpc_request.SerializeToString(),
            expected=tuple(predictions[start:start + batch_size].tolist()),
        ))
    return ModelLoad(
        spec=spec,
        items=tuple(items),
        rest_path=rest_path,
        grpc_version=version,
        exact=spec.output_datatype not in ("FP16", "FP32", "FP64"),
        rest_key=SeriesKey(name, "rest", ENDPOINT),
        grpc_key=SeriesKey(name, "grpc", ENDPOINT),
    )


def build_workload(models: list[str], batch_size: int, versioned: bool, data_dir: str | None = None,
                   rest_url: str = f"http://{LOOPBACK}") -> dict[str, ModelLoad]:
    return {name: build_model_load(name, batch_size, versioned, data_dir, rest_url) for name in models}


def build_plan_workload(plan: Plan) -> dict[str, ModelLoad | AnyModelLoad]:
    """The payloads of every model of the plan's mix, from wherever its models are.

    The seed's ``models/``: held-out rows and the in-process oracle (:func:`build_model_load`).
    Any other model repository, or a server's own models: :mod:`._expected`.
    """
    from ._expected import build_any_load, local_source, server_source
    from ._models import SERVER, is_seed, local_models

    names = sorted(plan.mix)
    seed: list[str] = []
    if is_seed(plan.models_dir):  # the seed's models keep their checks, unless --samples has theirs
        given = Path(plan.samples_dir) if plan.samples_dir else None
        seed = [n for n in names if given is None or not any((given / n).glob("*.json"))]
    workload: dict[str, ModelLoad | AnyModelLoad] = dict(
        build_workload(seed, plan.batch_size, plan.versioned, rest_url=plan.rest_url))
    rest = [n for n in names if n not in seed]
    if plan.models_dir == SERVER:
        sources = [server_source(plan.rest_url, n, plan.versions.get(n), plan.samples_dir) for n in rest]
    elif rest:
        deployed = local_models(plan.models_dir)
        sources = [local_source(deployed[n], plan.samples_dir) for n in rest]
    else:
        sources = []
    for source in sources:
        workload[source.name] = build_any_load(source, plan.batch_size, plan.versioned, plan.rest_url)
    return workload


# ------------------------------------------------------------------ checks


def check_rest(load: ModelLoad, item: Item, status: int, body: bytes) -> str | None:
    """Why a REST answer is wrong (status, V2 shape, prediction), or None when it is right."""
    where = f"{load.name} {item.label} over REST"
    doc, problem = rest_envelope(load.name, where, status, body)
    if doc is None:
        return problem
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        return f"{where}: no 'outputs' list in the response: {snippet(body)}"
    wanted = load.spec.output_name
    tensor = next((o for o in outputs if isinstance(o, dict) and o.get("name") == wanted), None)
    if tensor is None:
        names = [o.get("name") for o in outputs if isinstance(o, dict)]
        return f"{where}: no output named {wanted!r} (outputs: {names})"
    try:
        values = from_json_tensor(tensor)
    except CodecError as exc:
        return f"{where}: output {wanted!r} is not a valid V2 tensor: {exc}"
    return _compare(load, item, tensor.get("datatype"), values, "REST")


def check_grpc(load: ModelLoad, item: Item, raw: bytes) -> str | None:
    """Why a gRPC answer (serialised ``ModelInferResponse``) is wrong, or None when it is right."""
    where = f"{load.name} {item.label} over gRPC"
    try:
        response = pb.ModelInferResponse.FromString(raw)
    except DecodeError as exc:
        return f"{where}: the response is not a ModelInferResponse ({exc})"
    if response.model_name != load.name:
        return f"{where}: model_name is {response.model_name!r}, expected {load.name!r}"
    wanted = load.spec.output_name
    raws = response.raw_output_contents
    for index, tensor in enumerate(response.outputs):
        if tensor.name == wanted:
            try:
                values = from_grpc_tensor(tensor, raws[index] if raws else None)
            except (CodecError, IndexError) as exc:
                return f"{where}: output {wanted!r} is not a valid V2 tensor: {exc}"
            return _compare(load, item, tensor.datatype, values, "gRPC")
    names = [t.name for t in response.outputs]
    return f"{where}: no output named {wanted!r} (outputs: {names})"


def _compare(load: ModelLoad, item: Item, datatype: Any, values: Any, transport: str) -> str | None:
    expected = item.expected
    n = len(expected)
    if datatype != load.spec.output_datatype:
        return (f"{load.name} {item.label} over {transport}: output datatype {datatype}, "
                f"expected {load.spec.output_datatype}")
    if values.size != n or values.shape[0] != n:
        return (f"{load.name} {item.label} over {transport}: output shape {list(values.shape)}, "
                f"expected [{n}, 1] (one prediction per row)")
    got = values.reshape(-1).tolist()
    for offset in range(n):
        g, e = got[offset], expected[offset]
        if (g != e) if load.exact else not (abs(g - e) <= oracle.PROBABILITY_ATOL):
            return (f"wrong answer: {load.name} row {item.first_row + offset} over {transport}: "
                    f"server {g!r}, oracle {e!r}")
    return None
