"""`python -m reference` as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from reference.paths import REPO_ROOT
from reference.server import ReferenceServer


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reference", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_train_again_does_no_work():
    result = _run("train")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == 2, result.stdout


def test_smoke_against_a_running_deployment():
    with ReferenceServer(ports="free") as server:
        result = _run("smoke", "--url", server.endpoints.rest_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 2, result.stdout


def test_smoke_against_nothing_is_one_clear_line():
    from reference.server import free_ports

    result = _run("smoke", "--url", f"http://127.0.0.1:{free_ports(1)[0]}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_run_trains_serves_smokes_and_stops():
    result = _run("run", "--free-ports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 2 and "stopped" in result.stdout
