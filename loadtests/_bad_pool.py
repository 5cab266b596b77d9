"""The bad requests sent under load: drawn once from the conformance suite's catalogue, encoded once.

ONE catalogue: :data:`conformance.bad_requests.BUILDERS` (rule id -> hypothesis
builders per transport). At start-up, for every kind x model x transport the
builder applies to, :func:`draw_examples` runs the builder under hypothesis'
``@given`` with a fixed ``@seed``, generation only (no shrinking, no example
database), and keeps the first :data:`EXAMPLES` requests it draws: varied like
the suite's own examples, the same ones every run. (``find`` would shrink to one
minimal request; ``.example()`` is neither seedable nor meant for this.)

Each request is then encoded once as the load clients send it
(:class:`BadRequest`): the whole HTTP/1.1 request for the precise REST client
(raw bytes as they are for malformed bodies), path, body and headers for the
stock client, the serialised message for gRPC. The oversized kind is capped at
:data:`LOAD_OVERSIZE_BYTES` (1 MiB) so that the generator and the loopback are
not what is measured; a server may accept that size, so its answer ``accepted``
is allowed, as is any answer to a kind that is not an ``error_`` rule
(``infer_mistyped_element_coerced_or_refused``: a server may coerce).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.bad_requests import BUILDERS, not_applicable
from conformance.calls import PADDING_KEY, GrpcBytes, InferCall, Probe, RestBody, grpc_request, json_body
from conformance.models import ModelUnderTest, from_local, local_models
from oip.precise import http_request
from oip.rest import model_path

from ._plan import PlanError

EXAMPLES = 8  # requests per kind x model x transport (fewer for a fixed builder)
SEED = 20261313
LOAD_OVERSIZE_BYTES = 1 << 20
OVERSIZED = "error_oversized_payload"
KINDS = tuple(BUILDERS)
REST_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
_SHARE = re.compile(r"^\s*(?P<value>-?[0-9]*\.?[0-9]+)\s*(?P<pct>%)?\s*$")


def parse_share(text: str | None) -> float:
    """``--bad-share``: ``5%`` or ``0.05`` -> 0.05; :class:`PlanError` (exit 2) outside 0-100%."""
    if text is None or not str(text).strip():
        return 0.0
    match = _SHARE.match(str(text))
    if not match:
        raise PlanError(f"--bad-share {text!r} does not parse: expected a percentage (5%) or a fraction "
                        "(0.05)")
    value = float(match["value"]) / (100 if match["pct"] else 1)
    if not 0.0 <= value <= 1.0:
        raise PlanError(f"--bad-share {text!r} is outside 0-100%")
    return value


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``--bad-kinds a,b``: those rule ids (every kind when empty); an unknown one: PlanError (exit 2)."""
    names = [k.strip() for k in (text or "").split(",") if k.strip()]
    unknown = [k for k in names if k not in BUILDERS]
    if unknown:
        raise PlanError(f"--bad-kinds: unknown bad kind {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return tuple(dict.fromkeys(names)) or KINDS


def may_accept(kind: str) -> bool:
    """An answer is right for this kind under load (see the module docstring)."""
    return not kind.startswith("error_") or kind == OVERSIZED


@dataclass(frozen=True)
class BadRequest:
    """One bad request, encoded for one transport."""

    kind: str
    model: str  # the model of the workload it was built for
    transport: str
    path: str = ""  # REST: the request target
    body: bytes = b""  # REST: the body; gRPC: the serialised message
    headers: tuple[tuple[str, str], ...] = ()
    request: bytes = b""  # REST: the whole HTTP/1.1 request (precise client)

    @property
    def allowed(self) -> bool:
        return may_accept(self.kind)


def draw_examples(strategy: Any, count: int, seed: int) -> list[Any]:
    """The first ``count`` examples hypothesis generates from ``strategy`` under ``seed``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    found: list[Any] = []

    @with_seed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    collect()
    return found[:count]


def capped(probe: Probe) -> Probe:
    if isinstance(probe, InferCall) and probe.padding > LOAD_OVERSIZE_BYTES:
        return probe.replace(padding=LOAD_OVERSIZE_BYTES)
    return probe


def encode(kind: str, model: str, transport: str, probe: Probe, rest_url: str) -> BadRequest:
    """``probe`` as the load clients send it (see :class:`BadRequest`)."""
    if transport == "grpc":
        if isinstance(probe, GrpcBytes):
            return BadRequest(kind, model, transport, body=probe.payload)
        message = grpc_request(probe)
        if probe.padding:
            message.parameters[PADDING_KEY].string_param = "x" * probe.padding
        return BadRequest(kind, model, transport, body=message.SerializeToString())
    if isinstance(probe, RestBody):
        path, body = probe.path, probe.body
        headers = {"Accept-Encoding": "identity", **probe.headers}
    else:
        doc = json_body(probe)
        if probe.padding:
            doc["parameters"][PADDING_KEY] = "x" * probe.padding
        path, body, headers = model_path(probe.model, probe.version, "/infer"), json.dumps(doc).encode(), \
            REST_HEADERS
    base = urlsplit(rest_url)
    target = base.path.rstrip("/") + path
    return BadRequest(kind, model, transport, target, body, tuple(headers.items()),
                      http_request("POST", base.netloc, target, body, dict(headers)))


def models_under_test(workload: dict[str, Any], models_dir: str | None) -> dict[str, ModelUnderTest]:
    """The conformance view of each model of the workload (its signature), called as the load calls it."""
    local = local_models(Path(models_dir)) if models_dir else {}
    out = {}
    for name, load in workload.items():
        version = getattr(load, "grpc_version", "") or None
        if name in local:
            mut = from_local(local[name], None, oracle=False)
        else:
            mut = ModelUnderTest(name, version, load.signature)
        out[name] = dataclasses.replace(mut, version=version)
    return out


def build_pool(workload: dict[str, Any], models_dir: str | None, transports: list[str],
               kinds: tuple[str, ...], rest_url: str, examples: int = EXAMPLES,
               seed: int = SEED) -> dict[tuple[str, str], list[BadRequest]]:
    """(model, transport) -> its bad requests, every applicable kind in turn (rotated by the senders)."""
    pool: dict[tuple[str, str], list[BadRequest]] = {}
    for name, mut in models_under_test(workload, models_dir).items():
        for transport in transports:
            per_kind = []
            for kind in kinds:
                build = BUILDERS[kind].for_transport(transport)
                if build is None or not_applicable(kind, mut):
                    continue
                drawn = draw_examples(build(mut), examples, seed + KINDS.index(kind))  # whatever --bad-kinds
                per_kind.append([encode(kind, name, transport, capped(p), rest_url) for p in drawn])
            # interleave: kind 1 example 1, kind 2 example 1, ...: a rotation through every kind
            longest = max((len(k) for k in per_kind), default=0)
            pool[(name, transport)] = [k[i % len(k)] for i in range(longest) for k in per_kind]
    return pool


def kinds_in(pool: dict[tuple[str, str], list[BadRequest]]) -> dict[str, list[str]]:
    """transport -> the kinds the pool holds for it."""
    out: dict[str, set[str]] = {}
    for (_, transport), requests in pool.items():
        out.setdefault(transport, set()).update(r.kind for r in requests)
    return {t: sorted(k) for t, k in sorted(out.items())}
