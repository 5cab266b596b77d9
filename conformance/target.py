"""The server under test: where it is, what it is, which models it serves.

``resolve`` turns the command-line options into a :class:`Target`, starting the
reference deployment when no ``--target-url`` is given. Anything that makes the
run pointless (unreachable target, not a V2 server, a model it does not serve)
raises :class:`TargetError` with one line saying what to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

from conformance.models import LocalModel, ModelsError, ModelUnderTest, from_local, from_server, local_models
from oip import GrpcClient, RestClient, TargetUnreachable
from reference.catalog import MODELS
from reference.errors import HarnessError
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer

TARGET_KEY = pytest.StashKey["Target"]()
PROBE_TIMEOUT_S = 10.0

__all__ = ["TARGET_KEY", "ModelUnderTest", "ServerIdentity", "Target", "TargetError", "resolve"]


class TargetError(Exception):
    """The target cannot be tested at all; the message says why and what to do."""


@dataclass(frozen=True)
class ServerIdentity:
    name: str
    version: str
    extensions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


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
    oracles: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> runtime oracle or why not

    def close(self) -> None:
        for oracle in self.oracles.values():
            if oracle:
                oracle.close()
        self.oracles.clear()
        if self.reference is not None:
            self.reference.stop()
            self.reference = None




@dataclass(frozen=True)
class Options:
    """What the command line asks for."""

    target_url: str | None = None
    grpc_target: str | None = None
    models: list[str] | None = None
    models_dir: Path = MODELS_DIR
    models_dir_given: bool = False
    samples_dir: Path | None = None

    @property
    def local(self) -> bool:
        """A local models dir describes the served models (and its runtimes may run in-process)."""
        return self.target_url is None or self.models_dir_given


def resolve(options: Options) -> Target:
    """Read the local models (if any), probe (or start) the target and decide what to test."""
    if options.samples_dir is not None and not options.samples_dir.is_dir():
        raise TargetError(f"--samples {options.samples_dir} is not a folder: give a folder holding "
                          "<model>/*.json V2 request samples")
    local = None
    if options.local:
        try:
            local = local_models(options.models_dir, options.samples_dir)
        except ModelsError as exc:
            raise TargetError(str(exc)) from None
    reference, target_url, grpc_target = None, options.target_url, options.grpc_target
    if target_url is None:
        try:
            reference = ReferenceServer(models_dir=options.models_dir, ports="free").start()
        except HarnessError as exc:
            raise TargetError(f"could not start the reference deployment: {exc}") from None
        target_url = reference.endpoints.rest_url
        grpc_target = grpc_target or reference.endpoints.grpc_target
    try:
        target = _probe(target_url.rstrip("/"), grpc_target, options, local, reference)
        _load_oracles(target)
    except BaseException:
        if reference is not None:
            reference.stop()
        raise
    return target


def _probe(url: str, grpc_target: str | None, options: Options, local: dict[str, LocalModel] | None,
           reference: ReferenceServer | None) -> Target:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise TargetError(f"--target-url {url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080")
    try:
        with RestClient(url, timeout=PROBE_TIMEOUT_S) as rest:
            identity = _identity(rest, url)
            if local is not None:
                models, models_from = _local(rest, url, options, local)
            else:
                models, models_from = _remote(rest, url, options)
    except (TargetUnreachable, httpx.HTTPError) as exc:
        raise TargetError(f"cannot talk to --target-url {url}: {exc}") from None
    except ModelsError as exc:
        raise TargetError(str(exc)) from None
    grpc_skip = None
    if grpc_target is None:
        grpc_skip = "no --grpc-target given for this --target-url: gRPC rules not checked"
    else:
        _check_grpc(grpc_target)
    return Target(
        rest_url=url, grpc_target=grpc_target, grpc_skip_reason=grpc_skip, identity=identity,
        models=models, models_from=models_from, started_reference=reference is not None,
        oracle_note=_seed_oracle_note(models, reference is not None), reference=reference,
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


def _local(rest: RestClient, url: str, options: Options,
           local: dict[str, LocalModel]) -> tuple[list[ModelUnderTest], str]:
    names = list(local)
    source = f"--models-dir {options.models_dir}"
    if options.models:
        unknown = [n for n in options.models if n not in local]
        if unknown:
            raise TargetError(f"--models {','.join(unknown)}: not in {source} (it holds {', '.join(local)})")
        names, source = list(options.models), f"--models, {source}"
    missing = [f"{n} ({why})" for n in names if (why := _not_served(rest, n, local[n].version))]
    if missing:
        raise TargetError(f"{url} does not serve {'; '.join(missing)}: "
                          "check --models-dir, --models or the server")
    models = [from_local(local[n], rest.model_metadata(n, local[n].version).json, oracle=True) for n in names]
    return models, source


def _remote(rest: RestClient, url: str, options: Options) -> tuple[list[ModelUnderTest], str]:
    index = _repository_index(rest)
    versions = {name: version for name, (version, _) in (index or {}).items() if version}
    if options.models:
        chosen, source = list(options.models), "--models"
    elif index is not None and (ready := [n for n, (_, state) in index.items() if state == "READY"]):
        chosen, source = sorted(ready), "repository index"
    else:
        chosen, source = [n for n in MODELS if not _not_served(rest, n, MODELS[n].version)], "ready probes"
        if not chosen:
            raise TargetError(
                f"{url} has no repository index and serves none of the seed's models ({', '.join(MODELS)}): "
                "name the models to check with --models"
            )
    chosen_versions = {n: versions.get(n) or (MODELS[n].version if n in MODELS else None) for n in chosen}
    missing = [f"{n} ({why})" for n in chosen if (why := _not_served(rest, n, chosen_versions[n]))]
    if missing:
        raise TargetError(f"{url} does not serve {'; '.join(missing)}: check --models or the server")
    models = [from_server(n, chosen_versions[n], rest.model_metadata(n, chosen_versions[n]).json,
                          options.samples_dir) for n in chosen]
    return models, source


def _not_served(rest: RestClient, name: str, version: str | None) -> str | None:
    """None when the model answers ready (versioned or not), else what the server said."""
    if version and rest.model_ready(name, version).status == 200:
        return None
    unversioned = rest.model_ready(name)
    if unversioned.status == 200:
        return None
    return f"GET /v2/models/{name}/ready answered {unversioned.status} {unversioned.text[:80]!r}"


def _repository_index(rest: RestClient) -> dict[str, tuple[str, str]] | None:
    response = rest.post_raw("/v2/repository/index", b"{}", {"Content-Type": "application/json"})
    if response.status != 200 or not isinstance(response.json, list):
        return None
    return {
        str(entry.get("name")): (str(entry.get("version") or ""), str(entry.get("state") or ""))
        for entry in response.json if isinstance(entry, dict)
    }


def _check_grpc(target: str) -> None:
    with GrpcClient(target, timeout=PROBE_TIMEOUT_S) as client:
        try:
            client.live()
        except grpc.RpcError as exc:
            raise TargetError(
                f"cannot call ServerLive on --grpc-target {target}: {exc.code().name} "
                f"{(exc.details() or '')[:120]}; give the server's gRPC host:port"
            ) from None


def _load_oracles(target: Target) -> None:
    """Each model's own runtime in-process, where a local model folder allows it."""
    from reference.runtime_oracle import OracleUnavailable, load_oracle

    for model in target.models:
        if model.oracle_dir is not None and model.signature.inputs:
            target.oracles[model.name] = load_oracle(model.oracle_dir)
        elif model.oracle_dir is not None:
            target.oracles[model.name] = OracleUnavailable(model.oracle_dir, "no request can be built")


def oracle_status(target: Target, model: ModelUnderTest) -> str:
    """One line per model for the report: which oracle checks its predictions."""
    parts = []
    if model.spec is not None and (MODELS_DIR / model.name / model.spec.artifact).is_file():
        parts.append("reference/oracle.py (independent)")
    oracle = target.oracles.get(model.name)
    if oracle:
        parts.append(f"runtime oracle {oracle.implementation} in-process")
    elif oracle is not None:
        parts.append(f"runtime oracle unavailable: {oracle.reason}")
    return "; ".join(parts) or "no oracle (give --models-dir to run the models' runtimes in-process)"


def _seed_oracle_note(models: list[ModelUnderTest], started_reference: bool) -> str:
    present = [m.name for m in models
               if m.spec is not None and (MODELS_DIR / m.name / m.spec.artifact).is_file()]
    if not present:
        return "no seed artifacts here: see each model's line above"
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
