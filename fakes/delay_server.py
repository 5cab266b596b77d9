"""A minimal V2 stand-in that answers after a known delay, with the oracle's predictions.

Used to check the load harness's own measurements: it serves ``mnist-svm`` and
``mushroom-xgboost`` over REST (HTTP/1.1 keep-alive) and gRPC on 127.0.0.1,
holds each inference request for ``--delay-ms`` (every ``--slow-every``-th one
per transport for ``--slow-ms`` instead, to give the distribution a known
tail) and answers with the in-process oracle's prediction for the rows it
received. The delay each request was meant to get is the *truth* a client's
figures are compared with.

It is built to cost as little as possible on top of that delay, so that the
known delay can serve as the truth:

* REST is a bare protocol on uvloop: keep-alive,
  ``Content-Length`` bodies only, no per-request JSON work once a request
  body has been seen (the full HTTP answer, right and wrong, is
  cached per path and body; the harness sends the same pre-encoded bodies
  over and over).
* gRPC is a bare HTTP/2 protocol too (:mod:`oip.h2`; grpcio's
  server costs 0.5-1.5 ms a call on a small VM): pre-serialised
  ``ModelInferResponse`` bytes out, cached per request bytes.
* The hold runs from the moment the request's last bytes arrived, as the
  kernel stamped them (:class:`StampedTransport`: the loop may wake up to
  0.6 ms later on a VM), so waking and answering work are hidden inside it,
  and ends on a Linux ``timerfd`` (asyncio's own timers fire up to 1 ms
  late) armed ``--spin-us`` early, after which the loop spins to the
  deadline: on a VM a sleeping CPU takes 0.1-0.6 ms to wake up.
* :class:`DelayServer` runs REST and gRPC in two child processes, apart from
  the load generator and from each other (no shared GIL, no shared loop).

Per request it records, in microsecond HDR histograms: the delay it meant to
hold (``intended``, the truth) and the time it really held the request
(``held``: from the kernel's arrival stamp of the request's last bytes to
the moment the answer is handed to the socket). ``GET /_delay/stats`` on the
process's REST (control) port returns both; ``POST /_delay/reset`` clears them.

Deliberate faults for tests: ``--wrong-every N`` returns a wrong prediction in
every N-th answer; ``--serve rest`` (or ``--no-grpc``) serves REST only.

    python -m fakes.delay_server --delay-ms 5      # prints {"rest_port": ..., "grpc_port": ..., ...}

or from Python (child processes, stopped on exit)::

    with DelayServer(delay_ms=5) as server:
        server.rest_url, server.grpc_target, server.truth(), server.held()

It stops by itself after ``--max-seconds`` and when its stdin closes (the
parent ended), so it never outlives a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

if __package__ in (None, ""):  # `python fakes/delay_server.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests._schedule import SpinBudget, TimerFd  # noqa: E402
from oip import h2  # noqa: E402
from oip.codec import (  # noqa: E402
    build_infer_response,
    inputs_from_grpc_request,
    inputs_from_json_request,
    to_json_tensor,
)
from oip.errors import CodecError  # noqa: E402
from oip.precise import enable_stamps, monotonic_of, recv_stamped  # noqa: E402
from reporting.latency import LatencyBook  # noqa: E402

LOOPBACK = "127.0.0.1"
DEFAULT_MAX_SECONDS = 900.0
#: Wake this long before each deadline and spin to it (a VM's idle CPU wakes 0.1-0.6 ms late).
DEFAULT_SPIN_US = 300.0
#: At most this many seconds of spinning per second: under heavy load the timer just sleeps.
SPIN_BUDGET = 0.2
ENDPOINT = "infer"
MODES = ("both", "rest", "grpc")
CACHE_LIMIT = 50_000  # cached answers per transport (a miss only costs a parse)
MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024

log = logging.getLogger("delay_server")


# ------------------------------------------------------------------- answers


class Answers:
    """Predictions per model: a table of the held-out rows, the oracle for anything else."""

    def __init__(self, wrong_every: int = 0, data_dir: str | None = None) -> None:
        from reference import datasets, oracle
        from reference.catalog import MODELS

        self.specs = MODELS
        self.wrong_every = wrong_every
        self._count = 0
        self._oracle = oracle
        self._table: dict[str, dict[bytes, Any]] = {}
        for name in MODELS:
            X, _ = datasets.heldout(name, data_dir)
            predictions = oracle.predict(name, X)
            self._table[name] = {row.tobytes(): value for row, value in zip(X, predictions, strict=True)}

    def predict(self, model: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The right prediction for ``rows`` and a wrong one (for ``--wrong-every``)."""
        spec = self.specs[model]
        rows = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        table = self._table[model]
        values = [table.get(row.tobytes()) for row in rows]
        if any(v is None for v in values):
            values = list(self._oracle.predict(model, rows))
        dtype = np.int64 if spec.output_datatype == "INT64" else np.float32
        right = np.asarray(values, dtype=dtype).reshape(-1, 1)
        wrong = (right + 1) % 10 if dtype == np.int64 else (1.0 - right).astype(np.float32)
        return right, wrong

    def choose(self, right: bytes, wrong: bytes) -> bytes:
        """This answer's bytes: every ``wrong_every``-th answer (of this process) is the wrong one."""
        if not self.wrong_every:
            return right
        self._count += 1
        return wrong if self._count % self.wrong_every == 0 else right


