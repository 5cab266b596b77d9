"""The slice of HTTP/2 that unary gRPC needs: frames, header blocks, message framing.

Written once and used by both ends that the harness owns: the precise gRPC
client of the load tests (:mod:`oip.precise`) and the delay stand-in's gRPC
server (:mod:`fakes.delay.grpc_app`). Header blocks the harness *sends* are
HPACK literals that never touch the dynamic table, so they are encoded once
and reused byte for byte; blocks it *receives* go through ``hpack.Decoder``
(peers compress with the dynamic table and Huffman codes). :data:`RESET_STATUS`
is the one table from RST_STREAM error codes to gRPC statuses.

References: RFC 9113 (HTTP/2), RFC 7541 (HPACK), and gRPC's "PROTOCOL-HTTP2.md".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes (RST_STREAM, GOAWAY), RFC 9113 section 7
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED,
 FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM,
 INADEQUATE_SECURITY, HTTP_1_1_REQUIRED) = range(14)
ERROR_NAMES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")
# settings
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
MAX_STREAM_ID = 2**31 - 1
FRAME_HEADER = 9

# gRPC status codes used here (grpc.StatusCode values)
GRPC_OK = 0
GRPC_CANCELLED = 1
GRPC_UNKNOWN = 2
GRPC_INVALID_ARGUMENT = 3
GRPC_DEADLINE_EXCEEDED = 4
GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_INTERNAL = 13
GRPC_UNAVAILABLE = 14
GRPC_UNIMPLEMENTED = 12
STATUS_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
                5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
                9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
                13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}


#: RST_STREAM error code -> gRPC status, as gRPC's PROTOCOL-HTTP2.md "Errors" maps them (codes not
#: listed there, and NO_ERROR before the trailers, are INTERNAL). REFUSED_STREAM: the server did not
#: process the stream (UNAVAILABLE; the precise client reports it and does not retry it itself).
RESET_STATUS = {
    NO_ERROR: GRPC_INTERNAL, PROTOCOL_ERROR: GRPC_INTERNAL, INTERNAL_ERROR: GRPC_INTERNAL,
    FLOW_CONTROL_ERROR: GRPC_INTERNAL, SETTINGS_TIMEOUT: GRPC_INTERNAL, FRAME_SIZE_ERROR: GRPC_INTERNAL,
    REFUSED_STREAM: GRPC_UNAVAILABLE, CANCEL: GRPC_CANCELLED, COMPRESSION_ERROR: GRPC_INTERNAL,
    CONNECT_ERROR: GRPC_INTERNAL, ENHANCE_YOUR_CALM: GRPC_RESOURCE_EXHAUSTED,
    INADEQUATE_SECURITY: GRPC_PERMISSION_DENIED,
}


def reset_status(code: int) -> int:
    """The gRPC status of a call whose stream the server reset with ``code`` before its trailers."""
    return RESET_STATUS.get(code, GRPC_INTERNAL)


def error_name(code: int) -> str:
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else f"0x{code:x}"


class ProtocolError(Exception):
    """The peer broke the HTTP/2 or gRPC framing rules."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in values.items()))


def parse_settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise ProtocolError("SETTINGS payload is not a multiple of 6 bytes")
    return {k: v for k, v in struct.iter_unpack(">HI", payload)}


class PeerSettings:
    """What the peer's SETTINGS said that a sender must honour: frame size and initial stream window."""

    def __init__(self) -> None:
        self.max_frame = DEFAULT_MAX_FRAME
        self.initial_window = DEFAULT_WINDOW

    def apply(self, payload: bytes) -> int:
        """Take a SETTINGS payload; returns the change to every open stream's send window."""
        values = parse_settings(payload)
        self.max_frame = values.get(SETTINGS_MAX_FRAME_SIZE, self.max_frame)
        delta = 0
        if SETTINGS_INITIAL_WINDOW_SIZE in values:
            delta = values[SETTINGS_INITIAL_WINDOW_SIZE] - self.initial_window
            self.initial_window = values[SETTINGS_INITIAL_WINDOW_SIZE]
        return delta


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


