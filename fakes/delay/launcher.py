"""Runs delay stand-ins as child processes for tests and bench, and reads their records.

The children are ``python -P -m fakes.delay.cli`` with the parent's
environment (the project is installed; ``-P`` keeps the working directory out of
their import path); control calls (stats, reset) go over httpx.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
import tempfile
from typing import Any

import httpx

from oip.clock import TIMER_SPIN_US
from oip.names import LOOPBACK
from reporting.latency import LatencyBook

from . import DEFAULT_MAX_SECONDS

CONTROL_TIMEOUT_S = 10.0


class _Child:
    """One delay-server process: started, its announcement read, stopped."""

    def __init__(self, args: list[str]) -> None:
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-P", "-m", "fakes.delay.cli", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )
        self.info: dict[str, Any] = {}

    def announcement(self, timeout: float) -> dict[str, Any]:
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
                 spin_us: float = TIMER_SPIN_US, max_seconds: float = DEFAULT_MAX_SECONDS,
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

    def _control(self, method: str, path: str) -> list[httpx.Response]:
        """One control call (``/_delay/...``) to every child, outside any timed path."""
        responses = []
        with httpx.Client(timeout=CONTROL_TIMEOUT_S, trust_env=False) as client:
            for child in self.children:
                responses.append(client.request(method, child.control_url + path).raise_for_status())
        return responses

    def _stats(self) -> tuple[LatencyBook, LatencyBook]:
        intended, held = LatencyBook(), LatencyBook()
        for response in self._control("GET", "/_delay/stats"):
            wire = response.json()
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
        self._control("POST", "/_delay/reset")

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