class Behaviour:
    """How long to hold each request, and the record of what was meant and what was done."""

    def __init__(self, delay_ms: float, slow_every: int = 0, slow_ms: float = 0.0) -> None:
        self.delay_s = delay_ms / 1000.0
        self.slow_every = slow_every
        self.slow_s = slow_ms / 1000.0
        self._counts: dict[str, int] = {}
        self.intended = LatencyBook()  # the delay each request was meant to get: the truth
        self.held = LatencyBook()  # how long the server really held it

    def next_delay(self, transport: str) -> float:
        """Seconds to hold the next request of ``transport`` (each transport has its own count)."""
        count = self._counts[transport] = self._counts.get(transport, 0) + 1
        if self.slow_every and count % self.slow_every == 0:
            return self.slow_s
        return self.delay_s

    def record(self, model: str, transport: str, intended_s: float, held_s: float) -> None:
        self.intended.record(model, transport, ENDPOINT, intended_s * 1e6)
        self.held.record(model, transport, ENDPOINT, held_s * 1e6)

    def clear(self) -> None:
        self.intended.clear()
        self.held.clear()
        self._counts.clear()

    def to_wire(self) -> dict[str, Any]:
        return {"intended": self.intended.to_wire(), "held": self.held.to_wire()}


class PreciseTimer:
    """Runs callbacks at ``time.monotonic()`` deadlines to within a few microseconds.

    asyncio's and uvloop's timers round up to whole milliseconds. A ``timerfd``
    armed ``spin`` seconds before the earliest deadline and watched by the
    loop wakes it in time, and the loop then spins to the deadline (a
    VM's idle CPU takes 0.1-0.6 ms to wake: sleeping to the deadline itself
    would deliver late). The spin blocks the loop for at most ``spin`` per
    deadline, and for at most ``SPIN_BUDGET`` of any second (beyond that,
    deadlines are slept to, and may be met late). Without timerfd it falls
    back to ``loop.call_at``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, spin: float = DEFAULT_SPIN_US / 1e6) -> None:
        self._loop = loop
        self.spin = max(spin, 0.0)
        self._budget = SpinBudget(SPIN_BUDGET)  # spinning is capped at SPIN_BUDGET of each second
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._counter = itertools.count()
        self._timer: TimerFd | None = None
        self._armed: float | None = None
        self._fallback: asyncio.TimerHandle | None = None
        if TimerFd.available():
            with contextlib.suppress(OSError):
                self._timer = TimerFd()
        if self._timer is not None:
            loop.add_reader(self._timer.fd, self._fire)

    @property
    def precise(self) -> bool:
        return self._timer is not None

    def call_at(self, due: float, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop at ``due`` (monotonic seconds), not before."""
        heapq.heappush(self._heap, (due, next(self._counter), callback, args))
        wake = due - self.spin
        if self._armed is None or wake < self._armed:
            self._arm(wake)

    def wait_until(self, due: float) -> asyncio.Future:
        future = self._loop.create_future()
        self.call_at(due, _resolve, future)
        return future

    def _arm(self, wake: float) -> None:
        self._armed = wake
        if self._timer is not None:
            self._timer.arm(wake)
            return
        if self._fallback is not None:
            self._fallback.cancel()
        self._fallback = self._loop.call_at(self._loop.time() + (wake - time.monotonic()), self._fire)

    def _may_spin(self, now: float) -> bool:
        return self.spin > 0 and self._budget.allows(now)

    def _fire(self) -> None:
        if self._timer is not None:
            self._timer.consume()
        self._armed = None
        heap = self._heap
        while heap:
            due = heap[0][0]
            now = time.monotonic()
            if due > now:
                if due > now + self.spin or not self._may_spin(now):
                    break
                self._budget.spin_until(due)
            _, _, callback, args = heapq.heappop(heap)
            try:
                callback(*args)
            except Exception:  # one broken answer must not stop the others
                log.exception("delay server callback failed")
        if heap:
            due = heap[0][0]
            self._arm(due - self.spin if self._may_spin(time.monotonic()) else due)

    def close(self) -> None:
        if self._timer is not None:
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
        if self._fallback is not None:
            self._fallback.cancel()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


