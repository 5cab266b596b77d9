"""Helpers shared by the benchmark scripts: run the Locust harness headless, read its report.

The Locust subprocess itself is :func:`loadtests._launch.run_locust`, the one
runner the tests use too.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from loadtests._launch import LocustRun, run_locust

HarnessRun = LocustRun  # what run_harness returns: returncode, report, run_dir, stderr, throughput


def run_harness(args: list[str], *, timeout: float = 300.0, reports_root: Path | None = None,
                cpus: set[int] | None = None) -> HarnessRun:
    """``locust -f loadtests/ --headless ARGS`` (on ``cpus``); its run folder goes under ``reports_root``."""
    run = run_locust(args, reports_root=reports_root, timeout=timeout, cpus=cpus)
    if run.report is None:
        raise RuntimeError(f"the harness left no report (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return run


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
