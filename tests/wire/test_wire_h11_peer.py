"""The lean HTTP/1.1 client (oip.precise.HttpConnection) against scripted ``h11`` peers, one case each."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import h11
import pytest
from wire_peers import H11Peer, ThreadedPeer

from oip.names import LOOPBACK
from oip.precise import HttpConnection, http_request

Start = Callable[..., ThreadedPeer]


def client(peer: ThreadedPeer) -> HttpConnection:
    return HttpConnection(LOOPBACK, peer.port, timeout=5, connect_timeout=5)


def request(peer: ThreadedPeer, body: bytes, method: str = "POST") -> bytes:
    return http_request(method, f"{LOOPBACK}:{peer.port}", "/v2/x", body)


@pytest.mark.parametrize(("method", "status"), [("POST", 204), ("POST", 304), ("HEAD", 200)])
def test_answers_without_a_body_do_not_wait_for_the_close(peer: Start, method: str, status: int) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H11Peer(sock)
        server.request()
        headers = [("content-length", "1234")] if method == "HEAD" else []  # what a GET would carry
        server.send(h11.Response(status_code=status, headers=headers), h11.EndOfMessage())
        _, body = server.request()  # the connection stays open for the next request
        server.send(h11.Response(status_code=200, headers=[("content-length", str(len(body)))]),
                    h11.Data(data=body), h11.EndOfMessage())
        assert not sock.recv(1)  # the client closes

    connection = client(started := peer(handler))
    try:
        started_at = time.monotonic()
        empty = connection.exchange(request(started, b"", method))
        waited = time.monotonic() - started_at
        after = connection.exchange(request(started, b"next"))
    finally:
        connection.close()
    started.stop()
    assert (empty.status, empty.body) == (status, b"") and waited < 2  # not the 5 s timeout
    assert (after.status, after.body) == (200, b"next")


def test_interim_answers_are_skipped(peer: Start) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H11Peer(sock)
        _, body = server.request()
        server.send(h11.InformationalResponse(status_code=100, headers=[]),
                    h11.InformationalResponse(status_code=103, headers=[("link", "</m>; rel=preload")]))
        time.sleep(0.05)  # the final answer in a packet of its own
        server.send(h11.Response(status_code=200, headers=[("content-length", str(len(body) + 1))]),
                    h11.Data(data=body + b"!"), h11.EndOfMessage())
        assert not sock.recv(1)

    connection = client(started := peer(handler))
    try:
        reply = connection.exchange(request(started, b"hello"))
    finally:
        connection.close()
    started.stop()
    assert (reply.status, reply.body) == (200, b"hello!")


def test_a_chunked_answer_with_trailers(peer: Start) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H11Peer(sock)
        for _ in range(2):
            _, body = server.request()
            server.send(h11.Response(status_code=200, headers=[]),  # no length: h11 chunks it
                        *(h11.Data(data=body[i:i + 3]) for i in range(0, len(body), 3)),
                        h11.EndOfMessage(headers=[("x-checksum", "abc")]))
        assert not sock.recv(1)

    connection = client(started := peer(handler))
    try:
        replies = [connection.exchange(request(started, b"a chunked answer %d" % n)) for n in range(2)]
    finally:
        connection.close()
    started.stop()
    assert [(r.status, r.body) for r in replies] == [(200, b"a chunked answer %d" % n) for n in range(2)]


def test_a_close_delimited_answer(peer: Start) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H11Peer(sock)
        server.request()
        server.send(h11.Response(status_code=200, headers=[]),  # HTTP/1.0 client, no length: until the close
                    h11.Data(data=b"x" * 5000), h11.Data(data=b"end"), h11.EndOfMessage())
        assert server.conn.our_state is h11.MUST_CLOSE

    connection = client(started := peer(handler))
    try:
        reply = connection.exchange(b"GET /v2/x HTTP/1.0\r\n\r\n")
        closed = connection._socket is None
    finally:
        connection.close()
    started.stop()
    assert (reply.status, reply.body, closed) == (200, b"x" * 5000 + b"end", True)


def test_a_keep_alive_connection_closed_by_the_server_is_reopened_once(peer: Start) -> None:
    seen: list[tuple[int, bytes]] = []

    def handler(sock: socket.socket, index: int) -> None:
        server = H11Peer(sock)
        _, body = server.request()
        seen.append((index, body))
        server.send(h11.Response(status_code=200, headers=[("content-length", "2")]),
                    h11.Data(data=b"ok"), h11.EndOfMessage())
        if index == 1:
            assert not sock.recv(1)
        # index 0: closes the idle keep-alive connection without saying so

    connection = client(started := peer(handler, connections=2))
    try:
        first = connection.exchange(request(started, b"one"))
        time.sleep(0.2)  # the server has closed that connection by now
        second = connection.exchange(request(started, b"two"))
    finally:
        connection.close()
    started.stop()
    assert (first.body, second.body) == (b"ok", b"ok")
    assert seen == [(0, b"one"), (1, b"two")]
