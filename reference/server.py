"""The reference deployment's lifecycle: start MLServer, wait until it serves, stop it.

One class, :class:`ReferenceServer`, used by ``python -m reference serve``, the
conformance suite, the load tests and the benchmark::

    with ReferenceServer(ports="free") as server:
        httpx.get(server.endpoints.rest_url + "/v2/health/ready")

MLServer runs under :mod:`reference._watchdog`, in a process group of its own,
so it is stopped however the harness ends: normal exit, exception, Ctrl-C,
SIGTERM, or SIGKILL of the harness itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from oip.names import LOOPBACK
from reference.config import DeployedModel, discover_models, load_server_settings, settings_file_for
from reference.errors import ConfigError, ServerStartError
from reference.paths import MODELS_DIR, RUNTIME_DIR

DEFAULT_STARTUP_TIMEOUT_S = 120.0
DEFAULT_STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 25

PortChoice = Literal["settings", "free"]


@dataclass(frozen=True)
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    metrics_path: str = "/metrics"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}{self.metrics_path}"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports the kernel says are free on ``host`` right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def _http_status(client: httpx.Client, host: str, port: int, path: str) -> int | None:
    try:
        return client.get(f"http://{host}:{port}{path}").status_code
    except httpx.HTTPError:
        return None


def _mlserver_command(models_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("mlserver")
    if not script.is_file():
        found = shutil.which("mlserver")
        if found is None:
            raise ConfigError(
                "the `mlserver` command is not installed in this environment: "
                "install the pinned requirements (pip install -r requirements.lock)"
            )
        script = Path(found)
    return [str(script), "start", str(models_dir)]


def _mlserver_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """The environment for MLServer: ours, minus stray MLSERVER_* variables, plus the settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
    for key, value in settings.items():
        if key == "model_repository_root":
            continue  # the command line names the models folder
        env[f"MLSERVER_{key.upper()}"] = value if isinstance(value, str) else _json(value)
    return env


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


_live_servers: weakref.WeakSet[ReferenceServer] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_live_servers):
        server.stop()


