"""The lean gRPC client (oip.precise.GrpcConnection) against scripted HTTP/2 peers, one edge case each.

The peers run on the ``h2`` library; where h2 will not send something (a
frame on a stream it considers closed, padded HEADERS) the frames are
written with ``hyperframe`` and their header blocks with ``hpack``.
"""

from __future__ import annotations

import random
import socket
import string
import time
from collections.abc import Callable

import h2.errors
import h2.events
import hpack
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame
from wire_peers import GRPC_HEADERS, H2Peer, ThreadedPeer, grpc_message

from oip.names import LOOPBACK
from oip.precise import GrpcConnection

METHOD = "/wire.Test/Call"
Start = Callable[..., ThreadedPeer]


def frames_in(data: bytes) -> list[Frame]:
    """The frames of a byte string (hyperframe's parser)."""
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def client(peer: ThreadedPeer, timeout: float = 5.0) -> GrpcConnection:
    return GrpcConnection(LOOPBACK, peer.port, timeout=timeout, connect_timeout=5)


@pytest.mark.parametrize("when", ["answered early", "after a whole exchange"])
def test_rst_stream_no_error_after_the_trailers_keeps_the_answer(peer: Start, when: str) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        if when == "answered early":  # RFC 9113 8.1: answer before the request's end, then NO_ERROR
            stream = server.wait_for(h2.events.RequestReceived).stream_id
            server.conn.send_headers(stream, GRPC_HEADERS)
            server.conn.send_data(stream, grpc_message(b"early"))
            server.conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)
            server.conn.reset_stream(stream, h2.errors.ErrorCodes.NO_ERROR)
            sent = server.flush()
        else:  # a peer that resets a stream it has finished, in the same packet as the trailers
            stream, _ = server.request()
            server.conn.send_headers(stream, GRPC_HEADERS)
            server.conn.send_data(stream, grpc_message(b"early"))
            server.conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)
            sent = server.conn.data_to_send() + RstStreamFrame(stream, error_code=0).serialize()
            sock.sendall(sent)
        assert isinstance(frames_in(sent)[-1], RstStreamFrame)
        server.drain()

    connection = client(started := peer(handler))
    request = b"r" * (200_000 if when == "answered early" else 10)  # early: more than h2's 64 KiB window
    try:
        reply = connection.call(METHOD, request)
    finally:
        connection.close()
    started.stop()
    assert (reply.status, reply.body, reply.details) == (0, b"early", "")


def test_goaway_refused_stream_is_sent_again_on_a_new_connection(peer: Start) -> None:
    seen: list[tuple[int, int, bytes]] = []

    def handler(sock: socket.socket, index: int) -> None:
        server = H2Peer(sock)
        stream, body = server.request()
        seen.append((index, stream, body))
        if index == 0:
            server.answer(stream, b"one")
            stream, body = server.request()
            seen.append((index, stream, body))
            server.conn.close_connection(last_stream_id=stream - 2)  # GOAWAY: stream 3 not processed
            server.flush()
            server.hang_up()
            return
        server.answer(stream, b"two on a new connection")
        server.drain()

    connection = client(started := peer(handler, connections=2))
    try:
        first = connection.call(METHOD, b"first")
        second = connection.call(METHOD, b"second")
    finally:
        connection.close()
    started.stop()
    assert (first.status, first.body) == (0, b"one")
    assert (second.status, second.body) == (0, b"two on a new connection")
    assert seen == [(0, 1, b"first"), (0, 3, b"second"), (1, 1, b"second")]


