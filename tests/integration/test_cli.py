"""`python -m reference` as a user runs it.

The commands are independent processes: the ``started`` fixture launches those of
the selected tests together at the start of the module (``run`` only once ``train``
has confirmed the artifacts it reads), so they share the machine's cores while the
smoke test starts its deployment; each test then waits for its own command.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oip.names import LOOPBACK
from reference.paths import REPO_ROOT
from reference.server import ReferenceServer

TIMEOUT_S = 180.0


class _Command:
    """``python -m reference *args``, started now; ``result()`` waits for it."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        self._out, self._err = workdir / f"{name}.out", workdir / f"{name}.err"
        with self._out.open("w") as out, self._err.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "reference", *args], cwd=REPO_ROOT,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def result(self, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           self._out.read_text(), self._err.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, _Command]]:
    """The commands of this module's selected tests, launched at once."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items
                if item.path == request.path}
    workdir = tmp_path_factory.mktemp("cli")
    launched: dict[str, _Command] = {}

    def launch(name: str, test, *args: str) -> None:
        if test.__name__ in selected:
            launched[name] = _Command(workdir, name, *args)

    # A port bound but not listening: connections to it are refused for as long as it is held,
    # whatever else picks free ports meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind((LOOPBACK, 0))
        try:
            launch("smoke-nothing", test_smoke_against_nothing_is_one_clear_line,
                   "smoke", "--url", f"http://{LOOPBACK}:{closed.getsockname()[1]}")
            launch("train", test_train_again_does_no_work, "train")
            if "train" in launched:
                launched["train"].result()  # the artifacts are settled before anything loads them
            launch("run", test_run_trains_serves_smokes_and_stops, "run", "--free-ports")
            yield launched
        finally:
            for command in launched.values():
                command.kill()


def _run(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reference", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_train_again_does_no_work(started):
    result = started["train"].result()
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == 2, result.stdout


def test_smoke_against_a_running_deployment(started):
    # `started`: the module's other commands run meanwhile, and train has confirmed the artifacts.
    with ReferenceServer(ports="free") as server:
        result = _run("smoke", "--url", server.endpoints.rest_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 2, result.stdout


def test_smoke_against_nothing_is_one_clear_line(started):
    result = started["smoke-nothing"].result()
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_run_trains_serves_smokes_and_stops(started):
    result = started["run"].result()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 2 and "stopped" in result.stdout
