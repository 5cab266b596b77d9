"""The timed socket under the precise clients (:mod:`oip.precise`): kernel receive stamps.

The kernel stamps every received packet (``SO_TIMESTAMPNS``), so a client
can time an exchange from just before its request is written to the moment
the answer's last bytes reached this machine, leaving out how long the
process took to wake up and parse them.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass

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


class TimedSocket:
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
        """Some bytes (b"" at the end of the stream, which leaves the last arrival time alone)."""
        if not self.stamps:
            data = self.sock.recv(_RECV_SIZE)
            if data:
                self.last_arrival_ns, self._stamped = time.time_ns(), False
            return data
        data, stamp = recv_stamped(self.sock, _RECV_SIZE)
        if data:
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
