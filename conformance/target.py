"""The server under test: where it is, what it is, which models it serves.

``resolve`` turns the command-line options into a :class:`Target`, starting the
reference deployment when no ``--target-url`` is given. Anything that makes the
run pointless (unreachable target, not a V2 server, a model it does not serve)
raises :class:`TargetError` with one line saying what to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

from oip import GrpcClient, RestClient, TargetUnreachable
from reference.catalog import MODELS, ModelSpec
from reference.errors import HarnessError
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer

TARGET_KEY = pytest.StashKey["Target"]()
PROBE_TIMEOUT_S = 10.0
DEFAULT_INPUT_DATATYPE = "FP32"  # what the reference models declare and the seed sends


class TargetError(Exception):
    """The target cannot be tested at all; the message says why and what to do."""


@dataclass(frozen=True)
class ServerIdentity:
    name: str
    version: str
    extensions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class ModelUnderTest:
    spec: ModelSpec
    version: str
    input_datatype: str = DEFAULT_INPUT_DATATYPE
    outputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.outputs or (self.spec.output_name,)

    def __str__(self) -> str:
        return self.name


@dataclass
class Target:
    rest_url: str
    grpc_target: str | None
    grpc_skip_reason: str | None
    identity: ServerIdentity
    models: list[ModelUnderTest]
    models_from: str
    started_reference: bool
    oracle_note: str
    reference: ReferenceServer | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.reference is not None:
            self.reference.stop()
            self.reference = None


def resolve(target_url: str | None, grpc_target: str | None, models: list[str] | None) -> Target:
    """Probe (or start) the target and decide what to test."""
    reference = None
    if target_url is None:
        try:
            reference = ReferenceServer(ports="free").start()
        except HarnessError as exc:
            raise TargetError(f"could not start the reference deployment: {exc}") from None
        target_url = reference.endpoints.rest_url
        grpc_target = grpc_target or reference.endpoints.grpc_target
    try:
        target = _probe(target_url.rstrip("/"), grpc_target, models, reference)
    except BaseException:
        if reference is not None:
            reference.stop()
        raise
    return target


def _probe(url: str, grpc_target: str | None, names: list[str] | None,
           reference: ReferenceServer | None) -> Target:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise TargetError(f"--target-url {url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080")
    try:
        with RestClient(url, timeout=PROBE_TIMEOUT_S) as rest:
            identity = _identity(rest, url)
            models, models_from = _models(rest, url, names)
    except (TargetUnreachable, httpx.HTTPError) as exc:
        raise TargetError(f"cannot talk to --target-url {url}: {exc}") from None
    grpc_skip = None
    if grpc_target is None:
        grpc_skip = "no --grpc-target given for this --target-url: gRPC rules not checked"
    else:
        _check_grpc(grpc_target)
    return Target(
        rest_url=url, grpc_target=grpc_target, grpc_skip_reason=grpc_skip, identity=identity,
        models=models, models_from=models_from, started_reference=reference is not None,
        oracle_note=_oracle_note(models, reference is not None), reference=reference,
    )


def _identity(rest: RestClient, url: str) -> ServerIdentity:
    try:
        response = rest.server_metadata()
    except TargetUnreachable as exc:
        raise TargetError(f"cannot reach --target-url {url}: {exc.reason}. Is the server running there?") \
            from None
    body = response.json
    if response.status != 200 or not isinstance(body, dict):
        raise TargetError(
            f"{url} does not look like a V2 server: GET /v2 answered {response.status} "
            f"{response.text[:120]!r}; point --target-url at the REST base URL of an Open Inference "
            "Protocol server"
        )
    extensions = body.get("extensions")
    return ServerIdentity(
        name=str(body.get("name", "?")),
        version=str(body.get("version", "?")),
        extensions=tuple(map(str, extensions)) if isinstance(extensions, list) else (),
    )


def _models(rest: RestClient, url: str, names: list[str] | None) -> tuple[list[ModelUnderTest], str]:
    index = _repository_index(rest)
    versions = {name: version for name, (version, _) in (index or {}).items() if version}
    if names:
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise TargetError(
                f"--models {','.join(unknown)}: the suite can only build inputs for {', '.join(MODELS)}"
            )
        missing = [f"{n} ({why})" for n in names if (why := _not_served(rest, MODELS[n]))]
        if missing:
            raise TargetError(f"{url} does not serve {'; '.join(missing)}: check --models or the server")
        chosen, source = list(names), "--models"
    elif index is not None and (ready := [n for n in MODELS if index.get(n, ("", ""))[1] == "READY"]):
        chosen, source = ready, "repository index"
    else:
        chosen, source = [n for n in MODELS if not _not_served(rest, MODELS[n])], "ready probes"
        if not chosen:
            raise TargetError(
                f"{url} serves none of the models the suite knows ({', '.join(MODELS)}): "
                "none is in its repository index or answers ready"
            )
    return [_model(rest, MODELS[n], versions.get(n, MODELS[n].version)) for n in chosen], source


def _not_served(rest: RestClient, spec: ModelSpec) -> str | None:
    """None when the model answers ready (versioned or not), else what the server said."""
    if rest.model_ready(spec.name, spec.version).status == 200:
        return None
    unversioned = rest.model_ready(spec.name)
    if unversioned.status == 200:
        return None
    return f"GET /v2/models/{spec.name}/ready answered {unversioned.status} {unversioned.text[:80]!r}"


def _repository_index(rest: RestClient) -> dict[str, tuple[str, str]] | None:
    response = rest.post_raw("/v2/repository/index", b"{}", {"Content-Type": "application/json"})
    if response.status != 200 or not isinstance(response.json, list):
        return None
    return {
        str(entry.get("name")): (str(entry.get("version") or ""), str(entry.get("state") or ""))
        for entry in response.json if isinstance(entry, dict)
    }


def _model(rest: RestClient, spec: ModelSpec, version: str) -> ModelUnderTest:
    """The model as its metadata declares it (falling back to the catalogue)."""
    body = rest.model_metadata(spec.name, version).json
    datatype, outputs = DEFAULT_INPUT_DATATYPE, ()
    if isinstance(body, dict):
        inputs = [i for i in body.get("inputs") or [] if isinstance(i, dict)]
        if inputs and isinstance(inputs[0].get("datatype"), str):
            datatype = inputs[0]["datatype"]
        declared = [o for o in body.get("outputs") or [] if isinstance(o, dict) and "name" in o]
        outputs = tuple(str(o["name"]) for o in declared)
    return ModelUnderTest(spec, version, datatype, outputs)


def _check_grpc(target: str) -> None:
    with GrpcClient(target, timeout=PROBE_TIMEOUT_S) as client:
        try:
            client.live()
        except grpc.RpcError as exc:
            raise TargetError(
                f"cannot call ServerLive on --grpc-target {target}: {exc.code().name} "
                f"{(exc.details() or '')[:120]}; give the server's gRPC host:port"
            ) from None


def _oracle_note(models: list[ModelUnderTest], started_reference: bool) -> str:
    present = [m.name for m in models if (MODELS_DIR / m.name / m.spec.artifact).is_file()]
    if not present:
        return "no local artifacts: predictions are not compared with an in-process oracle"
    shas = []
    for name in present:
        try:
            manifest = json.loads((MODELS_DIR / name / "manifest.json").read_text())
            shas.append(f"{name} sha256 {manifest['artifact']['sha256'][:12]}")
        except (OSError, ValueError, KeyError):
            shas.append(f"{name} (no manifest)")
    where = ("the same artifacts the suite's reference deployment serves" if started_reference
             else "local artifacts; the target was not started by the suite, so this assumes it serves them")
    return f"in-process oracle on {where}: {', '.join(shas)}"
