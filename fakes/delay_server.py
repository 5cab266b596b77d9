"""A minimal V2 stand-in that answers after a known delay, with the oracle's predictions.

Used to check the load harness's own measurements: it serves ``mnist-svm`` and
``mushroom-xgboost`` over REST (HTTP/1.1 keep-alive) and gRPC on 127.0.0.1,
holds each inference request for ``--delay-ms`` (every ``--slow-every``-th one
for ``--slow-ms`` instead, to give the distribution a known tail), answers
with the in-process oracle's prediction for the rows it received, and records
the time it held each request in a microsecond HDR histogram (the *truth* a
client's figures are compared with: ``GET /_delay/stats``).

Deliberate faults for tests: ``--wrong-every N`` returns a wrong prediction in
every N-th answer; ``--no-grpc`` serves REST only.

    python -m fakes.delay_server --delay-ms 5            # prints {"rest_port": ..., "grpc_port": ...}

or from Python (a child process, stopped on exit)::

    with DelayServer(delay_ms=5) as server:
        server.rest_url, server.grpc_target, server.truth()

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
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # `python fakes/delay_server.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests._schedule import TimerFd  # noqa: E402
from oip.codec import (  # noqa: E402
    build_infer_response,
    inputs_from_grpc_request,
    inputs_from_json_request,
    to_json_tensor,
)
from oip.errors import CodecError  # noqa: E402
from reporting.latency import LatencyBook  # noqa: E402

LOOPBACK = "127.0.0.1"
DEFAULT_MAX_SECONDS = 900.0
ENDPOINT = "infer"


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

    def predict(self, model: str, rows: np.ndarray) -> np.ndarray:
        spec = self.specs[model]
        rows = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        table = self._table[model]
        values = [table.get(row.tobytes()) for row in rows]
        if any(v is None for v in values):
            values = list(self._oracle.predict(model, rows))
        dtype = np.int64 if spec.output_datatype == "INT64" else np.float32
        out = np.asarray(values, dtype=dtype).reshape(-1, 1)
        self._count += 1
        if self.wrong_every and self._count % self.wrong_every == 0:
            out = (out + 1) % 10 if dtype == np.int64 else (1.0 - out).astype(np.float32)
        return out


class Behaviour:
    """How long to hold each request, and the record of how long each was held."""

    def __init__(self, delay_ms: float, slow_every: int = 0, slow_ms: float = 0.0) -> None:
        self.delay_s = delay_ms / 1000.0
        self.slow_every = slow_every
        self.slow_s = slow_ms / 1000.0
        self._count = 0
        self.book = LatencyBook()
        self.timer: PreciseTimer = None  # type: ignore[assignment]  # set in serve(), inside the loop

    def next_delay(self) -> float:
        self._count += 1
        if self.slow_every and self._count % self.slow_every == 0:
            return self.slow_s
        return self.delay_s


class PreciseTimer:
    """Wakes asyncio futures at ``time.monotonic()`` deadlines to ~0.1 ms.

    asyncio's own timers fire up to ~1 ms late (epoll's millisecond timeout);
    a ``timerfd`` armed for the earliest deadline and watched by the loop is
    precise and costs nothing while idle. Without timerfd it falls back to
    ``loop.call_at``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future]] = []
        self._counter = itertools.count()
        self._timer: TimerFd | None = TimerFd() if TimerFd.available() else None
        self._armed: float | None = None
        if self._timer is not None:
            loop.add_reader(self._timer.fd, self._fire)

    def wait_until(self, due: float) -> asyncio.Future:
        future = self._loop.create_future()
        if self._timer is None:
            self._loop.call_at(self._loop.time() + (due - time.monotonic()), _resolve, future)
            return future
        heapq.heappush(self._heap, (due, next(self._counter), future))
        if self._armed is None or due < self._armed:
            self._armed = due
            self._timer.arm(due)
        return future

    def _fire(self) -> None:
        assert self._timer is not None
        self._timer.consume()
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _resolve(heapq.heappop(self._heap)[2])
        self._armed = self._heap[0][0] if self._heap else None
        if self._armed is not None:
            self._timer.arm(self._armed)

    def close(self) -> None:
        if self._timer is not None:
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def _hold(behaviour: Behaviour, received: float) -> None:
    """Hold the request until ``received + delay``."""
    await behaviour.timer.wait_until(received + behaviour.next_delay())