# ------------------------------------------------------------------ sockets


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


# ---------------------------------------------------------------------- REST

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


# ---------------------------------------------------------------------- gRPC

GRPC_SERVICE = "inference.GRPCInferenceService"
_GRPC_PREFIX = f"/{GRPC_SERVICE}/"


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


# ---------------------------------------------------------------------- main


async def serve(args: argparse.Namespace, announce: Callable[[dict[str, Any]], None]) -> None:
    loop = asyncio.get_running_loop()
    mode = "rest" if args.no_grpc else args.serve
    answers = Answers(wrong_every=args.wrong_every)
    behaviour = Behaviour(args.delay_ms, args.slow_every, args.slow_ms)
    timer = PreciseTimer(loop, args.spin_us / 1e6)
    app = RestApp(answers, behaviour, timer, infer=mode in ("both", "rest"))
    rest = serve_stamped(loop, args.rest_port, lambda: RestProtocol(app))
    control_port = rest.getsockname()[1]
    grpc_server = None
    grpc_port = None
    if mode in ("both", "grpc"):
        grpc_app = GrpcApp(answers)
        grpc_server = serve_stamped(loop, args.grpc_port, lambda: GrpcProtocol(grpc_app, behaviour, timer))
        grpc_port = grpc_server.getsockname()[1]
    announce({"rest_port": control_port if app.infer else None, "grpc_port": grpc_port,
              "control_port": control_port, "pid": os.getpid(), "precise_timer": timer.precise,
              "loop": type(loop).__module__.split(".")[0]})

    stop = asyncio.Event()
    loop.call_later(args.max_seconds, stop.set)
    if args.watch_stdin:
        loop.run_in_executor(None, _wait_for_eof, loop, stop)
    await stop.wait()
    stop_serving(loop, rest)
    timer.close()
    if grpc_server is not None:
        stop_serving(loop, grpc_server)


def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    loop.call_soon_threadsafe(stop.set)


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop unless asked for asyncio's own loop (or uvloop is missing and "auto" was asked)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fakes.delay_server", description=__doc__.split("\n")[0])
    p.add_argument("--delay-ms", type=float, default=5.0, help="how long each inference is held")
    p.add_argument("--slow-every", type=int, default=0,
                   help="every N-th inference (per transport) is held --slow-ms instead")
    p.add_argument("--slow-ms", type=float, default=20.0)
    p.add_argument("--wrong-every", type=int, default=0, help="every N-th answer is wrong (1: all)")
    p.add_argument("--serve", choices=MODES, default="both",
                   help="what this process serves; 'grpc' keeps a REST port for /_delay/* only")
    p.add_argument("--no-grpc", action="store_true", help="serve REST only (same as --serve rest)")
    p.add_argument("--spin-us", type=float, default=DEFAULT_SPIN_US,
                   help="wake this long before each deadline and spin to it (0: sleep to it)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop; auto: uvloop when installed")
    p.add_argument("--rest-port", type=int, default=0, help="0: a free port")
    p.add_argument("--grpc-port", type=int, default=0, help="0: a free port")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after this long")
    p.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes (used by DelayServer)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("delay_ms", "slow_ms", "spin_us"):
        if getattr(args, name) < 0:
            print(f"error: --{name.replace('_', '-')} must be 0 or more", file=sys.stderr)
            return 2

    def announce(ports: dict[str, Any]) -> None:
        print(json.dumps(ports), flush=True)

    factory = _loop_factory(args.loop)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args, announce))
    return 0


