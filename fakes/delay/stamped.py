"""Sockets for the stand-in whose reads carry the kernel's arrival time: where each hold starts.

The hold itself ends on :class:`oip.clock.PreciseTimer`; this module gives it
its start (the arrival stamp of the request's last bytes) and serves a port
whose every connection reads that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from oip.names import LOOPBACK
from oip.precise import enable_stamps, monotonic_of, recv_stamped

log = logging.getLogger("delay_server")


class StampedTransport:
    """A minimal asyncio transport whose reads carry the kernel's arrival time.

    asyncio's transports read with ``recv``, so a protocol can only note when
    the loop got round to the bytes, which on a VM whose idle CPU takes
    0.1-0.6 ms to wake is well after they arrived. This one reads with
    ``recvmsg`` and ``SO_TIMESTAMPNS`` and calls
    ``protocol.data_received(data, arrival)`` with the arrival on the
    ``time.monotonic()`` clock, so a hold starts when the request really
    arrived. Writes go straight to the socket; what does not fit waits for
    it to drain.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any) -> None:
        self.loop, self.sock, self.protocol = loop, sock, protocol
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_stamps(sock)  # where the kernel cannot, arrivals are read off the clock
        self.fd = sock.fileno()
        self.pending = bytearray()
        self.closing = False
        loop.add_reader(self.fd, self._read)
        protocol.connection_made(self)

    def _read(self) -> None:
        try:
            data, stamp = recv_stamped(self.sock, 256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        if not data:
            self._lost()
            return
        self.protocol.data_received(data, time.monotonic() if stamp is None else monotonic_of(stamp))

    def write(self, data: bytes) -> None:
        if self.fd < 0:  # closed
            return
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost()
            return
        if sent < len(data):
            self.pending += data[sent:]
            self.loop.add_writer(self.fd, self._drain)

    def _drain(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        del self.pending[:sent]
        if not self.pending:
            self.loop.remove_writer(self.fd)
            if self.closing:
                self._lost()

    def close(self) -> None:
        """Close once everything written has gone out."""
        self.closing = True
        if not self.pending:
            self._lost()

    def _lost(self) -> None:
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.fd = -1
        with contextlib.suppress(OSError):
            self.sock.close()
        self.protocol.connection_lost(None)


def serve_stamped(loop: asyncio.AbstractEventLoop, port: int,
                  protocol_factory: Callable[[], Any]) -> socket.socket:
    """Listen on ``LOOPBACK:port`` (0: a free port); every connection gets a :class:`StampedTransport`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    listener.listen(128)
    listener.setblocking(False)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            StampedTransport(loop, conn, protocol_factory())

    loop.add_reader(listener.fileno(), accept)
    return listener


def stop_serving(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
    with contextlib.suppress(OSError, ValueError):
        loop.remove_reader(listener.fileno())
    listener.close()
