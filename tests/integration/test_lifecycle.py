"""The reference deployment's lifecycle with real MLServer processes on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from oip.names import LOOPBACK
from reference.errors import ConfigError, ServerStartError
from reference.paths import MODELS_DIR, REPO_ROOT
from reference.server import ReferenceServer, port_in_use

LOOPBACK_ADDRESSES = {LOOPBACK, f"::ffff:{LOOPBACK}"}
POLL_S = 0.05


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(POLL_S)
    return False


def _listening_addresses(pid: int) -> set[tuple[str, int]]:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {
        (c.laddr.ip, c.laddr.port)
        for p in procs
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def test_two_deployments_side_by_side_on_loopback_only():
    a, b = ReferenceServer(ports="free"), ReferenceServer(ports="free")
    # As `with a, b:`, but both start at once: leaving the block stops both (stop() is idempotent).
    with contextlib.ExitStack() as stack:
        stack.callback(a.stop)
        stack.callback(b.stop)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ReferenceServer.start, (a, b)))
        for server in (a, b):
            addresses = _listening_addresses(server.mlserver_pid)
            assert {ip for ip, _ in addresses} <= LOOPBACK_ADDRESSES, addresses
            ports = {port for _, port in addresses}
            e = server.endpoints
            assert {e.http_port, e.grpc_port, e.metrics_port} <= ports
            assert {m.name for m in server.models} == {"mnist-svm", "mushroom-xgboost"}
            assert server.log_path.is_file()
        pgids = [a.mlserver_pid, b.mlserver_pid]
    assert all(_group_gone(p, timeout=5) for p in pgids)


def test_exception_inside_the_block_still_stops_the_server():
    with pytest.raises(RuntimeError), ReferenceServer(ports="free") as server:
        pgid = server.mlserver_pid
        raise RuntimeError("boom")
    assert _group_gone(pgid, timeout=5)


def test_port_in_use_is_reported_before_starting():
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ReferenceServer(ports={"http_port": port})
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use"):
            server.start()
        assert server.run_dir is None  # nothing was started


def test_model_that_fails_to_load_fails_fast_with_log_tail(tmp_path):
    for name in ("mnist-svm", "mushroom-xgboost"):
        shutil.copytree(MODELS_DIR / name, tmp_path / name)
    (tmp_path / "mnist-svm" / "model.joblib").write_bytes(b"not a joblib file")
    server = ReferenceServer(models_dir=tmp_path, ports="free", startup_timeout=90)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="exited with code") as info:
        server.start()
    assert time.monotonic() - started < 60
    assert "last lines of" in str(info.value)
    assert not server.running
    pgid = server.mlserver_pid
    assert pgid is None or _group_gone(pgid, timeout=5)


def test_unparseable_model_settings_is_a_config_error(tmp_path):
    shutil.copytree(MODELS_DIR / "mnist-svm", tmp_path / "mnist-svm")
    (tmp_path / "mnist-svm" / "model-settings.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ReferenceServer(models_dir=tmp_path, ports="free").start()


SIGNALS = {s.name: s for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)}
REST_LINE = re.compile(rf"REST\s+http://{re.escape(LOOPBACK)}:(\d+)")


def _as_from_a_terminal() -> None:
    """A shell gives a command SIGINT at its default; a test runner started in the background (tox under
    `cmd &`, a CI step) may pass on an ignored SIGINT, and Ctrl-C could then not be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _launch_cli_server() -> subprocess.Popen:
    """`python -m reference serve --free-ports`, as a user starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "reference", "serve", "--free-ports"],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_as_from_a_terminal,
    )


def _serving(proc: subprocess.Popen) -> tuple[int, int]:
    """Once ``proc`` says it serves: MLServer's pgid and REST port."""
    log_path = rest_port = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (log_path is None or rest_port is None):
        line = proc.stdout.readline()
        if not line:
            break
        if m := REST_LINE.search(line):
            rest_port = int(m.group(1))
        if m := re.search(r"log\s+(\S+)", line):
            log_path = Path(m.group(1))
    assert log_path is not None and rest_port is not None, "serve did not come up"
    pgid = int((log_path.parent / "mlserver.pid").read_text())
    return pgid, rest_port


@pytest.fixture(scope="module", autouse=True)
def cli_servers(request: pytest.FixtureRequest) -> Iterator[dict[str, subprocess.Popen]]:
    """One harness per selected signal test, all started with the module: they come up while the
    tests above run (single-server tests that leave a core idle); each signal test then waits for its own."""
    selected = [item.callspec.id for item in request.session.items if item.path == request.path
                and getattr(item, "originalname", None) == test_no_server_outlives_the_harness.__name__]
    procs = {name: _launch_cli_server() for name in SIGNALS if name in selected}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:  # its test did not get to signal it: stop it as Ctrl-C would
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()


@pytest.mark.parametrize("sig", list(SIGNALS.values()), ids=list(SIGNALS))
def test_no_server_outlives_the_harness(sig, cli_servers):
    proc = cli_servers[sig.name]
    pgid, rest_port = _serving(proc)
    assert port_in_use(rest_port)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _group_gone(pgid), f"MLServer group {pgid} still alive after the harness got {sig!r}"
    deadline = time.monotonic() + 10
    while port_in_use(rest_port) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert not port_in_use(rest_port)