class ReceiveWindow:
    """Keeps an end's connection-level receive window wide open.

    Each end announces the largest stream window in its SETTINGS
    (``SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW``), widens the connection
    window to the same with :meth:`opening` right after, then hands back
    what it received in one WINDOW_UPDATE whenever half is used.
    """

    def __init__(self) -> None:
        self._used = 0

    @staticmethod
    def opening() -> bytes:
        """The connection WINDOW_UPDATE to send once, after the SETTINGS frame."""
        return window_update(0, MAX_WINDOW - DEFAULT_WINDOW)

    def consumed(self, size: int) -> bytes:
        """Count a received DATA frame's ``size``; returns a WINDOW_UPDATE to send (or b"")."""
        self._used += size
        if self._used <= MAX_WINDOW // 2:
            return b""
        update, self._used = window_update(0, self._used), 0
        return update


def data_frames(stream_id: int, data: bytes, max_frame: int, end_stream: bool) -> bytes:
    """``data`` as DATA frames of at most ``max_frame`` bytes (flow control is the caller's)."""
    if not data:
        return frame(DATA, END_STREAM if end_stream else 0, stream_id)
    chunks = [data[i:i + max_frame] for i in range(0, len(data), max_frame)]
    return b"".join(frame(DATA, END_STREAM if end_stream and i == len(chunks) - 1 else 0, stream_id, c)
                    for i, c in enumerate(chunks))


@dataclass(frozen=True)
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes

    def body(self) -> bytes:
        """DATA/HEADERS payload without padding and priority fields."""
        payload = self.payload
        start, end = 0, len(payload)
        if self.flags & PADDED and self.kind in (DATA, HEADERS):
            if not payload:
                raise ProtocolError("padded frame without a pad length")
            start, end = 1, len(payload) - payload[0]
        if self.kind == HEADERS and self.flags & PRIORITY_FLAG:
            start += 5
        if end < start:
            raise ProtocolError("padding longer than the frame")
        return payload[start:end]


class FrameReader:
    """Cuts a byte stream into frames (``feed`` bytes, iterate complete frames)."""

    def __init__(self, max_frame: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> Iterator[Frame]:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= FRAME_HEADER:
            length = int.from_bytes(buffer[:3], "big")
            if length > self._max_frame:
                raise ProtocolError(f"a {length}-byte frame is larger than allowed ({self._max_frame})")
            if len(buffer) < FRAME_HEADER + length:
                break
            kind, flags = buffer[3], buffer[4]
            stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFF_FFFF
            payload = bytes(buffer[FRAME_HEADER:FRAME_HEADER + length])
            del buffer[:FRAME_HEADER + length]
            yield Frame(kind, flags, stream_id, payload)


# ------------------------------------------------------------------ HPACK

# RFC 7541 appendix A: the static-table entries used below
_STATIC = {":authority": 1, ":method POST": 3, ":path": 4, ":scheme http": 6, ":status 200": 8,
           "content-type": 31, "user-agent": 58}


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("latin-1")
    return _integer(len(raw), 7, 0) + raw


def literal(name: str, value: str) -> bytes:
    """One header field as an HPACK "literal without indexing" (leaves the dynamic table alone)."""
    index = _STATIC.get(name)
    if index is not None:
        return _integer(index, 4, 0x00) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def indexed(name_value: str) -> bytes:
    """A static-table entry such as ``":method POST"``."""
    return _integer(_STATIC[name_value], 7, 0x80)


def request_headers(path: str, authority: str, timeout_s: float | None = None,
                    user_agent: str = "oip-harness") -> bytes:
    """A gRPC unary request's header block (constant per path: encode once, send many times)."""
    block = (indexed(":method POST") + indexed(":scheme http") + literal(":path", path)
             + literal(":authority", authority) + literal("content-type", "application/grpc")
             + literal("te", "trailers") + literal("user-agent", user_agent))
    if timeout_s is not None:
        block += literal("grpc-timeout", f"{max(int(timeout_s * 1000), 1)}m")
    return block


RESPONSE_HEADERS = indexed(":status 200") + literal("content-type", "application/grpc")


def trailers(status: int, message: str = "") -> bytes:
    block = literal("grpc-status", str(status))
    if message:
        block += literal("grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"))
    return block


def grpc_message_text(value: str) -> str:
    return unquote(value)


# -------------------------------------------------------- gRPC messages


def message(payload: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def unwrap_message(data: bytes) -> bytes:
    """The one message of a unary call's body."""
    if len(data) < 5:
        raise ProtocolError(f"a gRPC message needs a 5-byte prefix, got {len(data)} bytes")
    if data[0] != 0:
        raise ProtocolError("a compressed gRPC message, but no compression was negotiated")
    length = struct.unpack(">I", data[1:5])[0]
    if len(data) != 5 + length:
        raise ProtocolError(f"the gRPC message prefix says {length} bytes, the body has {len(data) - 5}")
    return data[5:]
