"""The probe's rules: what the target serves agrees with what it says (conformance/probe.py).

The probe gathered the facts before the run; each rule here judges one of them, and
asks the server again over the transport under test so that a failure carries the
request that reproduces it. A capability the target lacks (versioned paths, say)
fails here, once per model, while the other rules use what the target does serve.
"""

from __future__ import annotations

import pytest

from conformance.calls import Reply, Transport
from conformance.checks import violation
from conformance.explore import CheckOnce
from conformance.models import ModelUnderTest
from conformance.probe import MAX_DECLARED, VERSIONED_RULE, ModelFacts, declared_versions
from conformance.target import Target

UNKNOWN_VERSION_CODES = frozenset({"NOT_FOUND", "INVALID_ARGUMENT"})


def _facts(target: Target, model: ModelUnderTest) -> ModelFacts:
    facts = target.probe.model(model.name)
    if facts is None:
        pytest.skip(f"{model.name} was not probed")
    return facts


def _ready(reply: Reply) -> bool:
    return reply.ok and (reply.transport == "rest" or bool(reply.message.ready))


def _unknown_version(reply: Reply) -> bool:
    """The answer of a server that understands the path but does not know the version."""
    if reply.transport == "grpc":
        return reply.status in UNKNOWN_VERSION_CODES or (reply.ok and not reply.message.ready)
    return reply.status.isdigit() and 400 <= int(reply.status) < 500


def test_probe_versioned_path_served(transport: Transport, model: ModelUnderTest, target: Target,
                                     check_once: CheckOnce) -> None:
    facts = _facts(target, model)
    if not facts.versioned:
        pytest.skip(f"no version of {model.name} is known (no repository index entry, metadata `versions` "
                    "or models-dir version): no versioned path to ask")

    def check() -> None:
        replies = [(version, transport.model_ready(model.name, version)) for version, _ in facts.versioned]
        path_served = any(_ready(reply) for _, reply in replies)
        for version, reply in replies:
            if _ready(reply):
                continue
            named = facts.named_by_server(version)
            if not [w for w in named if "metadata" not in w] and (path_served or _unknown_version(reply)):
                # a version the server does not name (only the models dir / catalogue does), or one only
                # its metadata names (that is probe_metadata_consistent's)
                continue
            where = " and ".join(named) or f"the {facts.hint_from}"
            used = f"version {model.version!r}" if model.version else "the unversioned path"
            raise violation(
                reply,
                f"{model.name} version {version!r} ({where} names it) does not answer model ready on its "
                "versioned path: the versions portion of the path is part of the API (rest.md API table); "
                f"the other rules use {used}",
            )

    check_once(check)


def _declared(transport: Transport, model: ModelUnderTest) -> tuple[list[str] | None, Reply]:
    reply = transport.model_metadata(model.name, None)
    if not reply.ok and model.version is not None:
        reply = transport.model_metadata(model.name, model.version)
    if not reply.ok:
        return None, reply
    if reply.transport == "grpc":
        return list(reply.message.versions), reply
    versions = declared_versions(reply.body)
    return (list(versions) if versions is not None else None), reply


def test_probe_metadata_consistent(transport: Transport, model: ModelUnderTest, target: Target,
                                   check_once: CheckOnce) -> None:
    facts = _facts(target, model)
    if facts.versioned and not facts.versioned_served:
        pytest.skip(f"{model.name} answers on no versioned path (rule {VERSIONED_RULE}): "
                    "the versions its metadata lists cannot be asked")
    declared, metadata = _declared(transport, model)
    if declared is None:
        pytest.skip(f"{model.name}: no metadata `versions` to compare ({metadata.signature})")
    if not declared:
        pytest.skip(f"{model.name}: metadata `versions` is empty: nothing declared to ask")

    def check() -> None:
        for version in declared[:MAX_DECLARED]:
            reply = transport.model_ready(model.name, version)
            if not _ready(reply):
                raise violation(
                    reply,
                    f"{model.name}'s metadata lists version {version!r} in `versions` (the versions that "
                    f"may be explicitly requested), but its versioned path does not answer ready\n"
                    f"metadata:\n{metadata.repro}",
                )

    check_once(check)