# ------------------------------------------------------------ Python handle


class _Child:
    """One delay-server process: started, its announcement read, stopped."""

    def __init__(self, args: list[str]) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "fakes.delay_server", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, cwd=root, env=env,
        )
        self.info: dict[str, Any] = {}

    def announcement(self, timeout: float) -> dict[str, Any]:
        import selectors

        process = self.process
        assert process is not None and process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"the delay server did not start within {timeout:.0f}s")
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            self.stderr.seek(0)
            err = self.stderr.read().decode(errors="replace")
            raise RuntimeError(f"the delay server exited while starting:\n{err[-2000:]}")
        self.info = json.loads(line)
        return self.info

    @property
    def control_url(self) -> str:
        return f"http://{LOOPBACK}:{self.info['control_port']}"

    def close_stdin(self) -> None:
        """Ask it to stop (it exits when its stdin closes)."""
        if self.process is not None and self.process.stdin and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def stop(self) -> None:
        self.close_stdin()
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()
        self.stderr.close()


class DelayServer:
    """Runs the delay server as child processes on free loopback ports (a context manager).

    REST and gRPC get a process each (``separate=True``, the default), so that
    neither the load generator nor the other transport shares their GIL and
    loop; ``separate=False`` serves both from one process.
    """

    def __init__(self, delay_ms: float = 5.0, *, slow_every: int = 0, slow_ms: float = 20.0,
                 wrong_every: int = 0, grpc: bool = True, separate: bool = True,
                 spin_us: float = DEFAULT_SPIN_US, max_seconds: float = DEFAULT_MAX_SECONDS,
                 startup_timeout: float = 60.0) -> None:
        self.args = ["--delay-ms", str(delay_ms), "--slow-every", str(slow_every), "--slow-ms", str(slow_ms),
                     "--wrong-every", str(wrong_every), "--spin-us", str(spin_us),
                     "--max-seconds", str(max_seconds), "--watch-stdin"]
        self.modes = (["rest", "grpc"] if separate else ["both"]) if grpc else ["rest"]
        self.startup_timeout = startup_timeout
        self.children: list[_Child] = []
        self.rest_port: int | None = None
        self.grpc_port: int | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def pids(self) -> dict[str, int]:
        """Process id per transport ("rest", "grpc")."""
        out = {}
        for child in self.children:
            for transport in ("rest", "grpc"):
                if child.info.get(f"{transport}_port"):
                    out[transport] = int(child.info["pid"])
        return out

    def start(self) -> DelayServer:
        try:
            # all start at once (each loads the oracle), then each announces its ports
            self.children = [_Child([*self.args, "--serve", mode]) for mode in self.modes]
            for child in self.children:
                info = child.announcement(self.startup_timeout)
                self.rest_port = info["rest_port"] or self.rest_port
                self.grpc_port = info["grpc_port"] or self.grpc_port
        except BaseException:
            self.stop()
            raise
        return self

    def _stats(self) -> tuple[LatencyBook, LatencyBook]:
        intended, held = LatencyBook(), LatencyBook()
        for child in self.children:
            with urllib.request.urlopen(child.control_url + "/_delay/stats", timeout=10) as response:
                wire = json.loads(response.read())
            intended.merge(LatencyBook.from_wire(wire["intended"]))
            held.merge(LatencyBook.from_wire(wire["held"]))
        return intended, held

    def truth(self) -> LatencyBook:
        """The truth: the delay each answered inference was meant to get (microseconds)."""
        return self._stats()[0]

    def held(self) -> LatencyBook:
        """How long the server really held each answered inference (microseconds)."""
        return self._stats()[1]

    def stats(self) -> tuple[LatencyBook, LatencyBook]:
        """``(truth(), held())`` in one go."""
        return self._stats()

    def reset(self) -> None:
        for child in self.children:
            request = urllib.request.Request(child.control_url + "/_delay/reset", data=b"", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass

    def stop(self) -> None:
        children, self.children = self.children, []
        for child in children:  # all at once, then wait for each
            child.close_stdin()
        for child in children:
            child.stop()

    def __enter__(self) -> DelayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
