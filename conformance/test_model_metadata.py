"""Model metadata and model readiness, on versioned and unversioned paths, REST and gRPC."""

from __future__ import annotations

import pytest

from conformance.calls import Reply, Transport
from conformance.checks import expect_ok, expect_true, violation
from conformance.explore import CheckOnce
from conformance.models import ModelUnderTest
from oip.datatypes import DATATYPES
from oip.errors import OipError
from oip.signature import Signature

PATHS = ("versioned", "unversioned")


def _version(model: ModelUnderTest, path: str) -> str | None:
    return model.version if path == "versioned" else None


def _tensors_ok(tensors: object) -> bool:
    """Each tensor: string name, V2 datatype, shape of ints >= -1 (-1 = variable, allowed only here)."""
    if not isinstance(tensors, list):
        return False
    return all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and t.get("datatype") in DATATYPES
        and isinstance(t.get("shape"), list) and all(isinstance(d, int) and d >= -1 for d in t["shape"])
        for t in tensors
    )


def _grpc_tensors(tensors: object) -> list[dict]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]


def _metadata(reply: Reply) -> dict:
    """Model metadata as a JSON-like dict, whatever the transport."""
    if reply.transport == "grpc":
        m = reply.message
        return {"name": m.name, "platform": m.platform, "versions": list(m.versions) or None,
                "inputs": _grpc_tensors(m.inputs), "outputs": _grpc_tensors(m.outputs)}
    return reply.body if isinstance(reply.body, dict) else {}


@pytest.mark.parametrize("path", PATHS)
def test_model_metadata(transport: Transport, model: ModelUnderTest, path: str,
                        check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.model_metadata(model.name, _version(model, path))
        expect_ok(reply, "model metadata")
        meta = _metadata(reply)
        expect_true(meta.get("name") == model.name, reply, f"`name` must be {model.name!r}", "wrong name")
        expect_true(isinstance(meta.get("platform"), str), reply, "`platform` must be a string",
                    "no platform")
        for key in ("inputs", "outputs"):
            expect_true(key not in meta or meta[key] is None or _tensors_ok(meta[key]), reply,
                        f"`{key}` must be tensors with name, V2 datatype and shape", f"bad {key}")

    check_once(check)


def test_model_metadata_lists_served_version(transport: Transport, model: ModelUnderTest,
                                             check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.model_metadata(model.name, None)
        expect_ok(reply, "model metadata")
        versions = _metadata(reply).get("versions")
        if versions is None:
            return  # optional, and gRPC cannot tell an empty list from none
        expect_true(model.version in versions, reply,
                    f"`versions` is given but lacks {model.version!r}, which the versioned path serves",
                    f"versions={versions}")

    if model.version is None:
        pytest.skip(f"{model.name} is unversioned: no version to list")
    ready = transport.model_ready(model.name, model.version)
    if not ready.ok:
        pytest.skip(f"{model.name} does not answer on /versions/{model.version}: nothing to list")
    check_once(check)


def test_model_metadata_properties_are_text(transport: Transport, model: ModelUnderTest,
                                           check_once: CheckOnce) -> None:
    if transport.name != "grpc":
        pytest.skip("gRPC only: REST model metadata has no properties field")

    def check() -> None:
        reply = transport.model_metadata(model.name, model.version)
        expect_ok(reply, "model metadata")
        expect_true(not reply.problems, reply, "field 6 must be map<string, string> properties (OIP proto)",
                    "; ".join(reply.problems))

    check_once(check)


def test_model_metadata_matches_settings(transport: Transport, model: ModelUnderTest,
                                         check_once: CheckOnce) -> None:
    if model.declared is None:
        pytest.skip(f"no model-settings.json for {model.name}: give --models-dir to compare its metadata")
    declared = model.declared

    def check() -> None:
        reply = transport.model_metadata(model.name, model.version)
        expect_ok(reply, "model metadata")
        try:
            served = (Signature.from_grpc_metadata(reply.message) if transport.name == "grpc"
                      else Signature.from_metadata(_metadata(reply)))
        except OipError as exc:
            raise violation(reply, f"the metadata's tensors do not read as a signature: {exc}",
                            "unreadable tensors") from None
        for what in ("inputs", "outputs"):
            mine, theirs = getattr(declared, what), getattr(served, what)
            expect_true(not mine or mine == theirs, reply,
                        f"`{what}` should be those of {model.folder}/model-settings.json: "
                        f"{[s.to_dict() for s in mine]}, got {[s.to_dict() for s in theirs]}",
                        f"other {what}")

    check_once(check)


@pytest.mark.parametrize("path", PATHS)
def test_model_ready(transport: Transport, model: ModelUnderTest, path: str, check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.model_ready(model.name, _version(model, path))
        expect_ok(reply, "model ready")
        if transport.name == "grpc":
            expect_true(reply.message.ready, reply, "ModelReady should say ready=true", "ready=false")

    check_once(check)
