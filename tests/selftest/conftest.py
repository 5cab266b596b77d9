"""Selftest fixtures: one reference deployment, and a runner of the conformance suite in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reference.paths import REPO_ROOT
from reference.server import ReferenceServer

SUITE_TIMEOUT_S = 300.0


@dataclass
class SuiteRun:
    returncode: int
    output: str
    results: dict[str, Any] | None
    report: str

    def outcomes(self, rule: str, transport: str = "rest") -> list[dict[str, Any]]:
        outcomes = (self.results or {}).get("outcomes", [])
        return [o for o in outcomes if o["rule"] == rule and o["transport"] == transport]

    def statuses(self, rule: str, transport: str = "rest") -> set[str]:
        return {o["status"] for o in self.outcomes(rule, transport)}


@pytest.fixture(scope="session")
def reference() -> Iterator[ReferenceServer]:
    with ReferenceServer(ports="free") as server:
        yield server


@pytest.fixture
def run_suite(tmp_path: Path) -> Callable[..., SuiteRun]:
    """``run_suite(*pytest_args)``: the conformance suite in a subprocess (ci profile, own report root)."""

    def run(*args: str) -> SuiteRun:
        reports = tmp_path / "reports"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT),
               "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
        command = [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q",
                   "--hypothesis-profile=ci", "--report-root", str(reports), *args]
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=SUITE_TIMEOUT_S)
        latest = reports / "conformance" / "latest"
        results = json.loads((latest / "results.json").read_text()) if (latest / "results.json").is_file() \
            else None
        report = (latest / "report.md").read_text() if (latest / "report.md").is_file() else ""
        return SuiteRun(done.returncode, done.stdout + done.stderr, results, report)

    return run