# ---------------------------------------------------------------------- REST

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}


def _http_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": message}).encode()


class RestApp:
    def __init__(self, answers: Answers, behaviour: Behaviour) -> None:
        self.answers = answers
        self.behaviour = behaviour

    def _model_of(self, path: str) -> tuple[str | None, str | None, str]:
        """(model, version, suffix) of /v2/models/{m}[/versions/{v}]{suffix}."""
        parts = path.split("/")
        if len(parts) < 4 or parts[1:3] != ["v2", "models"]:
            return None, None, ""
        model, rest = parts[3], parts[4:]
        version = None
        if rest[:1] == ["versions"] and len(rest) >= 2:
            version, rest = rest[1], rest[2:]
        return model, version, "/" + "/".join(rest) if rest else ""

    async def handle(self, method: str, path: str, body: bytes, received: float) -> tuple[int, bytes]:
        if path == "/_delay/stats":
            return 200, json.dumps(self.behaviour.book.to_wire()).encode()
        if path == "/_delay/reset" and method == "POST":
            self.behaviour.book.clear()
            return 200, b"{}"
        if path in ("/v2/health/live", "/v2/health/ready"):
            return 200, b""
        model, version, suffix = self._model_of(path)
        if model is None:
            return _error(404, f"no route {path}")
        if model not in self.answers.specs:
            return _error(404, f"Model {model} not found")
        if version is not None and version != self.answers.specs[model].version:
            return _error(404, f"Model {model} with version {version} not found")
        if suffix == "/ready":
            return 200, b""
        if suffix != "/infer" or method != "POST":
            return _error(404, f"no route {method} {path}")
        try:
            request = json.loads(body)
            inputs = inputs_from_json_request(request)
            rows = next(iter(inputs.values()))
            prediction = self.answers.predict(model, rows)
        except (ValueError, CodecError, StopIteration) as exc:
            return _error(400, f"bad request: {exc}")
        spec = self.answers.specs[model]
        response = {
            "model_name": model,
            "model_version": spec.version,
            "id": request.get("id", ""),
            "parameters": {},
            "outputs": [to_json_tensor(spec.output_name, prediction, spec.output_datatype)],
        }
        payload = json.dumps(response, separators=(",", ":")).encode()
        await _hold(self.behaviour, received)
        self.behaviour.book.record(model, "rest", ENDPOINT, (time.monotonic() - received) * 1e6)
        return 200, payload

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                received = time.monotonic()
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, _ = lines[0].split(" ", 2)
                except ValueError:
                    writer.write(_http_response(400, b""))
                    return
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                if length:
                    received = time.monotonic()
                status, payload = await self.handle(method, target.split("?", 1)[0], body, received)
                writer.write(_http_response(status, payload))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


# ---------------------------------------------------------------------- gRPC


def _grpc_servicer(answers: Answers, behaviour: Behaviour) -> Any:
    import grpc

    from oip._pb import pb, pb_grpc

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.ServerReadyResponse(ready=True)

        async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
            spec = answers.specs.get(request.name)
            if spec is None or request.version not in ("", spec.version):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.name} not found")
            return pb.ModelReadyResponse(ready=True)

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
            received = time.monotonic()
            spec = answers.specs.get(request.model_name)
            if spec is None or request.model_version not in ("", spec.version):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.model_name} not found")
            try:
                rows = next(iter(inputs_from_grpc_request(request).values()))
                prediction = answers.predict(spec.name, rows)
            except (CodecError, StopIteration) as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad request: {exc}")
            response = build_infer_response(
                spec.name, {spec.output_name: prediction}, model_version=spec.version, id=request.id,
                datatypes={spec.output_name: spec.output_datatype},
            )
            await _hold(behaviour, received)
            behaviour.book.record(spec.name, "grpc", ENDPOINT, (time.monotonic() - received) * 1e6)
            return response

    return Servicer()


