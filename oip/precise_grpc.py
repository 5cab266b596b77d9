"""The lean unary gRPC client of the load tests: HTTP/2 (:mod:`oip.h2`) timed to kernel receive stamps.

One call at a time on one connection, the request's header block encoded
once per method. What the connection does for the peer's sake, as gRPC
clients do (RFC 9113, gRPC's PROTOCOL-HTTP2.md):

* SETTINGS acknowledged, PING answered, flow control both ways (the receive
  windows are opened wide at the start and refilled when half used);
* every header block (HEADERS + CONTINUATION) is HPACK-decoded in order,
  also those of streams the client gave up, so the dynamic table stays in step;
* a stream whose trailers arrived is complete: a RST_STREAM after them
  (RFC 9113 section 8.1, a server that answered early) changes nothing;
  a RST_STREAM before them ends the call with :data:`oip.h2.RESET_STATUS`'s status;
* GOAWAY: streams up to its last stream id finish; a refused one (above it)
  was not processed and is sent once more on a new connection; so is a call
  on a reused connection that the server had closed while idle (end of
  stream before any byte of an answer);
* no answer within ``timeout``: the stream is cancelled (DEADLINE_EXCEEDED)
  and the connection kept.

Not a general gRPC client: no TLS, no compression, no streaming.
"""

from __future__ import annotations

import dataclasses
import struct
import time

import hpack

from . import h2
from .precise_socket import Reply, TimedSocket, WireError


class _Refused(Exception):
    """The server did not process the call's stream: GOAWAY refused it, or a reused idle connection was
    found closed before any answer (a connection a gRPC client would have seen close and replaced)."""

    def __init__(self, sent: float) -> None:
        super().__init__()
        self.sent = sent


class _Stream:
    """The state of the one call in flight."""

    __slots__ = ("stream_id", "headers", "body", "ended", "reset_code", "peer_reset", "refused",
                 "window_delta")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.headers: list[dict[str, str]] = []
        self.body = bytearray()
        self.ended = False  # trailers, END_STREAM, RST_STREAM or a refusal
        self.reset_code: int | None = None  # RST_STREAM before the end
        self.peer_reset = False  # the peer closed the stream with RST_STREAM (before or after its end)
        self.refused = False
        self.window_delta = 0

    def reply(self, sent: float, elapsed: float, stamped: bool) -> Reply:
        if self.reset_code is not None:
            return Reply(h2.reset_status(self.reset_code), b"",
                         f"stream reset by the server (HTTP/2 {h2.error_name(self.reset_code)})",
                         sent, elapsed, stamped)
        fields: dict[str, str] = {}
        for block in self.headers:
            fields.update(block)
        http_status = fields.get(":status", "")
        if "grpc-status" not in fields:
            code = h2.GRPC_UNAVAILABLE if http_status in ("502", "503", "504") else h2.GRPC_UNKNOWN
            return Reply(code, b"", f"no grpc-status in the answer (HTTP {http_status or '?'})",
                         sent, elapsed, stamped)
        try:
            code = int(fields["grpc-status"])
        except ValueError:
            return Reply(h2.GRPC_UNKNOWN, b"", f"grpc-status {fields['grpc-status']!r} is not a number",
                         sent, elapsed, stamped)
        details = h2.grpc_message_text(fields.get("grpc-message", ""))
        if code != h2.GRPC_OK:
            return Reply(code, b"", details, sent, elapsed, stamped)
        try:
            payload = h2.unwrap_message(bytes(self.body))
        except h2.ProtocolError as exc:
            return Reply(h2.GRPC_INTERNAL, b"", str(exc), sent, elapsed, stamped)
        return Reply(code, payload, details, sent, elapsed, stamped)


