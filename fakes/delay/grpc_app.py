"""The stand-in's gRPC side: a bare HTTP/2 protocol (:mod:`oip.h2`) carrying unary V2 calls.

ModelInfer answers are held (delay from :class:`Behaviour`, end on
:class:`PreciseTimer`); health and ModelReady are answered at once.
"""

from __future__ import annotations

import logging
import struct
import time

import numpy as np

from oip import h2
from oip.clock import PreciseTimer
from oip.codec import build_infer_response, inputs_from_grpc_request
from oip.errors import CodecError
from oip.names import grpc_method

from .behaviour import CACHE_LIMIT, Answers, Behaviour
from .stamped import StampedTransport

log = logging.getLogger("delay_server")

_GRPC_PREFIX = grpc_method("")

class GrpcApp:
    """The gRPC methods: ModelInfer (answers cached per request bytes), health and ModelReady."""

    def __init__(self, answers: Answers) -> None:
        from oip._pb import pb

        self.answers = answers
        self.pb = pb
        self._cache: dict[bytes, tuple[str, bytes, bytes]] = {}
        self._fixed = {
            "ServerLive": pb.ServerLiveResponse(live=True).SerializeToString(),
            "ServerReady": pb.ServerReadyResponse(ready=True).SerializeToString(),
        }

    def route(self, path: str, raw: bytes) -> tuple[int, str, bytes] | tuple[str, bytes, bytes]:
        """``(status, message, response)`` to send now, or an inference ``(model, right, wrong)`` to hold."""
        from google.protobuf.message import DecodeError

        if not path.startswith(_GRPC_PREFIX):
            return h2.GRPC_UNIMPLEMENTED, f"unknown service in {path}", b""
        method = path[len(_GRPC_PREFIX):]
        if method == "ModelInfer":
            hit = self._cache.get(raw)
            return hit if hit is not None else self._infer(raw)
        if method in self._fixed:
            return h2.GRPC_OK, "", self._fixed[method]
        if method == "ModelReady":
            try:
                request = self.pb.ModelReadyRequest.FromString(raw)
            except DecodeError as exc:
                return h2.GRPC_INVALID_ARGUMENT, f"not a ModelReadyRequest: {exc}", b""
            spec = self.answers.specs.get(request.name)
            if spec is None or request.version not in ("", spec.version):
                return h2.GRPC_NOT_FOUND, f"Model {request.name} not found", b""
            return h2.GRPC_OK, "", self.pb.ModelReadyResponse(ready=True).SerializeToString()
        return h2.GRPC_UNIMPLEMENTED, f"the stand-in does not implement {method}", b""

    def _infer(self, raw: bytes) -> tuple[int, str, bytes] | tuple[str, bytes, bytes]:
        from google.protobuf.message import DecodeError

        pb = self.pb
        try:
            request = pb.ModelInferRequest.FromString(raw)
        except DecodeError as exc:
            return h2.GRPC_INVALID_ARGUMENT, f"not a ModelInferRequest: {exc}", b""
        spec = self.answers.specs.get(request.model_name)
        if spec is None or request.model_version not in ("", spec.version):
            return h2.GRPC_NOT_FOUND, f"Model {request.model_name} not found", b""
        try:
            rows = next(iter(inputs_from_grpc_request(request).values()))
            right, wrong = self.answers.predict(spec.name, rows)
        except (CodecError, StopIteration, ValueError) as exc:
            return h2.GRPC_INVALID_ARGUMENT, f"bad request: {exc}", b""

        def answer(prediction: np.ndarray) -> bytes:
            return build_infer_response(
                spec.name, {spec.output_name: prediction}, model_version=spec.version, id=request.id,
                datatypes={spec.output_name: spec.output_datatype},
            ).SerializeToString()

        entry = (spec.name, answer(right), answer(wrong))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[raw] = entry
        return entry


