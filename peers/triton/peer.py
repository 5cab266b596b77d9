"""One Triton peer: start ``serve.py`` in the peer virtualenv on free loopback ports, wait, stop.

::

    with TritonPeer(venv.python) as peer:
        peer.addresses.rest   # http://127.0.0.1:PORT
        peer.addresses.grpc   # 127.0.0.1:PORT

The peer runs in a session of its own (a Ctrl-C in the terminal reaches only the
CLI, which then stops it) and gets SIGTERM if the CLI dies (``--die-with-parent``).
Its folder, ``.harness/triton-<UTC time>-<pid>/``, holds ``peer.log`` (PyTriton's
output), ``triton.log`` (tritonserver's log) and ``ready.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import psutil

from peers.triton import process
from peers.triton.errors import PeerError
from reference.paths import MODELS_DIR, RUNTIME_DIR
from reference.server import free_ports, tail

SERVE_PY = Path(__file__).with_name("serve.py")
SERVER_NAMES = ("tritonserver",)
ARTIFACTS = ("mnist-svm/model.joblib", "mushroom-xgboost/model.json")
DEFAULT_STARTUP_TIMEOUT_S = 120.0
POLL_S = 0.2
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Addresses:
    rest: str
    grpc: str
    metrics: str


class TritonPeer:
    """Triton serving the seed's artifacts, in its own process tree, stopped by pids."""

    def __init__(self, python: Path, models_dir: Path = MODELS_DIR, log_dir: Path | None = None,
                 startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
                 stop_grace_s: float = process.DEFAULT_GRACE_S, stack_mb: int = 0) -> None:
        self.python = python.absolute()  # the peer runs in its log folder
        self.models_dir = models_dir
        self.log_dir = log_dir or RUNTIME_DIR / f"triton-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.stack_mb = stack_mb
        self.addresses: Addresses | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._known: list[psutil.Process] = []
        self._workspace: Path | None = None

    def __enter__(self) -> TritonPeer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def started(self) -> bool:
        """A peer process was started and not yet stopped."""
        return self._proc is not None

    @property
    def running(self) -> bool:
        """The peer and its tritonserver still run (False after a crash of either)."""
        return self._proc is not None and self._proc.poll() is None and bool(self.tritonserver_pids)

    @property
    def tritonserver_pids(self) -> list[int]:
        """The pids of the tritonserver processes below the peer now."""
        if self._proc is None:
            return []
        return [p.pid for p in process.named(process.descendants(self._proc.pid), SERVER_NAMES)]

    def start(self) -> Addresses:
        """Start the peer and wait until Triton answers ready; raises :class:`PeerError`."""
        check_artifacts(self.models_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        http_port, grpc_port, metrics_port = free_ports(3)
        ready_file = self.log_dir / "ready.json"
        ready_file.unlink(missing_ok=True)
        command = [
            str(self.python), str(SERVE_PY), "--models-dir", str(self.models_dir.resolve()),
            "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
            "--log-file", str(self.log_dir / "triton.log"), "--ready-file", str(ready_file),
            "--stack-mb", str(self.stack_mb), "--die-with-parent",
        ]
        started = time.monotonic()
        with open(self.log_dir / "peer.log", "wb") as log:
            try:
                self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, cwd=self.log_dir,
                                              start_new_session=True)
            except OSError as exc:
                raise PeerError(f"cannot start the Triton peer with {self.python}: {exc}") from None
        try:
            self.addresses = self._wait_ready(ready_file, f"http://{HOST}:{http_port}", started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._known = process.descendants(self._proc.pid)
        return self.addresses

    def stop(self) -> list[int]:
        """Stop tritonserver by its pid, then the peer, then what is left of its tree; returns killed pids."""
        if self._proc is None:
            return []
        proc, self._proc = self._proc, None
        killed = process.stop_tree(proc.pid, SERVER_NAMES, known=self._known, grace_s=self.stop_grace_s)
        self._known = []
        try:
            proc.wait(timeout=process.KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._remove_workspace()
        return [p.pid for p in killed]

    def _remove_workspace(self) -> None:
        """PyTriton removes its workspace (a 30 MB copy of tritonserver) on a clean stop, not when killed."""
        workspace, self._workspace = self._workspace, None
        if workspace is not None and workspace.name.startswith("workspace_") and workspace.is_dir():
            shutil.rmtree(workspace, ignore_errors=True)

    def _wait_ready(self, ready_file: Path, rest: str, started: float) -> Addresses:
        assert self._proc is not None
        deadline = started + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PeerError(f"the Triton peer exited with {self._proc.returncode} before it was ready "
                                f"(logs in {self.log_dir}):\n{self._log_tail()}")
            if ready_file.exists() and _http_ok(f"{rest}/v2/health/ready"):
                info = json.loads(ready_file.read_text())
                self._workspace = Path(info["workspace"]) if info.get("workspace") else None
                return Addresses(rest=info["rest"], grpc=info["grpc"], metrics=info["metrics"])
            time.sleep(POLL_S)
        raise PeerError(f"Triton did not become ready in {self.startup_timeout_s:.0f} s "
                        f"(logs in {self.log_dir}):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        parts = [f"--- {name}\n{text}" for name in ("peer.log", "triton.log")
                 if (text := tail(self.log_dir / name, 15))]
        return "\n".join(parts) or "(no log written)"


def check_artifacts(models_dir: Path) -> None:
    missing = [a for a in ARTIFACTS if not (models_dir / a).is_file()]
    if missing:
        raise PeerError(f"{', '.join(str(models_dir / a) for a in missing)} missing: "
                        "build the seed's artifacts first with `python -m reference train`")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
