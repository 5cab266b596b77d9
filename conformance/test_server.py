"""Server-level rules: health and server metadata, over REST and gRPC."""

from __future__ import annotations

from conformance.calls import Transport
from conformance.checks import expect_ok, expect_true
from conformance.explore import CheckOnce


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
