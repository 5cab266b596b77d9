"""The server under test: where it is, what it is, which models it serves.

``resolve`` turns the command-line options into a :class:`Target`, starting the
reference deployment when no ``--target-url`` is given, and probes what the target
serves (``conformance.probe``: versions, versioned paths, index) before any rule
runs; the rules use the version the probe chose (``Target.probe`` keeps the facts).
Only what makes the run pointless (unreachable target, not a V2 server, a named
model it does not serve on any path) raises :class:`TargetError` with one line
saying what to fix; everything else is a probe fact, judged by its own rule.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

from conformance.models import LocalModel, ModelsError, ModelUnderTest, from_local, from_server, local_models
from conformance.probe import Capabilities, ModelFacts, not_served, probe_model, read_index
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
    probe: Capabilities  # what the target serves, found before the rules (conformance/probe.py)
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
            index_answer, index = read_index(rest)
            if local is not None:
                models, facts, models_from = _local(rest, url, options, local, index)
            else:
                models, facts, models_from = _remote(rest, url, options, index)
    except (TargetUnreachable, httpx.HTTPError) as exc:
        raise TargetError(f"cannot talk to --target-url {url}: {exc}") from None
    except ModelsError as exc:
        raise TargetError(str(exc)) from None
    grpc_skip, grpc_answer = None, "not asked: no gRPC target"
    if grpc_target is None:
        grpc_skip = "no --grpc-target given for this --target-url: gRPC rules not checked"
    else:
        grpc_answer = _check_grpc(grpc_target)
    probe = Capabilities(identity.name, identity.version, identity.extensions, index_answer,
                         index is not None, grpc_target, grpc_answer, tuple(facts))
    return Target(
        rest_url=url, grpc_target=grpc_target, grpc_skip_reason=grpc_skip, identity=identity,
        models=models, models_from=models_from, started_reference=reference is not None,
        oracle_note=_seed_oracle_note(models, reference is not None), probe=probe, reference=reference,
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


Index = dict[str, tuple[str | None, str | None]] | None
Chosen = tuple[list[ModelUnderTest], list[ModelFacts], str]


def _local(rest: RestClient, url: str, options: Options, local: dict[str, LocalModel],
           index: Index) -> Chosen:
    names = list(local)
    source = f"--models-dir {options.models_dir}"
    if options.models:
        unknown = [n for n in options.models if n not in local]
        if unknown:
            raise TargetError(f"--models {','.join(unknown)}: not in {source} (it holds {', '.join(local)})")
        names, source = list(options.models), f"--models, {source}"
    facts = [probe_model(rest, n, local[n].version, "models dir", (index or {}).get(n)) for n in names]
    _all_served(url, facts, "check --models-dir, --models or the server")
    models = [_with_version(from_local(local[f.name], f.metadata_body, oracle=True), f) for f in facts]
    return models, facts, source


def _remote(rest: RestClient, url: str, options: Options, index: Index) -> Chosen:
    def probe(name: str) -> ModelFacts:
        hint = MODELS[name].version if name in MODELS else None
        return probe_model(rest, name, hint, "seed catalogue", (index or {}).get(name))

    if options.models:
        facts, source = [probe(n) for n in options.models], "--models"
    elif index is not None and (ready := [n for n, (_, state) in index.items() if state == "READY"]):
        listed = [probe(n) for n in sorted(ready)]
        facts, source = [f for f in listed if not not_served(f)], "repository index"
        # The index contradicting the ready probes is the repository_index rule's to report: not a crash.
        if contradicted := [f.name for f in listed if not_served(f)]:
            source += (f"; left out, listed READY but answering not ready: {', '.join(contradicted)} "
                       "(rule repository_index)")
        if not facts:
            raise TargetError(f"{url}: every model its repository index lists as READY answers not ready "
                              f"({', '.join(contradicted)}): check the server, or name models with --models")
    else:
        facts, source = [f for f in map(probe, MODELS) if f.ready], "ready probes"
        if not facts:
            raise TargetError(
                f"{url} has no repository index and serves none of the seed's models ({', '.join(MODELS)}): "
                "name the models to check with --models"
            )
    _all_served(url, facts, "check --models or the server")
    models = [_with_version(from_server(f.name, f.version, f.metadata_body, options.samples_dir), f)
              for f in facts]
    return models, facts, source


def _all_served(url: str, facts: list[ModelFacts], fix: str) -> None:
    missing = [f"{f.name} ({why})" for f in facts if (why := not_served(f))]
    if missing:
        raise TargetError(f"{url} does not serve {'; '.join(missing)}: {fix}")


def _with_version(model: ModelUnderTest, facts: ModelFacts) -> ModelUnderTest:
    """The model at the version the probe chose (the unversioned path when that is None)."""
    return model if model.version == facts.version else dataclasses.replace(model, version=facts.version)


def _check_grpc(target: str) -> str:
    with GrpcClient(target, timeout=PROBE_TIMEOUT_S) as client:
        try:
            return f"ServerLive OK live={client.live().live}"
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