def test_goaway_lets_the_streams_it_accepted_finish(peer: Start) -> None:
    seen: list[tuple[int, int]] = []

    def handler(sock: socket.socket, index: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        seen.append((index, stream))
        if index == 0:  # going away, but stream 1 is taken: it is still answered
            sock.sendall(GoAwayFrame(0, last_stream_id=stream, error_code=0).serialize())
            server.answer(stream, b"finished")
            server.hang_up()
            return
        server.answer(stream, b"next")
        server.drain()

    connection = client(started := peer(handler, connections=2))
    try:
        first = connection.call(METHOD, b"a")
        second = connection.call(METHOD, b"b")  # on a new connection: the first one is going away
    finally:
        connection.close()
    started.stop()
    assert (first.status, first.body) == (0, b"finished")
    assert (second.status, second.body) == (0, b"next")
    assert seen == [(0, 1), (1, 1)]


def test_an_idle_connection_closed_without_goaway_is_replaced(peer: Start) -> None:
    seen: list[tuple[int, int, bytes]] = []

    def handler(sock: socket.socket, index: int) -> None:
        server = H2Peer(sock)
        stream, body = server.request()
        seen.append((index, stream, body))
        server.answer(stream, body.upper())
        if index == 0:
            server.hang_up()  # an idle timeout with no GOAWAY: the client finds out on its next call
            return
        server.drain()

    connection = client(started := peer(handler, connections=2))
    try:
        first = connection.call(METHOD, b"one")
        time.sleep(0.2)  # the close reached the client's socket
        second = connection.call(METHOD, b"two")
    finally:
        connection.close()
    started.stop()
    assert [(first.status, first.body), (second.status, second.body)] == [(0, b"ONE"), (0, b"TWO")]
    assert seen == [(0, 1, b"one"), (1, 1, b"two")]


def test_a_header_block_split_into_continuation_frames(peer: Start) -> None:
    text = "".join(random.Random(7).choices(string.ascii_letters, k=40_000))  # > 16 KiB after Huffman
    sent: list[bytes] = []

    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        sent.append(server.answer(stream, b"", status=9, message=text))
        server.drain()

    connection = client(started := peer(handler))
    try:
        reply = connection.call(METHOD, b"x")
    finally:
        connection.close()
    started.stop()
    assert sum(isinstance(f, ContinuationFrame) for f in frames_in(sent[0])) >= 1
    assert (reply.status, reply.details) == (9, text)


def test_hpack_dynamic_table_size_updates(peer: Start) -> None:
    blocks: list[bytes] = []

    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        headers = GRPC_HEADERS + [("x-served-by", "replica-7")]
        for size in (None, 0, 4096, 256):
            stream, body = server.request()
            if size is not None:  # the next header block starts with a table size update
                server.conn.encoder.header_table_size = size
            sent = server.answer(stream, body.upper(), headers=headers)
            blocks.append(next(f.data for f in frames_in(sent) if isinstance(f, HeadersFrame)))
        server.drain()

    connection = client(started := peer(handler))
    try:
        replies = [connection.call(METHOD, b"call %d" % n) for n in range(4)]
    finally:
        connection.close()
    started.stop()
    assert [(r.status, r.body) for r in replies] == [(0, b"CALL %d" % n) for n in range(4)]
    assert [block[0] & 0xE0 == 0x20 for block in blocks] == [False, True, True, True]


def test_a_header_block_of_a_given_up_stream_still_feeds_the_dynamic_table(peer: Start) -> None:
    headers = GRPC_HEADERS + [("x-session", "abc123-" * 8)]
    sizes: list[int] = []
    resets: list[int] = []

    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        resets.append(server.wait_for(h2.events.StreamReset, stream).error_code)  # the client gave up
        # answer it all the same (h2 will not send on a reset stream: hyperframe, with h2's own encoder)
        first = server.conn.encoder.encode(headers)
        trailers = server.conn.encoder.encode([("grpc-status", "0")])
        sock.sendall(HeadersFrame(stream, first, flags=["END_HEADERS"]).serialize()
                     + DataFrame(stream, grpc_message(b"too late")).serialize()
                     + HeadersFrame(stream, trailers, flags=["END_HEADERS", "END_STREAM"]).serialize())
        stream, body = server.request()
        sent = server.answer(stream, body, headers=headers)  # now indexed in the dynamic table
        sizes.extend([len(first), len(next(f.data for f in frames_in(sent) if isinstance(f, HeadersFrame)))])
        server.drain()

    connection = client(started := peer(handler), timeout=0.5)
    try:
        given_up = connection.call(METHOD, b"slow")
        reply = connection.call(METHOD, b"fast")
    finally:
        connection.close()
    started.stop()
    assert given_up.status == 4 and "within 0.5 s" in given_up.details  # DEADLINE_EXCEEDED
    assert resets == [h2.errors.ErrorCodes.CANCEL]
    assert (reply.status, reply.body) == (0, b"fast")
    assert sizes[1] < sizes[0] // 4  # the answer's block refers to the table entries of the dropped one


def test_a_response_larger_than_the_flow_control_window(peer: Start) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    updates: list[int] = []

    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        server.conn.send_headers(stream, GRPC_HEADERS)
        data = grpc_message(payload)
        while data:  # as much as h2's flow control allows, then wait for WINDOW_UPDATEs
            allowed = min(server.conn.local_flow_control_window(stream), server.conn.max_outbound_frame_size)
            if not allowed:
                server.wait_for(h2.events.WindowUpdated)
                continue
            server.conn.send_data(stream, data[:allowed])
            data = data[allowed:]
            server.flush()
        server.conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)
        server.flush()
        updates.extend(e.delta for e in server.seen
                       if isinstance(e, h2.events.WindowUpdated) and not e.stream_id)
        server.drain()

    connection = client(started := peer(handler))
    try:
        reply = connection.call(METHOD, b"x")
    finally:
        connection.close()
    started.stop()
    assert reply.status == 0 and reply.body == payload
    assert sum(updates) + 65_535 >= len(payload)  # the client's WINDOW_UPDATEs made room for it all


