"""Deployments measured in turns: one Locust run per deployment, at the same time, taking turns.

:func:`measure_in_turns` starts one headless ``locust -f loadtests/`` per
target with ``--turn I/N`` and one shared ``--turn-start`` a few seconds ahead
(:mod:`loadtests._turns`), so their users send in turns of ``slot_s`` seconds
(one slot each per cycle, in a shuffled order), and reads each round's figures back from the runs'
``latency.json``. Round ``r`` of every target covers the same seconds of the
machine's life, which is what makes a per-round ratio B/A worth its name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenario import locust_args
from loadtests._launch import run_locust
from loadtests._turns import DEFAULT_SLOT_S
from reference import affinity
from reference.errors import HarnessError
from reporting.latency import LatencyBook

STARTUP_S = 6.0  # from launch to every user spawned: 4-8 s for two runs at once on one pinned CPU
SLOT_S = DEFAULT_SLOT_S  # 0.1 s; pinned, identical sides spread 0.022-0.035 per round (0.25 s: up to 0.045)
STARTUP_ATTEMPTS = 2  # then once more with twice the start-up time
METRICS = ("throughput", "p50", "p90", "p95", "p99", "p99.9", "max", "mean", "error_rate")


@dataclass(frozen=True)
class Target:
    rest_url: str
    grpc_target: str
    scenario: dict[str, Any]


@dataclass
class TurnRun:
    """One target's run: its figures per round (None: no own time in that round), its report."""

    rounds: list[dict[str, Any] | None]
    report: dict[str, Any]

    @property
    def late_s(self) -> float:
        """How long after the start the run's users were all up (its first slots are lost)."""
        return float((self.report.get("turns") or {}).get("late_s") or 0.0)

    @property
    def warnings(self) -> list[str]:
        return list(self.report.get("warnings") or [])


def pin_deployments(pids: list[int | None]) -> dict[str, list[int]] | None:
    """Servers (process trees ``pids``) on the upper half of the CPUs; the generators' half, or None.

    Both deployments share the same CPUs, so that a side measured in its turn
    runs where the other ran in its own (:mod:`reference.affinity`).
    """
    halves = affinity.split()
    if halves is None:
        return None
    generators, servers = halves
    for pid in pids:
        if pid is not None:
            affinity.pin_tree(pid, servers)
    return {"generators": sorted(generators), "servers": sorted(servers)}


def round_figures(total: dict[str, Any]) -> dict[str, Any]:
    """One round's figures from a LatencyBook summary's ``total``: every metric of :data:`METRICS`."""
    lat = total.get("latency_us") or {}
    figures: dict[str, Any] = {m: lat.get(m) for m in METRICS}
    figures["throughput"] = total.get("throughput_rps")
    figures["error_rate"] = total.get("error_rate")
    figures["errors"] = int(total.get("errors") or 0)
    figures["requests"] = int(total.get("requests") or 0)
    return figures


def rounds_of(report: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Each round's figures from a ``latency.json`` written with ``--turn``."""
    turns = report.get("turns") or {}
    out: list[dict[str, Any] | None] = []
    for entry in turns.get("per_round") or []:
        own = float(entry.get("own_s") or 0.0)
        if own <= 0:
            out.append(None)
            continue
        total = LatencyBook.from_wire(entry["hdr"]).summary(own)["total"]
        out.append({**round_figures(total), "own_s": own})
    return out


def measure_in_turns(targets: list[Target], rounds: int, round_s: float, reports_root: Path,
                     slot_s: float = SLOT_S, startup_s: float = STARTUP_S, cpus: set[int] | None = None,
                     late_allowance_s: float = 0.0) -> list[TurnRun]:
    """``rounds`` rounds of ``round_s`` seconds, every target in its turn; one TurnRun per target.

    ``cpus``: where the Locust runs go (see :func:`pin_deployments`). The runs
    start ``startup_s`` after launch; when one comes up later than that by more
    than ``late_allowance_s`` (e.g. a warm-up round the caller leaves out), or
    so late that its window was over, all are run again once with twice the
    start-up time (a slow or busy machine).
    """
    for attempt in range(STARTUP_ATTEMPTS):
        runs = _attempt(targets, rounds, round_s, reports_root / f"attempt-{attempt}", slot_s,
                        startup_s * 2 ** attempt, cpus)
        if all(r is not None and r.late_s <= late_allowance_s for r in runs):
            break
    missing = [targets[i].rest_url for i, r in enumerate(runs) if r is None]
    if missing:
        raise HarnessError(f"the load generator for {', '.join(missing)} was not up within "
                           f"{startup_s * 2 ** attempt:g} s of its launch: the machine is overloaded; stop "
                           "other load on it and run again")
    return [r for r in runs if r is not None]


def _attempt(targets: list[Target], rounds: int, round_s: float, reports_root: Path, slot_s: float,
             startup_s: float, cpus: set[int] | None) -> list[TurnRun | None]:
    """One try: the runs in turns from ``startup_s`` ahead; None for a run that came up too late."""
    start = time.time() + startup_s
    bound = startup_s + rounds * round_s + 30.0  # -t: the whole process's bound, not reached normally
    parties = len(targets)

    processes: list[subprocess.Popen] = []

    def one(i: int, target: Target) -> TurnRun | None:
        args = locust_args(target.scenario, bound, target.rest_url, target.grpc_target, [
            "--turn", f"{i}/{parties}", "--turn-start", f"{start:.6f}", "--turn-slot", f"{slot_s:g}",
            "--turn-round", f"{round_s:g}", "--turn-rounds", str(rounds)])
        run = run_locust(args, reports_root=reports_root / f"turn-{i}", timeout=bound + 120, cpus=cpus,
                         started=processes.append)
        if run.report is None and "is over already" in run.stderr:
            return None
        if run.report is None:
            raise HarnessError(f"the load generator for {target.rest_url} left no report "
                               f"(exit {run.returncode}):\n{run.stderr[-3000:]}")
        if run.report.get("aborted"):
            raise HarnessError(f"the load run against {target.rest_url} was aborted: "
                               f"{run.report['aborted'].get('reason')}; is that deployment up?")
        return TurnRun(rounds_of(run.report), run.report)

    pool = ThreadPoolExecutor(max_workers=parties)
    try:
        futures = [pool.submit(one, i, t) for i, t in enumerate(targets)]
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C or a failed side: the other run stops now, not at its window's end
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
