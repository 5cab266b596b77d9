"""The one runner of ``locust -f loadtests/ --headless`` as a subprocess (benchmarks and tests).

:func:`run_locust` builds the command line, runs it from the repository root
in a session of its own (so ``--processes`` workers go down with it), bounds it
by a timeout, and reads the run folder it left under ``reports_root``. The
project is installed, so the child needs no ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.affinity import pin_tree
from reference.paths import REPO_ROOT

DEFAULT_TIMEOUT_S = 300.0
KILL_WAIT_S = 10.0
REPORT_FILE = "latency.json"


@dataclass
class LocustRun:
    """How one Locust run ended, and the ``latency.json`` it left (None when it left none)."""

    returncode: int
    stdout: str
    stderr: str
    reports_root: Path
    report: dict[str, Any] | None

    @property
    def run_dir(self) -> Path:
        """The run folder (``<reports_root>/loadtest/latest``, resolved)."""
        return (self.reports_root / "loadtest" / "latest").resolve()

    @property
    def throughput(self) -> float:
        return float((self.report or {}).get("total", {}).get("throughput_rps") or 0.0)

    def series(self, transport: str | None = None) -> list[dict[str, Any]]:
        return [s for s in (self.report or {}).get("series", [])
                if transport is None or s["transport"] == transport]


def locust_command(args: list[str] | tuple[str, ...], reports_root: Path) -> list[str]:
    """The command line: this interpreter's Locust, the harness's locustfiles, headless."""
    return [sys.executable, "-m", "locust", "-f", "loadtests/", "--headless", "--only-summary",
            "--reports-root", str(reports_root), *args]


def _stop_group(process: subprocess.Popen) -> None:
    """SIGKILL the run's whole session (the master and any --processes workers)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(KILL_WAIT_S)


def run_locust(args: list[str] | tuple[str, ...], *, reports_root: Path | None = None,
               timeout: float = DEFAULT_TIMEOUT_S, root: Path | None = None,
               during: Callable[[], Any] | None = None, cpus: set[int] | None = None,
               started: Callable[[subprocess.Popen], Any] | None = None) -> LocustRun:
    """Run ``locust -f loadtests/ --headless ARGS``; raise ``subprocess.TimeoutExpired`` past ``timeout``.

    Its run folder goes under ``reports_root`` (a new temporary folder when
    None). ``root`` is the checkout it runs from (default: this repository;
    ``python -m`` puts it first on the child's ``sys.path``, so another
    checkout's packages are the ones imported). ``during`` is called once the
    run is started (e.g. to kill or stop the target under load). ``cpus``
    pins the run to those CPUs (:mod:`reference.affinity`). ``started`` gets
    the process (e.g. so that another thread can kill its session on Ctrl-C).
    Nothing it started outlives the call.
    """
    reports = Path(reports_root) if reports_root is not None else Path(tempfile.mkdtemp(prefix="locust-"))
    process = subprocess.Popen(locust_command(args, reports), cwd=root or REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if started is not None:
            started(process)
        if cpus:  # before the interpreter is up: every thread and process it starts inherits the set
            pin_tree(process.pid, cpus)
        if during is not None:
            during()
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        _stop_group(process)  # on a timeout, and any worker a finished master left behind
    report_path = reports / "loadtest" / "latest" / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return LocustRun(process.returncode, stdout, stderr, reports, report)