# ---------------------------------------------------------------------- main


async def serve(args: argparse.Namespace, announce: Callable[[dict[str, Any]], None]) -> None:
    answers = Answers(wrong_every=args.wrong_every)
    behaviour = Behaviour(args.delay_ms, args.slow_every, args.slow_ms)
    behaviour.timer = PreciseTimer(asyncio.get_running_loop())
    rest = await asyncio.start_server(RestApp(answers, behaviour).connection, LOOPBACK, args.rest_port,
                                      limit=1 << 24)
    rest_port = rest.sockets[0].getsockname()[1]
    grpc_server = None
    grpc_port = None
    if not args.no_grpc:
        import grpc

        from oip._pb import pb_grpc

        grpc_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(_grpc_servicer(answers, behaviour), grpc_server)
        grpc_port = grpc_server.add_insecure_port(f"{LOOPBACK}:{args.grpc_port}")
        await grpc_server.start()
    announce({"rest_port": rest_port, "grpc_port": grpc_port, "pid": os.getpid()})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(args.max_seconds, stop.set)
    if args.watch_stdin:
        loop.run_in_executor(None, _wait_for_eof, loop, stop)
    await stop.wait()
    rest.close()
    behaviour.timer.close()
    if grpc_server is not None:
        await grpc_server.stop(0.5)


def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    loop.call_soon_threadsafe(stop.set)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fakes.delay_server", description=__doc__.split("\n")[0])
    p.add_argument("--delay-ms", type=float, default=5.0, help="how long each inference is held")
    p.add_argument("--slow-every", type=int, default=0, help="every N-th inference is held --slow-ms instead")
    p.add_argument("--slow-ms", type=float, default=20.0)
    p.add_argument("--wrong-every", type=int, default=0, help="every N-th answer is wrong (1: all)")
    p.add_argument("--no-grpc", action="store_true", help="serve REST only")
    p.add_argument("--rest-port", type=int, default=0, help="0: a free port")
    p.add_argument("--grpc-port", type=int, default=0, help="0: a free port")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after this long")
    p.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes (used by DelayServer)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("delay_ms", "slow_ms"):
        if getattr(args, name) < 0:
            print(f"error: --{name.replace('_', '-')} must be 0 or more", file=sys.stderr)
            return 2

    def announce(ports: dict[str, Any]) -> None:
        print(json.dumps(ports), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, announce))
    return 0


# ------------------------------------------------------------ Python handle


class DelayServer:
    """Runs the delay server as a child process on free loopback ports (a context manager)."""

    def __init__(self, delay_ms: float = 5.0, *, slow_every: int = 0, slow_ms: float = 20.0,
                 wrong_every: int = 0, grpc: bool = True, max_seconds: float = DEFAULT_MAX_SECONDS,
                 startup_timeout: float = 60.0) -> None:
        self.args = ["--delay-ms", str(delay_ms), "--slow-every", str(slow_every), "--slow-ms", str(slow_ms),
                     "--wrong-every", str(wrong_every), "--max-seconds", str(max_seconds), "--watch-stdin"]
        if not grpc:
            self.args.append("--no-grpc")
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self._stderr: Any = None

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self) -> DelayServer:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fakes.delay_server", *self.args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=root, env=env,
        )
        line = self._read_line()
        ports = json.loads(line)
        self.rest_port, self.grpc_port = ports["rest_port"], ports["grpc_port"]
        return self

    def _read_line(self) -> bytes:
        import selectors

        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(self.startup_timeout):
                self.stop()
                raise RuntimeError(f"the delay server did not start within {self.startup_timeout:.0f}s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")
            self.stop()
            raise RuntimeError(f"the delay server exited while starting:\n{err[-2000:]}")
        return line

    def truth(self) -> LatencyBook:
        """What the server measured: how long it held each request (microseconds)."""
        with urllib.request.urlopen(self.rest_url + "/_delay/stats", timeout=10) as response:
            return LatencyBook.from_wire(json.loads(response.read()))

    def reset(self) -> None:
        request = urllib.request.Request(self.rest_url + "/_delay/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()
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
        self._stderr.close()

    def __enter__(self) -> DelayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
