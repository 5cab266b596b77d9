"""What the target serves, found out once before the rules run.

The probe asks the REST side of the target, for each model the run will check:
its metadata (``name``, declared ``versions``), its entry in the repository index
(where the server has one), and model ready on the versioned path of every version
the model is known by (the index, the metadata, the models dir or the seed
catalogue) and on the unversioned path. From these answers it chooses the version
the rules use: the first one the server serves on ``/versions/<v>``, the server's
own word first; ``None`` (the unversioned path) when no versioned path answers.

Nothing here fails a rule: the facts (:class:`Capabilities`, kept as ``Target.probe`` and
written to ``results.json``) are judged by the rules of ``conformance/test_probe.py``,
so a missing capability fails once, in its own rule. The one exception is a model
that answers ready on no path at all: :func:`not_served` says why, for the caller's
``TargetError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from oip import RestClient
from oip.rest import model_path

BODY_LIMIT = 160  # characters of an answer's body kept as a fact
MAX_DECLARED = 8  # metadata `versions` asked on their versioned paths, at most
INDEX_PATH = "/v2/repository/index"
NO_RESPONSE = "no-response"
VERSIONED_RULE = "probe_versioned_path_served"  # the rule that judges a missing versioned path


@dataclass(frozen=True)
class Answer:
    """What the server answered to one request (status and the start of the body)."""

    method: str
    path: str
    status: int | str  # the HTTP status, or "no-response"
    body: str = ""

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300

    @property
    def client_error(self) -> bool:
        return isinstance(self.status, int) and 400 <= self.status < 500

    def __str__(self) -> str:
        return f"{self.method} {self.path} answered {self.status} {self.body[:80]!r}"

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "status": self.status, "body": self.body}


@dataclass(frozen=True)
class ModelFacts:
    """One model as the target serves it."""

    name: str
    version: str | None  # the version the rules use; None: the unversioned path
    hint: str | None  # the version the models dir / seed catalogue gives the model
    hint_from: str  # where the hint comes from ("" when there is none)
    index_version: str | None  # the model's entry in the repository index (None: not listed)
    index_state: str | None
    declared_versions: tuple[str, ...] | None  # metadata `versions`; None: absent or not a list
    metadata_name: Any  # metadata `name` as the server gave it (None when absent)
    metadata: Answer  # the metadata answer the signature is read from (on the rules' path)
    versioned: tuple[tuple[str, Answer], ...]  # model ready on /versions/<v>/ready, per version asked
    unversioned: Answer  # model ready on the unversioned path
    metadata_body: Any = field(default=None, repr=False, compare=False)

    @property
    def versioned_served(self) -> bool:
        return any(answer.ok for _, answer in self.versioned)

    @property
    def unversioned_served(self) -> bool:
        return self.unversioned.ok

    @property
    def ready(self) -> bool:
        return self.versioned_served or self.unversioned_served

    def named_by_server(self, version: str) -> list[str]:
        """Where the server itself names ``version`` for this model (index, metadata)."""
        where = []
        if version == self.index_version:
            where.append("the repository index")
        if version in (self.declared_versions or ()):
            where.append("the model metadata's `versions`")
        return where

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "hint": self.hint, "hint_from": self.hint_from,
            "index": None if self.index_version is None and self.index_state is None
            else {"version": self.index_version, "state": self.index_state},
            "declared_versions": None if self.declared_versions is None else list(self.declared_versions),
            "metadata_name": self.metadata_name, "metadata": self.metadata.as_dict(),
            "versioned_served": self.versioned_served, "unversioned_served": self.unversioned_served,
            "ready": self.ready,
            "versioned": {version: answer.as_dict() for version, answer in self.versioned},
            "unversioned": self.unversioned.as_dict(),
        }


@dataclass(frozen=True)
class Capabilities:
    """Everything the probe found: the server, its index, gRPC, and each model."""

    server_name: str
    server_version: str
    extensions: tuple[str, ...]
    index: Answer | None  # POST /v2/repository/index (None: not asked)
    index_served: bool
    grpc_target: str | None
    grpc: str  # what ServerLive answered, or why it was not asked
    models: tuple[ModelFacts, ...] = ()

    @property
    def versioned_paths(self) -> str:
        """``served`` (some model answers on /versions/<v>), ``not served``, or ``not tried``."""
        if any(m.versioned_served for m in self.models):
            return "served"
        return "not served" if any(m.versioned for m in self.models) else "not tried"

    def model(self, name: str) -> ModelFacts | None:
        return next((m for m in self.models if m.name == name), None)

    def no_versioned_path(self, name: str) -> str | None:
        """Why a rule that needs ``/versions/<v>`` of model ``name`` cannot run (a skip reason), or None."""
        facts = self.model(name)
        if facts is None or facts.version is not None or not facts.versioned:
            return None
        return (f"{name}: the probe found no version served on /versions/<v> (rule {VERSIONED_RULE}); "
                "the rules use the unversioned path")

    def summary(self) -> str:
        """One line for the report's header."""
        index = "served" if self.index_served else f"not served ({self.index.status})" if self.index \
            else "not asked"
        models = "; ".join(f"{m.name}: {m.version or 'unversioned path'}" for m in self.models)
        return f"versioned paths {self.versioned_paths}; repository index {index}; {models}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": {"name": self.server_name, "version": self.server_version,
                       "extensions": list(self.extensions)},
            "index": None if self.index is None else {**self.index.as_dict(), "served": self.index_served},
            "grpc": {"target": self.grpc_target, "answer": self.grpc},
            "versioned_paths": self.versioned_paths,
            "models": [m.as_dict() for m in self.models],
        }