class GrpcConnection:
    """Unary gRPC calls over one HTTP/2 connection, one call at a time; reconnects after errors."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.authority = f"{host}:{port}"
        self._socket: TimedSocket | None = None
        self._blocks: dict[str, bytes] = {}
        self._goaway = False

    def headers_for(self, path: str) -> bytes:
        block = self._blocks.get(path)
        if block is None:
            block = self._blocks[path] = h2.request_headers(path, self.authority, self.timeout)
        return block

    def call(self, path: str, message: bytes) -> Reply:
        """One unary call: ``message`` is the serialised request; the reply's ``status`` is the gRPC code."""
        try:
            return self._attempt(path, message)
        except _Refused as refused:
            first_sent = refused.sent
        try:  # not processed by the server: once more, on a new connection (timed from the first send)
            reply = self._attempt(path, message)
        except _Refused:
            details = f"{self.authority} refused the call twice (GOAWAY or closed)"
            return Reply(h2.GRPC_UNAVAILABLE, b"", details, first_sent, time.monotonic() - first_sent, False)
        return dataclasses.replace(reply, sent=first_sent, elapsed=reply.elapsed + reply.sent - first_sent)

    def _attempt(self, path: str, message: bytes) -> Reply:
        sock = self._socket if not self._goaway else None
        if sock is None:
            self.close()
            sock = self._connect()
        try:
            return self._call(sock, path, message)
        except _Refused:
            self.close()
            raise
        except (OSError, h2.ProtocolError, WireError) as exc:
            self.close()
            if isinstance(exc, WireError):
                raise
            raise WireError(f"gRPC {self.authority}: {exc}") from exc

    def _connect(self) -> TimedSocket:
        sock = TimedSocket(self.host, self.port, self.timeout, self.connect_timeout)
        self._reader = h2.FrameReader()
        self._decoder = _hpack_decoder()
        self._block = bytearray()  # the header block being received (HEADERS + CONTINUATION)
        self._block_stream = 0  # its stream (0: none in progress)
        self._block_ends_stream = False
        self._next_stream = 1
        self._peer = h2.PeerSettings()
        self._send_window = h2.DEFAULT_WINDOW  # connection level
        self._window = h2.ReceiveWindow()
        self._goaway = False
        try:
            sock.sock.sendall(h2.PREFACE + h2.settings({
                h2.SETTINGS_ENABLE_PUSH: 0, h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW,
            }) + h2.ReceiveWindow.opening())
        except OSError as exc:
            sock.close()
            raise WireError(f"cannot start HTTP/2 with {self.authority}: {exc}") from exc
        self._socket = sock
        return sock

    def _call(self, sock: TimedSocket, path: str, message: bytes) -> Reply:
        stream = self._next_stream
        self._next_stream += 2
        if self._next_stream > h2.MAX_STREAM_ID:  # stream ids used up: the next call opens a new connection
            self._goaway = True
        stream_window = self._peer.initial_window
        pending = h2.message(message)
        out = h2.frame(h2.HEADERS, h2.END_HEADERS, stream, self.headers_for(path))
        sent = sent_ns = None
        state = _Stream(stream)
        request_sent = heard = False
        while True:
            if not request_sent:
                allowed = min(len(pending), self._send_window, stream_window)
                if allowed:
                    chunk, pending = pending[:allowed], pending[allowed:]
                    request_sent = not pending
                    out += h2.data_frames(stream, chunk, self._peer.max_frame, end_stream=request_sent)
                    self._send_window -= len(chunk)
                    stream_window -= len(chunk)
            if out:
                if sent is None:
                    try:
                        sent, sent_ns = sock.send(out)
                    except ConnectionError:
                        if stream == 1:
                            raise
                        raise _Refused(time.monotonic()) from None  # an idle connection the server closed
                else:
                    sock.sock.sendall(out)
                out = b""
            if state.ended:  # also when the server answers before taking the whole request
                break
            try:
                data = sock.recv()
            except TimeoutError:
                return self._give_up(sock, state, sent)  # type: ignore[arg-type]
            except ConnectionError:
                data = b""
            if not data:
                if stream > 1 and not heard:  # closed while idle (no GOAWAY): it never saw the request
                    raise _Refused(sent)  # type: ignore[arg-type]
                raise WireError(f"{self.authority} closed the connection during a call")
            heard = True
            for item in self._reader.feed(data):
                out += self._handle(item, state)
                if item.kind == h2.WINDOW_UPDATE and item.stream_id == stream:
                    stream_window += int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            stream_window += state.window_delta
            state.window_delta = 0
        assert sent is not None and sent_ns is not None
        elapsed, stamped = sock.elapsed_since(sent, sent_ns)
        if state.refused:
            raise _Refused(sent)
        if not request_sent and not state.peer_reset:  # answered early: stop sending, and say so
            out += h2.frame(h2.RST_STREAM, 0, stream, struct.pack(">I", h2.CANCEL))
        if out:
            sock.sock.sendall(out)
        return state.reply(sent, elapsed, stamped)

    def _give_up(self, sock: TimedSocket, state: _Stream, sent: float) -> Reply:
        """No answer within the timeout: cancel the stream, keep the connection (its frames may come)."""
        sock.sock.sendall(h2.frame(h2.RST_STREAM, 0, state.stream_id, struct.pack(">I", h2.CANCEL)))
        details = f"no answer from {self.authority} within {self.timeout} s"
        return Reply(h2.GRPC_DEADLINE_EXCEEDED, b"", details, sent, time.monotonic() - sent, False)

    def _handle(self, item: h2.Frame, state: _Stream) -> bytes:
        """Process one frame; returns frames to send in answer."""
        kind = item.kind
        if self._block_stream and kind != h2.CONTINUATION:
            raise h2.ProtocolError("a header block was interrupted by another frame")
        if kind == h2.DATA:
            out = self._window.consumed(len(item.payload))  # every stream's DATA counts for the connection
            if item.stream_id == state.stream_id and not state.ended:
                state.body += item.body()
                state.ended = bool(item.flags & h2.END_STREAM)
            return out
        if kind == h2.HEADERS or kind == h2.CONTINUATION:
            self._header_block(item, state)
            return b""
        if kind == h2.SETTINGS:
            if item.flags & h2.ACK:
                return b""
            state.window_delta += self._peer.apply(item.payload)
            return h2.frame(h2.SETTINGS, h2.ACK, 0)
        if kind == h2.PING:
            return b"" if item.flags & h2.ACK else h2.frame(h2.PING, h2.ACK, 0, item.payload)
        if kind == h2.WINDOW_UPDATE:
            if item.stream_id == 0:
                self._send_window += int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            return b""
        if kind == h2.RST_STREAM:
            if item.stream_id == state.stream_id:
                state.peer_reset = True
                if not state.ended:  # after the trailers it only says "stop sending" (RFC 9113 8.1)
                    state.reset_code = int.from_bytes(item.payload[:4], "big")
                    state.ended = True
            return b""
        if kind == h2.GOAWAY:
            self._goaway = True
            last_stream = int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            if state.stream_id > last_stream and not state.ended:
                state.refused = state.ended = True
            return b""
        if kind == h2.PUSH_PROMISE:
            raise h2.ProtocolError("PUSH_PROMISE, though the client disabled push")
        return b""  # PRIORITY, unknown frame types

    def _header_block(self, item: h2.Frame, state: _Stream) -> None:
        """Collect HEADERS + CONTINUATION; decode each complete block, whichever stream it is on."""
        if item.kind == h2.HEADERS:
            self._block = bytearray(item.body())
            self._block_stream = item.stream_id
            self._block_ends_stream = bool(item.flags & h2.END_STREAM)
        elif item.stream_id != self._block_stream or not self._block_stream:
            raise h2.ProtocolError("CONTINUATION without the HEADERS it continues")
        else:
            self._block += item.payload
        if not item.flags & h2.END_HEADERS:
            return
        self._block_stream = 0
        try:
            fields = dict(self._decoder.decode(bytes(self._block), raw=False))
        except (hpack.HPACKError, UnicodeDecodeError) as exc:
            raise h2.ProtocolError(f"cannot decode a header block (HPACK): {exc!r}") from exc
        if item.stream_id == state.stream_id and not state.ended:
            state.headers.append(fields)
            state.ended = self._block_ends_stream

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _hpack_decoder() -> hpack.Decoder:
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 64 * 1024
    return decoder