class GrpcProtocol:
    """One HTTP/2 connection carrying unary gRPC calls (:mod:`oip.h2`), many streams at once.

    A bare server, not grpcio: grpcio's server costs 0.5-1.5 ms a call on a
    small VM, which would make the known delay no truth at all. The hold of a
    call starts when its last byte arrives; answers are pre-built frames.
    Flow control: the server opens its receive windows to the maximum up
    front and keeps the connection's open; it honours the client's windows
    when it answers (queuing what does not fit until a WINDOW_UPDATE).
    """

    def __init__(self, app: GrpcApp, behaviour: Behaviour, timer: PreciseTimer) -> None:
        import hpack

        self.app, self.behaviour, self.timer = app, behaviour, timer
        self.transport: StampedTransport | None = None
        self.preface = bytearray()
        self.reader = h2.FrameReader()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 64 * 1024
        self.streams: dict[int, _GrpcStream] = {}
        self.peer = h2.PeerSettings()
        self.send_window = h2.DEFAULT_WINDOW
        self.stream_windows: dict[int, int] = {}
        self.blocked: list[tuple[int, bytes]] = []  # (stream, message) waiting for a window
        self.window = h2.ReceiveWindow()

    def connection_made(self, transport: StampedTransport) -> None:
        self.transport = transport
        transport.write(h2.settings({h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW})
                        + h2.ReceiveWindow.opening())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes, received: float | None = None) -> None:
        received = time.monotonic() if received is None else received
        if len(self.preface) < len(h2.PREFACE):
            need = len(h2.PREFACE) - len(self.preface)
            self.preface += data[:need]
            data = data[need:]
            if not h2.PREFACE.startswith(bytes(self.preface)):
                self._close("not an HTTP/2 (prior knowledge) client")
                return
            if len(self.preface) < len(h2.PREFACE):
                return
        out = bytearray()
        try:
            for item in self.reader.feed(data):
                out += self._frame(item, received)
        except Exception as exc:  # noqa: BLE001 - a broken client must not stop the server
            log.warning("gRPC connection dropped: %s", exc)
            self._close(str(exc))
            return
        if out and self.transport is not None:
            self.transport.write(bytes(out))

    def _frame(self, item: h2.Frame, received: float) -> bytes:
        kind = item.kind
        if kind == h2.SETTINGS:
            if item.flags & h2.ACK:
                return b""
            delta = self.peer.apply(item.payload)
            for stream in self.stream_windows:
                self.stream_windows[stream] += delta
            return h2.frame(h2.SETTINGS, h2.ACK, 0) + self._unblock()
        if kind == h2.PING:
            return b"" if item.flags & h2.ACK else h2.frame(h2.PING, h2.ACK, 0, item.payload)
        if kind == h2.WINDOW_UPDATE:
            increment = int.from_bytes(item.payload[:4], "big") & 0x7FFF_FFFF
            if item.stream_id == 0:
                self.send_window += increment
            elif item.stream_id in self.stream_windows:
                self.stream_windows[item.stream_id] += increment
            return self._unblock()
        if kind == h2.GOAWAY:
            return b""
        if kind == h2.RST_STREAM:
            self.streams.pop(item.stream_id, None)
            self.stream_windows.pop(item.stream_id, None)
            return b""
        if kind in (h2.HEADERS, h2.CONTINUATION):
            if kind == h2.HEADERS:
                stream = self.streams.setdefault(item.stream_id, _GrpcStream())
                self.stream_windows.setdefault(item.stream_id, self.peer.initial_window)
                stream.block += item.body()
                stream.end = bool(item.flags & h2.END_STREAM)
            else:
                stream = self.streams.get(item.stream_id)
                if stream is None:
                    raise h2.ProtocolError("CONTINUATION of an unknown stream")
                stream.block += item.payload
            if item.flags & h2.END_HEADERS:
                fields = dict(self.decoder.decode(bytes(stream.block), raw=False))
                stream.block = bytearray()
                stream.path = stream.path or fields.get(":path", "")
                if stream.end:
                    return self._dispatch(item.stream_id, received)
            return b""
        if kind == h2.DATA:
            out = self.window.consumed(len(item.payload))
            stream = self.streams.get(item.stream_id)
            if stream is None:
                return out  # a stream we reset or answered early
            stream.body += item.body()
            if item.flags & h2.END_STREAM:
                return out + self._dispatch(item.stream_id, received)
            return out
        return b""  # PRIORITY, unknown frame types

    def _dispatch(self, stream_id: int, received: float) -> bytes:
        stream = self.streams.pop(stream_id)
        try:
            raw = h2.unwrap_message(bytes(stream.body))
        except h2.ProtocolError as exc:
            return self._trailers_only(stream_id, h2.GRPC_INTERNAL, str(exc))
        routed = self.app.route(stream.path, raw)
        if isinstance(routed[0], int):
            status, message, response = routed  # type: ignore[misc]
            if status != h2.GRPC_OK:
                return self._trailers_only(stream_id, status, message)
            return self._answer(stream_id, response)
        model, right, wrong = routed  # type: ignore[misc]
        delay = self.behaviour.next_delay("grpc")
        self.timer.call_at(received + delay, self._respond, stream_id, self.app.answers.choose(right, wrong),
                           model, received, delay)
        return b""

    def _respond(self, stream_id: int, response: bytes, model: str, received: float, delay: float) -> None:
        if self.transport is None or stream_id not in self.stream_windows:
            return  # the client went away or cancelled
        out = self._answer(stream_id, response)
        held = time.monotonic() - received
        if out:
            self.transport.write(out)
        self.behaviour.record(model, "grpc", delay, held)

    def _answer(self, stream_id: int, response: bytes) -> bytes:
        payload = h2.message(response)
        if len(payload) > min(self.send_window, self.stream_windows.get(stream_id, 0)):
            self.blocked.append((stream_id, payload))
            return b""
        return self._frames(stream_id, payload)

    def _frames(self, stream_id: int, payload: bytes) -> bytes:
        self.send_window -= len(payload)
        self.stream_windows.pop(stream_id, None)
        return (h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id, h2.RESPONSE_HEADERS)
                + h2.data_frames(stream_id, payload, self.peer.max_frame, end_stream=False)
                + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, h2.trailers(h2.GRPC_OK)))

    def _unblock(self) -> bytes:
        out = b""
        waiting, self.blocked = self.blocked, []
        for stream_id, payload in waiting:
            if len(payload) <= min(self.send_window, self.stream_windows.get(stream_id, 0)):
                out += self._frames(stream_id, payload)
            elif stream_id in self.stream_windows:
                self.blocked.append((stream_id, payload))
        return out

    def _trailers_only(self, stream_id: int, status: int, message: str) -> bytes:
        self.stream_windows.pop(stream_id, None)
        return h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id,
                        h2.RESPONSE_HEADERS + h2.trailers(status, message))

    def _close(self, why: str) -> None:
        if self.transport is not None:
            payload = struct.pack(">II", 0, h2.PROTOCOL_ERROR) + why.encode()[:200]  # last stream 0
            self.transport.write(h2.frame(h2.GOAWAY, 0, 0, payload))
            self.transport.close()
            self.transport = None


class _GrpcStream:
    __slots__ = ("block", "body", "end", "path")

    def __init__(self) -> None:
        self.block = bytearray()
        self.body = bytearray()
        self.end = False
        self.path = ""
