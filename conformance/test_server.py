"""Server-level rules: health (status and REST bodies), server metadata, ready vs models, REST and gRPC."""

from __future__ import annotations

import pytest

from conformance.calls import Reply, Transport
from conformance.checks import expect_ok, expect_true
from conformance.explore import CheckOnce
from conformance.models import ModelUnderTest

#: The keys a true boolean may stand under in a REST health body (rest.md's ready body says `live`: C1).
HEALTH_KEYS = {"live": ("live",), "ready": ("ready", "live")}


def test_health_live(transport: Transport, check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.live()
        expect_ok(reply, "GET /v2/health/live")
        if transport.name == "grpc":
            expect_true(reply.message.live, reply, "ServerLive should say live=true", "live=false")

    check_once(check)


def test_health_ready(transport: Transport, check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.ready()
        expect_ok(reply, "GET /v2/health/ready")
        if transport.name == "grpc":
            expect_true(reply.message.ready, reply, "ServerReady should say ready=true", "ready=false")

    check_once(check)


def test_server_metadata(transport: Transport, check_once: CheckOnce) -> None:
    def check() -> None:
        reply = transport.server_metadata()
        expect_ok(reply, "server metadata")
        if transport.name == "grpc":
            m = reply.message
            name, version, extensions = m.name, m.version, list(m.extensions)
        else:
            body = reply.body if isinstance(reply.body, dict) else {}
            name, version, extensions = body.get("name"), body.get("version"), body.get("extensions")
        expect_true(isinstance(name, str) and bool(name), reply, "`name` must be a non-empty string",
                    "no name")
        expect_true(isinstance(version, str) and bool(version), reply, "`version` must be a non-empty string",
                    "no version")
        expect_true(isinstance(extensions, list) and all(isinstance(e, str) for e in extensions), reply,
                    "`extensions` must be a list of strings", "no extensions list")

    check_once(check)


def _said_ready(reply: Reply) -> bool:
    return reply.ok and (reply.transport == "rest" or bool(reply.message.ready))


def test_server_ready_implies_models_ready(transport: Transport, model: ModelUnderTest,
                                           check_once: CheckOnce) -> None:
    """rest.md: server ready "indicates if all the models are ready" (SHOULD: gRPC says less, C3)."""

    def check() -> None:
        server = transport.ready()
        if not _said_ready(server):
            return  # the rule only speaks while the server says ready
        reply = transport.model_ready(model.name, model.version)
        expect_true(_said_ready(reply), reply, f"the server says ready, but {model.name} is not ready",
                    f"model not ready: {reply.signature}")

    check_once(check)


@pytest.mark.transports("rest")
@pytest.mark.parametrize("endpoint", tuple(HEALTH_KEYS))
def test_rest_server_health_body(transport: Transport, endpoint: str, check_once: CheckOnce) -> None:
    """A JSON body, if the server sends one, holds a true boolean; no body (what the yaml says) passes."""

    def check() -> None:
        reply = transport.live() if endpoint == "live" else transport.ready()
        expect_ok(reply, f"GET /v2/health/{endpoint}")
        if reply.body is None:
            return  # no body, or not JSON: the status is the answer
        keys = HEALTH_KEYS[endpoint]
        expect_true(isinstance(reply.body, dict) and any(reply.body.get(k) is True for k in keys), reply,
                    f"a JSON body should be an object with {' or '.join(f'`{k}`' for k in keys)}: true",
                    f"{endpoint} body without {'/'.join(keys)}=true")

    check_once(check)