def test_padding_on_data_and_headers_and_priority_on_headers(peer: Start) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, body = server.request()
        encoder = hpack.Encoder()  # the only encoder on this connection: h2's sends no header block here
        head = HeadersFrame(stream, encoder.encode(GRPC_HEADERS), flags=["END_HEADERS", "PADDED", "PRIORITY"],
                            pad_length=13, depends_on=0, stream_weight=200, exclusive=True)
        message = grpc_message(body[::-1])
        data = [DataFrame(stream, message[:7], flags=["PADDED"], pad_length=255),
                DataFrame(stream, message[7:], flags=["PADDED"], pad_length=0)]
        trailers = HeadersFrame(stream, encoder.encode([("grpc-status", "0")]),
                                flags=["END_HEADERS", "END_STREAM", "PADDED"], pad_length=40)
        sock.sendall(b"".join(f.serialize() for f in (head, *data, trailers)))
        server.drain()

    connection = client(started := peer(handler))
    try:
        reply = connection.call(METHOD, b"padded answer")
    finally:
        connection.close()
    started.stop()
    assert (reply.status, reply.body) == (0, b"rewsna deddap")


def test_a_ping_is_acknowledged(peer: Start) -> None:
    acks: list[bytes] = []

    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        server.conn.ping(b"pingpong")
        server.flush()
        server.answer(stream, b"pong?")
        acks.append(server.wait_for(h2.events.PingAckReceived).ping_data)
        server.drain()

    connection = client(started := peer(handler))
    try:
        reply = connection.call(METHOD, b"x")  # the PING comes before the answer: ACKed within the call
    finally:
        connection.close()
    started.stop()  # the peer fails (EOFError) if the connection closed before the ACK
    assert (reply.status, reply.body, acks) == (0, b"pong?", [b"pingpong"])


@pytest.mark.parametrize(("code", "status"), [
    (h2.errors.ErrorCodes.REFUSED_STREAM, 14),  # UNAVAILABLE
    (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, 8),  # RESOURCE_EXHAUSTED
    (h2.errors.ErrorCodes.CANCEL, 1),  # CANCELLED
    (h2.errors.ErrorCodes.INADEQUATE_SECURITY, 7),  # PERMISSION_DENIED
    (h2.errors.ErrorCodes.NO_ERROR, 13),  # INTERNAL: no trailers came
    (h2.errors.ErrorCodes.FLOW_CONTROL_ERROR, 13),  # INTERNAL
])
def test_rst_stream_codes_map_to_grpc_statuses(peer: Start, code: h2.errors.ErrorCodes, status: int) -> None:
    def handler(sock: socket.socket, _: int) -> None:
        server = H2Peer(sock)
        stream, _ = server.request()
        server.conn.reset_stream(stream, code)
        server.flush()
        stream, body = server.request()  # the connection stays usable
        server.answer(stream, body)
        server.drain()

    connection = client(started := peer(handler))
    try:
        reset = connection.call(METHOD, b"x")
        after = connection.call(METHOD, b"again")
    finally:
        connection.close()
    started.stop()
    assert (reset.status, reset.body) == (status, b"")
    assert code.name in reset.details
    assert (after.status, after.body) == (0, b"again")
