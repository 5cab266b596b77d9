"""Model metadata and model readiness, on versioned and unversioned paths, REST and gRPC."""

from __future__ import annotations

import re

import pytest

from conformance.calls import Reply, Transport
from conformance.checks import expect_ok, expect_true, violation
from conformance.explore import CheckOnce
from conformance.models import ModelUnderTest
from conformance.probe import VERSIONED_RULE
from oip.datatypes import DATATYPES
from oip.errors import OipError
from oip.signature import Signature

PATHS = ("versioned", "unversioned")
#: rest.md Platforms: "<project>_<format>" (tensorrt_plan, onnx_onnxv1, pytorch_torchscript ...).
PLATFORM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*_[A-Za-z0-9][A-Za-z0-9._-]*$")


def _version(model: ModelUnderTest, path: str) -> str | None:
    """The version asked on ``path``: the probed one (conformance/probe.py) on the versioned path."""
    if path != "versioned":
        return None
    if model.version is None:
        pytest.skip(_no_versioned_path(model))
    return model.version


def _no_versioned_path(model: ModelUnderTest) -> str:
    return (f"{model.name}: no version to ask on /versions/<v> (none named, or none served: rule "
            f"{VERSIONED_RULE}); the rules use the unversioned path")


def _refused_unversioned(reply: Reply, path: str) -> bool:
    """REST may answer a request without a version with an error (rest.md; spec audit C5, F5)."""
    return reply.transport == "rest" and path == "unversioned" and reply.status.isdigit() \
        and 400 <= int(reply.status) < 500 and isinstance(reply.body, dict) \
        and isinstance(reply.body.get("error"), str)


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
    version = _version(model, path)

    def check() -> None:
        reply = transport.model_metadata(model.name, version)
        if _refused_unversioned(reply, path):
            return
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
        pytest.skip(_no_versioned_path(model) + ": no served version to list")
    check_once(check)


@pytest.mark.transports("grpc")
def test_model_metadata_properties_are_text(transport: Transport, model: ModelUnderTest,
                                           check_once: CheckOnce) -> None:
    """gRPC; REST `properties` (rest.yaml) is rest_model_metadata_properties_are_text."""

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
    version = _version(model, path)

    def check() -> None:
        reply = transport.model_ready(model.name, version)
        if _refused_unversioned(reply, path):
            return
        expect_ok(reply, "model ready")
        if transport.name == "grpc":
            expect_true(reply.message.ready, reply, "ModelReady should say ready=true", "ready=false")

    check_once(check)


@pytest.mark.transports("rest")
def test_rest_model_ready_body(transport: Transport, model: ModelUnderTest, check_once: CheckOnce) -> None:
    """rest.md's `{"name", "ready"}` body, if a JSON body is sent (the yaml has none: C2)."""

    def check() -> None:
        reply = transport.model_ready(model.name, model.version)
        expect_ok(reply, "model ready")
        if reply.body is None:
            return  # no body, or not JSON: the status is the answer
        body = reply.body if isinstance(reply.body, dict) else {}
        expect_true(body.get("name") == model.name and body.get("ready") is True, reply,
                    f'a JSON body should be {{"name": "{model.name}", "ready": true}}', "other ready body")

    check_once(check)


@pytest.mark.transports("rest")
def test_model_metadata_declares_tensors(transport: Transport, model: ModelUnderTest,
                                         check_once: CheckOnce) -> None:
    """rest.md marks neither `inputs` nor `outputs` optional (the yaml requires neither: C7)."""

    def check() -> None:
        reply = transport.model_metadata(model.name, model.version)
        expect_ok(reply, "model metadata")
        meta = _metadata(reply)
        missing = [key for key in ("inputs", "outputs") if not isinstance(meta.get(key), list)]
        expect_true(not missing, reply, f"model metadata should list {' and '.join(missing)}",
                    f"no {'/'.join(missing)} list")

    check_once(check)


@pytest.mark.transports("rest")
def test_rest_model_metadata_properties_are_text(transport: Transport, model: ModelUnderTest,
                                                check_once: CheckOnce) -> None:
    """rest.yaml `properties`: an object of strings, when given (neither md has it: C8)."""

    def check() -> None:
        reply = transport.model_metadata(model.name, model.version)
        expect_ok(reply, "model metadata")
        properties = _metadata(reply).get("properties")
        if properties is None:
            return
        expect_true(isinstance(properties, dict) and all(isinstance(v, str) for v in properties.values()),
                    reply, "`properties` should be an object of string values", "properties not text")

    check_once(check)


def test_model_metadata_platform_name(transport: Transport, model: ModelUnderTest,
                                      check_once: CheckOnce) -> None:
    """The "<project>_<format>" form only: the closed list of platforms is not enforced (C18)."""

    def check() -> None:
        reply = transport.model_metadata(model.name, model.version)
        expect_ok(reply, "model metadata")
        platform = _metadata(reply).get("platform")
        expect_true(isinstance(platform, str) and bool(PLATFORM_NAME.match(platform)), reply,
                    f"`platform` should read <project>_<format>, got {platform!r}",
                    "empty platform" if platform == "" else "platform not <project>_<format>")

    check_once(check)
