"""The lean gRPC client (oip.precise.GrpcConnection) against a real grpcio server: unary calls."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from oip.names import LOOPBACK
from oip.precise import GrpcConnection

METHOD = "/wire.Test/Call"
BIG = 300_000  # well past HTTP/2's initial 64 KiB flow-control window


def _call(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request.startswith(b"fail:"):
        context.abort(grpc.StatusCode.NOT_FOUND, request[5:].decode())
    if request == b"big":
        return bytes(range(256)) * (BIG // 256)
    return b"echo:" + request


@pytest.fixture(scope="module")
def grpcio_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    methods = {"Call": grpc.unary_unary_rpc_method_handler(_call)}
    handler = grpc.method_handlers_generic_handler("wire.Test", methods)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{LOOPBACK}:0")
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture
def connection(grpcio_port: int) -> Iterator[GrpcConnection]:
    connection = GrpcConnection(LOOPBACK, grpcio_port, timeout=10, connect_timeout=5)
    yield connection
    connection.close()


def test_a_unary_call_gets_its_answer(connection: GrpcConnection) -> None:
    reply = connection.call(METHOD, b"hello")
    assert (reply.status, reply.body, reply.details) == (0, b"echo:hello", "")
    assert reply.stamped and 0 < reply.elapsed < 5


def test_an_error_status_comes_back_with_its_message(connection: GrpcConnection) -> None:
    reply = connection.call(METHOD, "fail:model 'x/ü' not found: 100%".encode())
    assert (reply.status, reply.body) == (grpc.StatusCode.NOT_FOUND.value[0], b"")
    assert reply.details == "model 'x/ü' not found: 100%"  # grpc-message is percent-encoded on the wire


def test_a_response_larger_than_the_flow_control_window(connection: GrpcConnection) -> None:
    for _ in range(3):  # the windows keep up over several large answers
        reply = connection.call(METHOD, b"big")
        assert reply.status == 0 and reply.body == bytes(range(256)) * (BIG // 256)


def test_many_sequential_calls_share_one_connection(connection: GrpcConnection) -> None:
    connection.call(METHOD, b"first")
    opened = connection._socket
    for index in range(300):  # grpcio compresses its headers with the HPACK dynamic table
        reply = connection.call(METHOD, b"n%d" % index)
        assert (reply.status, reply.body) == (0, b"echo:n%d" % index)
        assert connection.call(METHOD, b"fail:no %d" % index).details == f"no {index}"
    assert connection._socket is opened
