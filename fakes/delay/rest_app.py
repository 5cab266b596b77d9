"""The stand-in's REST side: a bare HTTP/1.1 keep-alive protocol over :class:`StampedTransport`.

Routes V2 health, ready and infer plus the control paths ``/_delay/stats``
and ``/_delay/reset``; an inference answer is held (its delay from
:class:`Behaviour`, its end on :class:`PreciseTimer`) and then written whole.
"""

from __future__ import annotations

import json
import time

import numpy as np
import orjson

from oip.clock import PreciseTimer
from oip.codec import inputs_from_json_request, to_json_tensor
from oip.errors import CodecError

from .behaviour import CACHE_LIMIT, Answers, Behaviour
from .stamped import StampedTransport

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}


def _http_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _error(status: int, message: str) -> bytes:
    return _http_response(status, json.dumps({"error": message}).encode())


_OK_EMPTY = _http_response(200, b"")


class RestApp:
    """Routes and answers; an inference answer is cached as full HTTP responses (right, wrong)."""

    def __init__(self, answers: Answers, behaviour: Behaviour, timer: PreciseTimer, *,
                 infer: bool = True) -> None:
        self.answers = answers
        self.behaviour = behaviour
        self.timer = timer
        self.infer = infer  # False: a control port (stats, reset, health) of a gRPC-only process
        self._cache: dict[tuple[bytes, bytes], tuple[str, bytes, bytes]] = {}

    def route(self, method: bytes, target: bytes, body: bytes) -> bytes | tuple[str, bytes, bytes]:
        """An immediate HTTP response, or an inference answer ``(model, right, wrong)`` to hold."""
        if method == b"POST":
            hit = self._cache.get((target, body))
            if hit is not None:
                return hit
        path = target.split(b"?", 1)[0].decode("latin-1")
        verb = method.decode("latin-1")
        if path == "/_delay/stats":
            return _http_response(200, json.dumps(self.behaviour.to_wire()).encode())
        if path == "/_delay/reset" and verb == "POST":
            self.behaviour.clear()
            return _http_response(200, b"{}")
        if path in ("/v2/health/live", "/v2/health/ready"):
            return _OK_EMPTY
        if not self.infer:
            return _error(404, f"no route {path} (this port only serves /_delay/stats and /_delay/reset)")
        model, version, suffix = _model_route(path)
        specs = self.answers.specs
        if model is None:
            return _error(404, f"no route {path}")
        if model not in specs:
            return _error(404, f"Model {model} not found")
        if version is not None and version != specs[model].version:
            return _error(404, f"Model {model} with version {version} not found")
        if suffix == "/ready":
            return _OK_EMPTY
        if suffix != "/infer" or verb != "POST":
            return _error(404, f"no route {verb} {path}")
        try:
            request = orjson.loads(body)
            rows = next(iter(inputs_from_json_request(request).values()))
            right, wrong = self.answers.predict(model, rows)
            request_id = request.get("id", "")
        except (ValueError, TypeError, AttributeError, CodecError, StopIteration) as exc:
            return _error(400, f"bad request: {exc}")
        spec = specs[model]

        def answer(prediction: np.ndarray) -> bytes:
            document = {"model_name": model, "model_version": spec.version, "id": request_id,
                        "parameters": {},
                        "outputs": [to_json_tensor(spec.output_name, prediction, spec.output_datatype)]}
            return _http_response(200, json.dumps(document, separators=(",", ":")).encode())

        entry = (model, answer(right), answer(wrong))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[(target, body)] = entry
        return entry


def _model_route(path: str) -> tuple[str | None, str | None, str]:
    """(model, version, suffix) of /v2/models/{m}[/versions/{v}]{suffix}."""
    parts = path.split("/")
    if len(parts) < 4 or parts[1:3] != ["v2", "models"]:
        return None, None, ""
    model, rest = parts[3], parts[4:]
    version = None
    if rest[:1] == ["versions"] and len(rest) >= 2:
        version, rest = rest[1], rest[2:]
    return model, version, "/" + "/".join(rest) if rest else ""


class RestProtocol:
    """One HTTP/1.1 connection: keep-alive, Content-Length bodies, one request at a time.

    A request's hold starts when its last byte arrives (``data_received``);
    pipelined requests wait in the buffer until the one before is answered.
    """

    def __init__(self, app: RestApp) -> None:
        self.app = app
        self.transport: StampedTransport | None = None
        self.buffer = bytearray()
        self.busy = False

    def connection_made(self, transport: StampedTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes, received: float | None = None) -> None:
        """``received``: when the bytes arrived (:class:`StampedTransport`); now when not given."""
        received = time.monotonic() if received is None else received
        self.buffer += data
        if not self.busy:
            self._next(received)

    def _next(self, received: float) -> None:
        buffer = self.buffer
        while buffer and not self.busy and self.transport is not None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reject(431, "request head too large")
                return
            head = bytes(buffer[:end])
            line, _, _ = head.partition(b"\r\n")
            parts = line.split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                self._reject(400, f"not an HTTP/1.x request line: {line[:80]!r}")
                return
            method, target, version = parts
            lower = head.lower()
            if b"\r\ntransfer-encoding:" in lower:
                self._reject(411, "only Content-Length bodies are supported")
                return
            length = 0
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                try:
                    length = int(head[at + 17:stop if stop >= 0 else len(head)].strip())
                except ValueError:
                    self._reject(400, "bad Content-Length")
                    return
                if not 0 <= length <= MAX_BODY:
                    self._reject(413, f"Content-Length {length} out of range")
                    return
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4:total])
            del buffer[:total]
            if version == b"HTTP/1.1":
                keep_alive = b"\r\nconnection: close" not in lower
            else:
                keep_alive = b"\r\nconnection: keep-alive" in lower
            self._dispatch(method, target, body, received, keep_alive)
            received = time.monotonic()  # a pipelined request starts when this one is done

    def _dispatch(self, method: bytes, target: bytes, body: bytes, received: float, keep_alive: bool) -> None:
        app = self.app
        routed = app.route(method, target, body)
        if isinstance(routed, bytes):
            self._send(routed, keep_alive)
            return
        model, right, wrong = routed
        delay = app.behaviour.next_delay("rest")
        self.busy = True
        app.timer.call_at(received + delay, self._respond, app.answers.choose(right, wrong), model,
                          received, delay, keep_alive)

    def _respond(self, response: bytes, model: str, received: float, delay: float, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return  # the client went away
        held = time.monotonic() - received  # handed to the kernel now (the write itself can take a while)
        transport.write(response)
        self.app.behaviour.record(model, "rest", delay, held)
        self.busy = False
        if not keep_alive:
            transport.close()
        elif self.buffer:
            self._next(time.monotonic())

    def _send(self, response: bytes, keep_alive: bool) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if not keep_alive:
            self.transport.close()

    def _reject(self, status: int, message: str) -> None:
        self.buffer.clear()
        self._send(_error(status, message), keep_alive=False)
