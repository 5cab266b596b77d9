"""Lean, precisely timed V2 clients for the load generator: HTTP/1.1 and unary gRPC.

Both send pre-encoded requests on one keep-alive connection over a plain
socket (gevent's, under Locust) and time each exchange from just before the
request is written to the moment the last bytes of the answer reached this
machine: the kernel stamps every received packet (``SO_TIMESTAMPNS``), so
the figure leaves out how long the generator took to wake up and parse the
answer. That wake-up is what makes Locust's and grpcio's own timings read
0.3-1 ms high on a busy or virtualised machine (``bench/latency_accuracy.py``
measures it). Where the kernel gives no stamp, the clock is read after the
last ``recv`` instead (``Reply.stamped`` says which).

* :class:`HttpConnection`: ``exchange(request_bytes)``; requests are built
  once with :func:`http_request` (``Content-Length`` bodies). Answers with
  ``Content-Length`` or chunked bodies; ``Connection: close`` is honoured.
* :class:`GrpcConnection`: ``call(path, message)`` for unary methods, over
  HTTP/2 (:mod:`oip.h2`), one call at a time, with HTTP/2 flow control,
  SETTINGS, PING and GOAWAY handled. Not a general gRPC client: no TLS, no
  compression, no streaming; conformance and interop use grpcio.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass

from . import h2
from .errors import OipError

#: Linux SO_TIMESTAMPNS (Python's socket module does not name it); stamps are CLOCK_REALTIME timespecs.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_CMSG_SPACE = 64
_RECV_SIZE = 256 * 1024


class WireError(OipError):
    """The connection failed or the peer broke the protocol (the message says which)."""


@dataclass(frozen=True)
class Reply:
    """One answer and its timing: ``elapsed`` seconds from the send to the answer's last bytes."""

    status: int  # HTTP status, or the gRPC status code
    body: bytes  # HTTP body, or the gRPC response message (b"" on a gRPC error)
    details: str  # gRPC status message ("" for HTTP)
    sent: float  # time.monotonic() just before the request was written
    elapsed: float
    stamped: bool  # elapsed ends at the kernel's receive stamp (False: at the last recv's return)


def enable_stamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv_stamped(sock: socket.socket, size: int) -> tuple[bytes, int | None]:
    """``recv`` with the kernel's arrival stamp of the last bytes read (CLOCK_REALTIME ns, or None)."""
    data, ancillary, _, _ = sock.recvmsg(size, _CMSG_SPACE)
    stamp = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack("qq", payload[:16])
            stamp = seconds * 1_000_000_000 + nanoseconds
    return data, stamp


def monotonic_of(stamp_ns: int) -> float:
    """A realtime stamp taken a moment ago, on the ``time.monotonic()`` clock."""
    now = time.monotonic()
    return min(now, now - (time.time_ns() - stamp_ns) / 1e9)


class _TimedSocket:
    """A connected TCP socket whose receives carry the kernel's arrival time."""

    def __init__(self, host: str, port: int, timeout: float, connect_timeout: float) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise WireError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stamps = enable_stamps(self.sock)
        self.last_arrival_ns: int | None = None  # CLOCK_REALTIME of the last bytes received
        self._stamped = False  # whether that time is the kernel's stamp

    def send(self, data: bytes) -> tuple[float, int]:
        """Write ``data``; returns (monotonic, realtime ns) taken just before."""
        sent, sent_ns = time.monotonic(), time.time_ns()
        self.sock.sendall(data)
        return sent, sent_ns

    def recv(self) -> bytes:
        if not self.stamps:
            data = self.sock.recv(_RECV_SIZE)
            self.last_arrival_ns, self._stamped = time.time_ns(), False
            return data
        data, stamp = recv_stamped(self.sock, _RECV_SIZE)
        self.last_arrival_ns = stamp if stamp is not None else time.time_ns()
        self._stamped = stamp is not None
        return data

    def elapsed_since(self, sent: float, sent_ns: int) -> tuple[float, bool]:
        """Seconds from the send to the last bytes received (the monotonic clock if the stamp is odd)."""
        if self._stamped and self.last_arrival_ns is not None:
            elapsed = (self.last_arrival_ns - sent_ns) / 1e9
            # A realtime step between the two readings would show here: fall back.
            fallback = time.monotonic() - sent
            if 0 <= elapsed <= fallback:
                return elapsed, True
            return fallback, False
        return time.monotonic() - sent, False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ------------------------------------------------------------------ HTTP/1.1


