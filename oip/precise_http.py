"""The lean HTTP/1.1 client of the load tests, timed to the kernel's receive stamps.

Requests are built once with :func:`http_request` and sent many times on one
keep-alive connection; :meth:`HttpConnection.exchange` parses just what it
needs of the answer (RFC 9112 framing): 1xx interim answers are skipped;
204, 304 and answers to HEAD have no body; otherwise the body is chunked,
``Content-Length`` or runs to the end of the connection. A keep-alive
connection the server closed while idle is reopened once, transparently.
(``bench/h11_cost.py`` measured h11 doing the same parsing: see
docs/wire-figures.md for why this stays hand-written.)
"""

from __future__ import annotations

from .precise_socket import Reply, TimedSocket, WireError


def http_request(method: str, host: str, path: str, body: bytes,
                 headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 request, to build once and send many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()
              if name.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _ClosedBeforeAnswer(Exception):
    """A reused connection turned out closed before any byte of the answer: safe to send again."""


class HttpConnection:
    """HTTP/1.1 keep-alive to one server; reconnects when the server closed the connection."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._socket: TimedSocket | None = None
        self._buffer = b""

    def exchange(self, request: bytes) -> Reply:
        """Send one pre-built request and read its answer."""
        fresh = self._socket is None
        if self._socket is None:
            self._socket = TimedSocket(self.host, self.port, self.timeout, self.connect_timeout)
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

    def _exchange(self, sock: TimedSocket, request: bytes) -> Reply:
        try:
            sent, sent_ns = sock.send(request)
        except ConnectionError:  # the server reset the idle connection
            raise _ClosedBeforeAnswer() from None
        status, head, rest = self._head(sock, self._buffer, first=True)
        while 100 <= status < 200 and status != 101:  # interim answers (100 Continue, 103 Early Hints)
            status, head, rest = self._head(sock, rest, first=False)
        length, chunked, close = _framing(head)
        if status < 200 or status in (204, 304) or request.startswith(b"HEAD "):
            body = b""  # no body by definition, whatever the headers say
            close = close or status == 101
        elif chunked:
            body, rest = _read_chunked(sock, rest)
        elif length is not None:
            while len(rest) < length:
                rest += _more(sock, "an answer's body")
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
    def _head(sock: TimedSocket, buffer: bytes, first: bool) -> tuple[int, bytes, bytes]:
        """The next answer head: (status, head, bytes after it)."""
        while b"\r\n\r\n" not in buffer:
            try:
                data = sock.recv()
            except ConnectionError:
                if first and not buffer:
                    raise _ClosedBeforeAnswer() from None
                raise
            if not data:
                if first and not buffer:
                    raise _ClosedBeforeAnswer()
                raise WireError("the server closed the connection in the middle of an answer's head")
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        try:
            status = int(head[:head.find(b"\r\n")].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise WireError(f"not an HTTP status line: {head[:80]!r}") from None
        return status, head, rest

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""


def _framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length, chunked, Connection: close) of an answer head."""
    length, chunked, close = None, False, head.startswith(b"HTTP/1.0")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise WireError(f"a bad Content-Length: {value[:40]!r}") from None
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    return length, chunked, close


def _more(sock: TimedSocket, where: str) -> bytes:
    data = sock.recv()
    if not data:
        raise WireError(f"the server closed the connection in the middle of {where}")
    return data


def _read_chunked(sock: TimedSocket, data: bytes) -> tuple[bytes, bytes]:
    """A chunked body and the bytes after it (trailer fields are read and dropped)."""
    parts = []
    while True:
        while b"\r\n" not in data:
            data += _more(sock, "a chunked body")
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise WireError(f"a bad chunk size line: {size_line[:40]!r}") from None
        if size == 0:
            while not data.startswith(b"\r\n") and b"\r\n\r\n" not in data:  # trailer fields
                data += _more(sock, "a chunked body's trailers")
            end = 2 if data.startswith(b"\r\n") else data.index(b"\r\n\r\n") + 4
            return b"".join(parts), data[end:]
        while len(data) < size + 2:
            data += _more(sock, "a chunked body")
        parts.append(data[:size])
        data = data[size + 2:]
