"""Helpers shared by the benchmark scripts: run the Locust harness headless, read its report."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@dataclass
class HarnessRun:
    returncode: int
    report: dict[str, Any]
    run_dir: Path
    stderr: str

    @property
    def throughput(self) -> float:
        return float(self.report["total"]["throughput_rps"] or 0.0)

    def series(self, transport: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.report["series"] if transport is None or s["transport"] == transport]


def run_harness(args: list[str], *, timeout: float = 300.0, reports_root: Path | None = None) -> HarnessRun:
    """``locust -f loadtests/ --headless ARGS``; its run folder goes under ``reports_root``."""
    root = reports_root or Path(tempfile.mkdtemp(prefix="bench-"))
    command = [sys.executable, "-m", "locust", "-f", "loadtests/", "--headless", "--only-summary",
               "--reports-root", str(root), *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    report_path = root / "loadtest" / "latest" / "latency.json"
    if not report_path.exists():
        raise RuntimeError(
            f"the harness left no report (exit {process.returncode}):\n{process.stderr[-3000:]}"
        )
    return HarnessRun(process.returncode, json.loads(report_path.read_text()), report_path.parent.resolve(),
                      process.stderr)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