class ReferenceServer:
    """One MLServer child process serving ``models_dir`` on loopback.

    ``settings_file`` defaults to ``models_dir/settings.json`` when that file
    exists, else the repository's ``settings.json``.
    ``ports``: ``"settings"`` uses the ports in ``settings_file``; ``"free"`` picks
    free ones (so several can run side by side); an :class:`Endpoints`-like
    mapping ``{"http_port": ..., "grpc_port": ..., "metrics_port": ...}`` sets them.
    ``overrides`` replaces keys of ``settings_file`` (e.g. ``parallel_workers``).
    """

    def __init__(
        self,
        *,
        models_dir: Path = MODELS_DIR,
        settings_file: Path | None = None,
        ports: PortChoice | Mapping[str, int] = "settings",
        overrides: Mapping[str, Any] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace: float = DEFAULT_STOP_GRACE_S,
        runtime_dir: Path = RUNTIME_DIR,
    ) -> None:
        self.models_dir = Path(models_dir).resolve()
        self.settings_file = Path(settings_file) if settings_file else settings_file_for(self.models_dir)
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._ports = ports
        self._overrides = dict(overrides or {})
        self._runtime_dir = runtime_dir
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self.settings: dict[str, Any] = {}
        self.models: list[DeployedModel] = []
        self.endpoints: Endpoints | None = None
        self.run_dir: Path | None = None

    # -- public API -------------------------------------------------------------

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "mlserver.log" if self.run_dir else None

    @property
    def mlserver_pid(self) -> int | None:
        """PID (= process group) of MLServer itself, once started."""
        if self.run_dir is None:
            return None
        try:
            return int((self.run_dir / "mlserver.pid").read_text())
        except (OSError, ValueError):
            return None

    @property
    def pid(self) -> int | None:
        """PID of the process tree that serves (the watchdog, MLServer below it), once started."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ReferenceServer:
        if self._process is not None:
            raise RuntimeError("this ReferenceServer was already started")
        self.settings = self._resolve_settings()
        self.models = discover_models(self.models_dir)
        self.endpoints = self._resolve_endpoints()
        for port in (self.endpoints.http_port, self.endpoints.grpc_port, self.endpoints.metrics_port):
            if port_in_use(port, self.endpoints.host):
                raise ServerStartError(
                    f"port {port} on {self.endpoints.host} is already in use: stop what holds it "
                    f"(another MLServer?) or choose free ports (python -m reference serve --free-ports)"
                )
        self.run_dir = self._new_run_dir()
        shutil.rmtree(self.run_dir / self.settings.get("metrics_dir", ".metrics"), ignore_errors=True)
        self._spawn()
        _live_servers.add(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        """Stop MLServer (SIGTERM, then SIGKILL after the grace period); idempotent."""
        process, self._process = self._process, None
        _live_servers.discard(self)
        if process is None:
            return None
        if process.stdin and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the watchdog's cue to stop MLServer
        try:
            code = process.wait(timeout=self.stop_grace + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        pid = self.mlserver_pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # anything the watchdog could not reap
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------

    def _resolve_settings(self) -> dict[str, Any]:
        settings = load_server_settings(self.settings_file)
        settings.update(self._overrides)
        settings.setdefault("host", LOOPBACK)
        return settings

    def _resolve_endpoints(self) -> Endpoints:
        host = self.settings["host"]
        if self._ports == "free":
            http, grpc, metrics = free_ports(3, host)
        elif self._ports == "settings":
            http = int(self.settings.get("http_port", 8080))
            grpc = int(self.settings.get("grpc_port", 8081))
            metrics = int(self.settings.get("metrics_port", 8082))
        else:
            ports = dict(self._ports)
            http = int(ports.get("http_port") or free_ports(1, host)[0])
            grpc = int(ports.get("grpc_port") or free_ports(1, host)[0])
            metrics = int(ports.get("metrics_port") or free_ports(1, host)[0])
        self.settings.update(http_port=http, grpc_port=grpc, metrics_port=metrics)
        return Endpoints(host, http, grpc, metrics, self.settings.get("metrics_endpoint", "/metrics"))

    def _new_run_dir(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        run_dir = self._runtime_dir / f"{stamp}-{os.getpid()}-{self.endpoints.http_port}"
        run_dir.mkdir(parents=True, exist_ok=False)
        return run_dir

    def _spawn(self) -> None:
        assert self.run_dir is not None
        command = [
            sys.executable, "-m", "reference._watchdog",
            "--parent-pid", str(os.getpid()),
            "--grace", str(self.stop_grace),
            "--pidfile", str(self.run_dir / "mlserver.pid"),
            "--", *_mlserver_command(self.models_dir),
        ]
        env = _mlserver_env(self.settings)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.run_dir,
            env=env,
            start_new_session=True,
        )

    def _failure(self, what: str) -> ServerStartError:
        return ServerStartError(f"{what}; last lines of {self.log_path}:\n{tail(self.log_path)}")

    def _wait_until_ready(self) -> None:
        assert self.endpoints is not None and self._process is not None
        host, port = self.endpoints.host, self.endpoints.http_port
        pending = ["/v2/health/live"] + [
            f"/v2/models/{m.name}" + (f"/versions/{m.version}" if m.version else "") + "/ready"
            for m in self.models
        ]
        deadline = time.monotonic() + self.startup_timeout
        # One client for the whole wait (a new one per probe costs ~50 ms of CPU); loopback
        # never goes through a proxy from the environment.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            self._poll_until_ready(client, host, port, pending, deadline)

    def _poll_until_ready(self, client: httpx.Client, host: str, port: int, pending: list[str],
                          deadline: float) -> None:
        assert self._process is not None
        while pending:
            code = self._process.poll()
            if code is not None:
                raise self._failure(f"MLServer exited with code {code} while starting")
            if time.monotonic() > deadline:
                raise self._failure(
                    f"MLServer was not ready within {self.startup_timeout:.0f}s (waiting on {pending[0]})"
                )
            if _http_status(client, host, port, pending[0]) == 200:
                pending.pop(0)
            else:
                time.sleep(0.1)
