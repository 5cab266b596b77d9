"""The precise clients (oip/precise.py): right answers, honest timing, HTTP/2 flow control, broken peers.

Servers: the delay stand-in (a known delay) and small scripted socket servers
on loopback that behave in one specific way each. The interop with the real
MLServer is in test_locust_runs.py (the reference deployment is started there).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fakes.delay_server import DelayServer
from loadtests._workload import GRPC_METHOD, ModelLoad, build_model_load, check_grpc, check_rest
from oip import h2
from oip.names import LOOPBACK, grpc_method
from oip.precise import GrpcConnection, HttpConnection, WireError, http_request
from reference.server import free_ports

DELAY_MS = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[DelayServer]:
    with DelayServer(delay_ms=DELAY_MS, max_seconds=300) as s:
        yield s


@pytest.fixture(scope="module")
def loads() -> dict[int, ModelLoad]:
    return {rows: build_model_load("mnist-svm", batch_size=rows, versioned=True) for rows in (1, 256)}


def test_grpc_calls_get_right_answers_and_kernel_timed_latency(server: DelayServer,
                                                               loads: dict[int, ModelLoad]) -> None:
    connection = GrpcConnection(LOOPBACK, server.grpc_port)
    try:
        for rows, load in loads.items():  # 256 rows: a request larger than HTTP/2's default 64 KiB window
            item = load.items[1]
            assert rows == 1 or len(item.grpc_body) > h2.DEFAULT_WINDOW
            for _ in range(3):
                started = time.monotonic()
                reply = connection.call(GRPC_METHOD, item.grpc_body)
                outside = time.monotonic() - started
                assert reply.status == h2.GRPC_OK, reply.details
                assert check_grpc(load, item, reply.body) is None
                assert reply.stamped  # Linux stamps what TCP sockets receive
                assert DELAY_MS / 1000 <= reply.elapsed <= outside
    finally:
        connection.close()


def test_grpc_errors_come_back_as_status_codes(server: DelayServer, loads: dict[int, ModelLoad]) -> None:
    connection = GrpcConnection(LOOPBACK, server.grpc_port)
    try:
        request = loads[1].items[0].grpc_body.replace(b"mnist-svm", b"mnist-xxx")
        reply = connection.call(GRPC_METHOD, request)
        assert (reply.status, reply.body) == (h2.GRPC_NOT_FOUND, b"")
        assert "mnist-xxx" in reply.details
        assert connection.call(grpc_method("Nope"), b"").status == h2.GRPC_UNIMPLEMENTED
        ok = connection.call(GRPC_METHOD, loads[1].items[0].grpc_body)  # the connection is still good
        assert ok.status == h2.GRPC_OK
    finally:
        connection.close()


def test_http_exchanges_get_right_answers_and_kernel_timed_latency(server: DelayServer,
                                                                   loads: dict[int, ModelLoad]) -> None:
    connection = HttpConnection(LOOPBACK, server.rest_port)
    try:
        for load in loads.values():
            item = load.items[2]
            for _ in range(3):
                started = time.monotonic()
                reply = connection.exchange(item.rest_request)
                outside = time.monotonic() - started
                assert check_rest(load, item, reply.status, reply.body) is None
                assert reply.stamped and DELAY_MS / 1000 <= reply.elapsed <= outside
    finally:
        connection.close()


def test_unreachable_targets_raise_a_wire_error() -> None:
    port = free_ports(1)[0]
    with pytest.raises(WireError, match=f"{LOOPBACK}:{port}"):
        HttpConnection(LOOPBACK, port, connect_timeout=2).exchange(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(WireError, match=f"{LOOPBACK}:{port}"):
        GrpcConnection(LOOPBACK, port, connect_timeout=2).call(GRPC_METHOD, b"")


# ------------------------------------------------------------ scripted peers


def scripted(handler: Callable[[socket.socket, int], None], connections: int) -> tuple[int, threading.Thread]:
    """A loopback listener that hands each of ``connections`` accepted sockets to ``handler``."""
    listener = socket.create_server((LOOPBACK, 0))
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            for index in range(connections):
                listener.settimeout(10)
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    handler(conn, index)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


def accept_http2(conn: socket.socket) -> tuple[h2.FrameReader, list[h2.Frame]]:
    """Read the client's preface, send empty (default) SETTINGS; returns the reader and frames so far."""
    data = b""
    while len(data) < len(h2.PREFACE):
        data += conn.recv(65536)
    assert data.startswith(h2.PREFACE)
    conn.sendall(h2.settings({}))
    reader = h2.FrameReader()
    return reader, list(reader.feed(data[len(h2.PREFACE):]))


