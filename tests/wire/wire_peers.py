"""Independent peers for the precise clients' wire tests: loopback servers in threads.

The peers' framing comes from the ``h2``/``hyperframe``/``hpack`` and ``h11``
libraries (and grpcio), never from :mod:`oip.h2`, so a misreading of the
RFCs shared by both ends of the harness cannot hide here.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h11

from oip.names import LOOPBACK

Handler = Callable[[socket.socket, int], None]
GRPC_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


class ThreadedPeer:
    """Accepts up to ``connections`` connections on 127.0.0.1 and hands each, in turn, to ``handler``."""

    def __init__(self, handler: Handler, connections: int) -> None:
        self.handler, self.connections = handler, connections
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        try:
            while self.accepted < self.connections and not self._stop.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError("no client came")
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    index, self.accepted = self.accepted, self.accepted + 1
                    self.handler(conn, index)
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.errors.append(exc)
        finally:
            self.listener.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(25)
        assert not self._thread.is_alive(), "the peer's thread did not finish"
        if self.errors:
            raise self.errors[0]


def grpc_message(payload: bytes) -> bytes:
    """gRPC's length-prefixed message, written here from the spec (not with oip.h2)."""
    return b"\0" + struct.pack(">I", len(payload)) + payload


class H2Peer:
    """The server side of one HTTP/2 connection, on the ``h2`` library."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()
        self.bodies: dict[int, bytearray] = {}
        self.seen: list[h2.events.Event] = []

    def flush(self) -> bytes:
        """Send what h2 has queued; returns it (tests look into it)."""
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)
        return data

    def events(self) -> list[h2.events.Event]:
        """The events of the next bytes from the client ([] at the end of the connection)."""
        data = self.sock.recv(65536)
        if not data:
            return []
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        self.seen += events
        return events

    def wait_for(self, kind: type, stream_id: int | None = None) -> h2.events.Event:
        """Read until an event of ``kind`` (for ``stream_id``, if given) arrives."""
        while True:
            for event in self.seen:
                if isinstance(event, kind) and (stream_id is None or event.stream_id == stream_id):
                    self.seen.remove(event)
                    return event
            if not self.events():
                raise EOFError(f"the client closed the connection before {kind.__name__}")

    def request(self) -> tuple[int, bytes]:
        """The next complete request: (stream id, gRPC message payload)."""
        ended = self.wait_for(h2.events.StreamEnded)
        body = bytes(self.bodies.pop(ended.stream_id, b""))
        assert body[:1] == b"\0" and struct.unpack(">I", body[1:5])[0] == len(body) - 5
        return ended.stream_id, body[5:]

    def answer(self, stream_id: int, payload: bytes, status: int = 0, message: str = "",
               headers: list[tuple[str, str]] | None = None) -> bytes:
        """A whole unary answer: headers, the message, trailers. Returns the bytes sent."""
        self.conn.send_headers(stream_id, headers or GRPC_HEADERS)
        if status == 0:
            self.conn.send_data(stream_id, grpc_message(payload))
        trailers = [("grpc-status", str(status))] + ([("grpc-message", message)] if message else [])
        self.conn.send_headers(stream_id, trailers, end_stream=True)
        return self.flush()

    def drain(self) -> None:
        """Read until the client closes the connection."""
        while self.events():
            pass

    def hang_up(self) -> None:
        """Close the way servers do: stop writing, then read (unparsed) until the client closes."""
        self.sock.shutdown(socket.SHUT_WR)
        while self.sock.recv(65536):
            pass


class H11Peer:
    """The server side of one HTTP/1.1 connection, on the ``h11`` library."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.SERVER)

    def request(self) -> tuple[h11.Request, bytes]:
        """The next whole request and its body."""
        request, body = None, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    def send(self, *events: h11.Event) -> None:
        """Send ``events``; after the answer's end, get ready for the next request."""
        self.sock.sendall(b"".join(self.conn.send(event) or b"" for event in events))
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
