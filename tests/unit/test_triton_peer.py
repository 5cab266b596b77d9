"""The Triton peer's pure parts: command substitution, the virtualenv stamp, stopping a tree by pids."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from peers.triton import PeerError, process
from peers.triton.__main__ import _parse, command_env, substitute
from peers.triton.peer import Addresses, check_artifacts
from peers.triton.venv import STAMP_NAME, ensure_venv, expected_stamp, stamp_matches

ADDRESSES = Addresses(rest="http://127.0.0.1:8000", grpc="127.0.0.1:8001", metrics="http://127.0.0.1:8002/metrics")


# ------------------------------------------------------------------ the command line


def test_substitute_replaces_the_placeholders_inside_arguments() -> None:
    command = ["pytest", "--target-url", "{rest}", "--grpc-target={grpc}", "{metrics}/x", "{other}", "-k",
               "rest"]
    assert substitute(command, ADDRESSES) == [
        "pytest", "--target-url", "http://127.0.0.1:8000", "--grpc-target=127.0.0.1:8001",
        "http://127.0.0.1:8002/metrics/x", "{other}", "-k", "rest",
    ]


def test_command_env_names_the_addresses() -> None:
    env = command_env(ADDRESSES, base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "TRITON_REST_URL": "http://127.0.0.1:8000",
                   "TRITON_GRPC_TARGET": "127.0.0.1:8001", "TRITON_METRICS_URL": "http://127.0.0.1:8002/metrics"}


def test_run_takes_the_command_after_the_double_dash() -> None:
    args = _parse(["run", "--venv", "/v", "--stack-mb", "64", "--", "pytest", "--target-url", "{rest}"])
    assert (args.venv, args.stack_mb, args.command) == (Path("/v"), 64, ["pytest", "--target-url", "{rest}"])


def test_run_without_a_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        _parse(["run", "--"])


def test_missing_artifacts_say_how_to_build_them(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match=r"python -m reference train"):
        check_artifacts(tmp_path)


# ------------------------------------------------------------------ the virtualenv stamp


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("numpy==1.26.4\n")
    return path


def _fake_venv(path: Path, stamp: object) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").touch()
    (path / "pyvenv.cfg").touch()
    (path / STAMP_NAME).write_text(stamp if isinstance(stamp, str) else json.dumps(stamp))
    return path


def test_stamp_records_the_interpreter_and_the_pins(requirements: Path) -> None:
    stamp = expected_stamp(requirements, Path(sys.executable))
    assert stamp["python"] == sys.executable
    assert stamp["python_version"] == sys.version.split()[0]
    requirements.write_text("numpy==1.26.3\n")
    changed = expected_stamp(requirements, Path(sys.executable))
    assert changed["requirements_sha256"] != stamp["requirements_sha256"]


def test_stamp_matches_only_the_same_build(tmp_path: Path, requirements: Path) -> None:
    expected = expected_stamp(requirements, Path(sys.executable))
    venv = _fake_venv(tmp_path / "venv", expected)
    assert stamp_matches(venv, expected)
    assert not stamp_matches(venv, {**expected, "requirements_sha256": "0" * 64})
    assert not stamp_matches(venv, {**expected, "python_version": "3.11.0"})
    assert not stamp_matches(_fake_venv(tmp_path / "corrupt", "{not json"), expected)
    (venv / "bin" / "python").unlink()
    assert not stamp_matches(venv, expected)


def test_a_matching_venv_is_reused_without_uv(tmp_path: Path, requirements: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    python = Path(sys.executable)
    venv = _fake_venv(tmp_path / "venv", expected_stamp(requirements, python))

    def no_uv() -> str:
        raise AssertionError("uv must not run for a matching venv")

    monkeypatch.setattr("peers.triton.venv.find_uv", no_uv)
    built = ensure_venv(venv, requirements, python)
    assert built.reused and built.python == venv / "bin" / "python"


def test_a_folder_that_is_not_a_venv_is_never_cleared(tmp_path: Path, requirements: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "precious.txt").write_text("keep")
    monkeypatch.setattr("peers.triton.venv.find_uv", lambda: pytest.fail("uv must not run"))
    with pytest.raises(PeerError, match="not a virtualenv"):
        ensure_venv(tmp_path, requirements, Path(sys.executable))
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_a_missing_interpreter_is_one_clear_error(tmp_path: Path, requirements: Path) -> None:
    with pytest.raises(PeerError, match=r"/nonexistent/python3\.11 is missing"):
        ensure_venv(tmp_path / "venv", requirements, Path("/nonexistent/python3.11"))


# ------------------------------------------------------------------ stopping a tree by pids


def _children(pid: int, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 10
    while len(found := process.descendants(pid)) < count:
        assert time.monotonic() < deadline, f"{pid} never had {count} children"
        time.sleep(0.02)
    return found


@pytest.fixture
def tree() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for popen in started:  # whatever a failing test left
        process.stop_tree(popen.pid, (), grace_s=0.1)
        popen.wait(timeout=5)


def test_stop_tree_stops_the_server_then_the_root(tree: list[subprocess.Popen[bytes]]) -> None:
    root = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 301 & wait"])
    tree.append(root)
    sleeps = _children(root.pid, 2)
    assert sorted(p.name() for p in sleeps) == ["sleep", "sleep"]
    killed = process.stop_tree(root.pid, ("sleep",), grace_s=5)
    assert killed == []  # SIGTERM was enough
    assert root.wait(timeout=5) is not None
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in sleeps)


def test_stop_tree_kills_what_ignores_sigterm(tree: list[subprocess.Popen[bytes]]) -> None:
    root = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300 & wait"])  # the sleep inherits SIG_IGN
    tree.append(root)
    (sleep,) = _children(root.pid, 1)
    started = time.monotonic()
    killed = process.stop_tree(root.pid, ("sleep",), grace_s=0.3)
    assert sleep.pid in {p.pid for p in killed}
    assert time.monotonic() - started < 5
    root.wait(timeout=5)  # bash ends once its sleep is killed (or is killed itself)
    assert not sleep.is_running() or sleep.status() == psutil.STATUS_ZOMBIE


def test_stop_tree_stops_known_processes_that_left_the_tree(tree: list[subprocess.Popen[bytes]]) -> None:
    root = subprocess.Popen(["bash", "-c", "sleep 300 & wait"])
    tree.append(root)
    (sleep,) = _children(root.pid, 1)
    root.kill()  # the root dies by SIGKILL: its server is re-parented and outlives it
    root.wait(timeout=5)
    assert sleep.is_running()
    process.stop_tree(root.pid, ("sleep",), known=[sleep], grace_s=5)
    assert not sleep.is_running() or sleep.status() == psutil.STATUS_ZOMBIE