def read_http_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                 .split(b":")[1])
    while len(body) < length:
        body += conn.recv(65536)
    return body


def test_http_chunked_answers_close_and_stale_keep_alive() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:  # chunked, then Connection: close
            assert read_http_request(conn) == b"one"
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            assert read_http_request(conn) == b"two"
            conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")
        elif index == 1:  # answers once, then drops the idle keep-alive connection
            assert read_http_request(conn) == b"three"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif index == 2:  # the retry of "four" on a new connection
            assert read_http_request(conn) == b"four"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine")
        else:  # a fresh connection closed without an answer
            read_http_request(conn)

    port, thread = scripted(handler, 4)
    connection = HttpConnection(LOOPBACK, port)
    request = lambda body: http_request("POST", f"{LOOPBACK}:{port}", "/x", body)  # noqa: E731
    first = connection.exchange(request(b"one"))
    assert (first.status, first.body) == (200, b"abcde")
    second = connection.exchange(request(b"two"))
    assert (second.status, second.body) == (503, b"busy")
    assert connection.exchange(request(b"three")).body == b"ok"
    time.sleep(0.2)  # the server has closed that connection by now
    assert connection.exchange(request(b"four")).body == b"fine"  # retried once, transparently
    connection.close()
    with pytest.raises(WireError, match="closed the connection without answering"):
        connection.exchange(request(b"five"))
    thread.join(10)


def test_grpc_client_honours_flow_control_and_answers_settings_and_pings() -> None:
    """A peer with HTTP/2's default 64 KiB windows: the client must wait for WINDOW_UPDATEs."""
    message = bytes(range(256)) * 600  # 153,600 bytes: more than two default windows
    seen: dict[str, object] = {}

    def handler(conn: socket.socket, _: int) -> None:
        reader, frames = accept_http2(conn)
        conn.sendall(h2.frame(h2.PING, 0, 0, b"pingpong"))
        body, window, acks, pongs, ended = b"", h2.DEFAULT_WINDOW, 0, 0, False
        while not ended:
            for item in frames:
                if item.kind == h2.SETTINGS and item.flags & h2.ACK:
                    acks += 1
                elif item.kind == h2.PING and item.flags & h2.ACK:
                    pongs += 1
                elif item.kind == h2.DATA:
                    window -= len(item.payload)
                    assert window >= 0, "the client sent past the flow-control window"
                    body += item.payload
                    ended = bool(item.flags & h2.END_STREAM)
                    if window == 0 and not ended:  # grant another 64 KiB, stream and connection
                        window = h2.DEFAULT_WINDOW
                        conn.sendall(h2.window_update(0, window) + h2.window_update(item.stream_id, window))
            if not ended:
                frames = list(reader.feed(conn.recv(65536)))
        seen.update(body=body, acks=acks, pongs=pongs)
        answer = h2.message(b"echo:" + h2.unwrap_message(body)[:10])
        conn.sendall(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.RESPONSE_HEADERS)
                     + h2.data_frames(1, answer, h2.DEFAULT_MAX_FRAME, end_stream=False)
                     + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.trailers(0)))
        time.sleep(0.2)

    port, thread = scripted(handler, 1)
    connection = GrpcConnection(LOOPBACK, port)
    reply = connection.call("/svc/Method", message)
    thread.join(10)
    connection.close()
    assert (reply.status, reply.body) == (h2.GRPC_OK, b"echo:" + message[:10])
    assert seen["body"] == h2.message(message)
    assert seen["acks"] == 1 and seen["pongs"] == 1


def test_grpc_client_stops_sending_when_answered_early() -> None:
    """A peer that refuses a large request after the first window: status back, stream cancelled."""
    seen: dict[str, object] = {}

    def handler(conn: socket.socket, _: int) -> None:
        reader, frames = accept_http2(conn)
        received, answered = 0, False
        while True:
            for item in frames:
                if item.kind == h2.DATA:
                    received += len(item.payload)
                elif item.kind == h2.RST_STREAM:
                    seen["reset"] = int.from_bytes(item.payload, "big")
                    seen["received"] = received
                    return
            if received >= h2.DEFAULT_WINDOW and not answered:
                answered = True
                conn.sendall(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                                      h2.RESPONSE_HEADERS + h2.trailers(8, "too large")))
            frames = list(reader.feed(conn.recv(65536)))

    port, thread = scripted(handler, 1)
    connection = GrpcConnection(LOOPBACK, port)
    reply = connection.call("/svc/Method", b"z" * 200_000)
    thread.join(10)
    connection.close()
    assert (reply.status, reply.details) == (8, "too large")
    assert seen == {"reset": h2.CANCEL, "received": h2.DEFAULT_WINDOW}