# ------------------------------------------------------------------ pure parts


def declared_versions(body: Any) -> tuple[str, ...] | None:
    """Metadata ``versions`` as strings, or None when the body has no list there."""
    versions = body.get("versions") if isinstance(body, dict) else None
    if not isinstance(versions, list):
        return None
    return tuple(str(v) for v in versions)


def parse_index(body: Any) -> dict[str, tuple[str | None, str | None]] | None:
    """``{name: (version, state)}`` of a repository index answer; None when it is not a list."""
    if not isinstance(body, list):
        return None
    entries: dict[str, tuple[str | None, str | None]] = {}
    for entry in body:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            version, state = entry.get("version"), entry.get("state")
            entries.setdefault(entry["name"], (str(version) if version not in (None, "") else None,
                                               str(state) if state is not None else None))
    return entries


def candidates(index_version: str | None, declared: Iterable[str] | None, hint: str | None) -> list[str]:
    """The versions to ask, the server's own word first: the index's, metadata's, then the hint."""
    ordered = [index_version, *list(declared or ())[:MAX_DECLARED], hint]
    seen: list[str] = []
    for version in ordered:
        if version and version not in seen:
            seen.append(version)
    return seen


def choose(versioned: Iterable[tuple[str, Answer]]) -> str | None:
    """The first version that answers ready on its versioned path; None: the unversioned path."""
    return next((version for version, answer in versioned if answer.ok), None)


def not_served(facts: ModelFacts) -> str | None:
    """None when the model answers ready on some path, else what the server said."""
    if facts.ready:
        return None
    return f"GET {facts.unversioned.path} answered {facts.unversioned.status} {facts.unversioned.body[:80]!r}"


# ------------------------------------------------------------------ asking


def ask(rest: RestClient, path: str, method: str = "GET") -> tuple[Answer, Any]:
    """One request; (the answer, its JSON body or None). An unreachable target raises."""
    try:
        if method == "GET":
            response = rest.get(path)
        else:
            response = rest.post_raw(path, b"{}", {"Content-Type": "application/json"})
    except httpx.HTTPError as exc:  # TargetUnreachable is no httpx error: it escapes
        return Answer(method, path, NO_RESPONSE, f"{type(exc).__name__}: {exc}"[:BODY_LIMIT]), None
    return Answer(method, path, response.status, response.text[:BODY_LIMIT]), response.json


def read_index(rest: RestClient) -> tuple[Answer, dict[str, tuple[str | None, str | None]] | None]:
    answer, body = ask(rest, INDEX_PATH, "POST")
    return answer, parse_index(body) if answer.ok else None


def probe_model(rest: RestClient, name: str, hint: str | None = None, hint_from: str = "",
                index_entry: tuple[str | None, str | None] | None = None) -> ModelFacts:
    """Ask the target how it serves ``name``; ``hint`` is the version the caller expects."""
    index_version, index_state = index_entry or (None, None)
    unversioned_meta, unversioned_body = ask(rest, model_path(name))
    declared = declared_versions(unversioned_body) if unversioned_meta.ok else None
    asked = candidates(index_version, declared, hint)
    versioned = tuple((v, ask(rest, model_path(name, v, "/ready"))[0]) for v in asked)
    unversioned = ask(rest, model_path(name, None, "/ready"))[0]
    version = choose(versioned)
    metadata, body = unversioned_meta, unversioned_body
    if version is not None:
        versioned_meta, versioned_body = ask(rest, model_path(name, version))
        if versioned_meta.ok or not unversioned_meta.ok:
            metadata, body = versioned_meta, versioned_body
        if declared is None and versioned_meta.ok:
            declared = declared_versions(versioned_body)
    return ModelFacts(
        name=name, version=version, hint=hint, hint_from=hint_from if hint else "",
        index_version=index_version, index_state=index_state, declared_versions=declared,
        metadata_name=body.get("name") if isinstance(body, dict) else None, metadata=metadata,
        versioned=versioned, unversioned=unversioned, metadata_body=body if metadata.ok else None,
    )