def http_request(method: str, host: str, path: str, body: bytes,
                 headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 request, to build once and send many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()
              if name.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConnection:
    """HTTP/1.1 keep-alive to one server; reconnects when the server closed the connection."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._socket: _TimedSocket | None = None
        self._buffer = b""

    def exchange(self, request: bytes) -> Reply:
        """Send one pre-built request and read its answer."""
        fresh = self._socket is None
        if self._socket is None:
            self._socket = _TimedSocket(self.host, self.port, self.timeout, self.connect_timeout)
            self._buffer = b""
        try:
            return self._exchange(self._socket, request)
        except _ClosedBeforeAnswer:
            self.close()
            if fresh:
                raise WireError(f"{self.host}:{self.port} closed the connection without answering") from None
            return self.exchange(request)  # a stale keep-alive connection: once more on a new one
        except (OSError, WireError) as exc:
            self.close()
            if isinstance(exc, WireError):
                raise
            raise WireError(f"{self.host}:{self.port}: {exc}") from exc

    def _exchange(self, sock: _TimedSocket, request: bytes) -> Reply:
        sent, sent_ns = sock.send(request)
        buffer = self._buffer
        while b"\r\n\r\n" not in buffer:
            data = sock.recv()
            if not data:
                if not buffer:
                    raise _ClosedBeforeAnswer()
                raise WireError("the server closed the connection in the middle of an answer's head")
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise WireError(f"not an HTTP status line: {lines[0][:80]!r}") from None
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            body, rest = self._read_chunked(sock, rest)
        elif length is not None:
            while len(rest) < length:
                data = sock.recv()
                if not data:
                    raise WireError("the server closed the connection in the middle of an answer's body")
                rest += data
            body, rest = rest[:length], rest[length:]
        else:  # the body runs to the end of the connection
            close = True
            while data := sock.recv():
                rest += data
            body, rest = rest, b""
        elapsed, stamped = sock.elapsed_since(sent, sent_ns)
        self._buffer = rest
        if close:
            self.close()
        return Reply(status, body, "", sent, elapsed, stamped)

    @staticmethod
    def _read_chunked(sock: _TimedSocket, data: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            while b"\r\n" not in data:
                more = sock.recv()
                if not more:
                    raise WireError("the server closed the connection in a chunked body")
                data += more
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                more = sock.recv()
                if not more:
                    raise WireError("the server closed the connection in a chunked body")
                data += more
            if size == 0:
                while not data.startswith(b"\r\n") and b"\r\n\r\n" not in data:  # trailers
                    more = sock.recv()
                    if not more:
                        break
                    data += more
                end = 2 if data.startswith(b"\r\n") else data.index(b"\r\n\r\n") + 4
                return body, data[end:]
            body += data[:size]
            data = data[size + 2:]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""


class _ClosedBeforeAnswer(Exception):
    pass


# ---------------------------------------------------------------------- gRPC


class GrpcConnection:
    """Unary gRPC calls over one HTTP/2 connection, one call at a time; reconnects after errors."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.authority = f"{host}:{port}"
        self._socket: _TimedSocket | None = None
        self._blocks: dict[str, bytes] = {}

    def headers_for(self, path: str) -> bytes:
        block = self._blocks.get(path)
        if block is None:
            block = self._blocks[path] = h2.request_headers(path, self.authority, self.timeout)
        return block

    def _connect(self) -> _TimedSocket:
        sock = _TimedSocket(self.host, self.port, self.timeout, self.connect_timeout)
        self._reader = h2.FrameReader()
        self._decoder = _hpack_decoder()
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

    def call(self, path: str, message: bytes) -> Reply:
        """One unary call: ``message`` is the serialised request; the reply's ``status`` is the gRPC code."""
        sock = self._socket if self._socket is not None and not self._goaway else None
        if sock is None:
            self.close()
            sock = self._connect()
        try:
            return self._call(sock, path, message)
        except (OSError, h2.ProtocolError, WireError) as exc:
            self.close()
            if isinstance(exc, WireError):
                raise
            raise WireError(f"gRPC {self.authority}: {exc}") from exc

    def _call(self, sock: _TimedSocket, path: str, message: bytes) -> Reply:
        stream = self._next_stream
        self._next_stream += 2
        stream_window = self._peer.initial_window
        pending = h2.message(message)
        out = h2.frame(h2.HEADERS, h2.END_HEADERS, stream, self.headers_for(path))
        sent = sent_ns = None
        state = _Stream(stream)
        request_sent = False
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
                    sent, sent_ns = sock.send(out)
                else:
                    sock.sock.sendall(out)
                out = b""
            if state.ended:  # also when the server answers before taking the whole request
                break
            data = sock.recv()
            if not data:
                raise WireError(f"{self.authority} closed the connection during a call")
            for item in self._reader.feed(data):
                out += self._handle(item, state)
                if item.kind == h2.WINDOW_UPDATE and item.stream_id == stream:
                    stream_window += int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            stream_window += state.window_delta
            state.window_delta = 0
        assert sent is not None and sent_ns is not None
        elapsed, stamped = sock.elapsed_since(sent, sent_ns)
        if not request_sent:  # answered early: stop sending, and tell the server so
            out += h2.frame(h2.RST_STREAM, 0, stream, struct.pack(">I", h2.CANCEL))
        if out:
            sock.sock.sendall(out)
        return state.reply(sent, elapsed, stamped)

    def _handle(self, item: h2.Frame, state: _Stream) -> bytes:
        """Process one frame; returns frames to send in answer."""
        kind = item.kind
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
        if kind == h2.GOAWAY:
            self._goaway = True
            last_stream = int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            if last_stream < state.stream_id and not state.ended:
                raise WireError(f"{self.authority} is going away (GOAWAY) and refused the call")
            return b""
        if item.stream_id != state.stream_id:
            return b""  # frames of streams that ended (RST_STREAM, late WINDOW_UPDATE)
        if kind in (h2.HEADERS, h2.CONTINUATION):
            state.block += item.body() if kind == h2.HEADERS else item.payload
            if kind == h2.HEADERS and item.flags & h2.END_STREAM:
                state.end_pending = True
            if item.flags & h2.END_HEADERS:
                fields = {name: value for name, value in self._decoder.decode(bytes(state.block), raw=False)}
                state.block = bytearray()
                state.headers.append(fields)
                if state.end_pending:
                    state.ended = True
            return b""
        if kind == h2.DATA:
            state.body += item.body()
            out = self._window.consumed(len(item.payload))
            if item.flags & h2.END_STREAM:
                state.ended = True
            return out
        if kind == h2.RST_STREAM:
            code = int.from_bytes(item.payload[:4], "big")
            state.reset_code = code
            state.ended = True
        return b""

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _Stream:
    """The state of the one call in flight."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.block = bytearray()
        self.headers: list[dict[str, str]] = []
        self.body = bytearray()
        self.ended = False
        self.end_pending = False
        self.reset_code: int | None = None
        self.window_delta = 0

    def reply(self, sent: float, elapsed: float, stamped: bool) -> Reply:
        if self.reset_code is not None:
            code = h2.GRPC_CANCELLED if self.reset_code == h2.CANCEL else h2.GRPC_INTERNAL
            return Reply(code, b"", f"stream reset by the server (HTTP/2 error {self.reset_code})",
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


def _hpack_decoder():  # noqa: ANN202 - hpack ships no type hints
    import hpack

    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 64 * 1024
    return decoder
