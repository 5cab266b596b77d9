"""The load generator's own CPU: sampled while a test runs, summed over workers, judged saturated.

A generator that runs out of CPU measures itself rather than the server; the
report warns when that happened (psutil samples at 90% of a core or more, or
Locust's own CPU warning).
"""

from __future__ import annotations

from typing import Any

import gevent
import psutil

CPU_SAMPLE_EVERY_S = 1.0
CPU_SATURATED_PERCENT = 90.0
SATURATED_SAMPLES = 2  # this many saturated samples in one process: saturated


class CpuWatch:
    """Samples this process's CPU (psutil) while ``active``."""

    def __init__(self) -> None:
        self.samples = 0
        self.saturated_samples = 0
        self.max_percent = 0.0
        self.total_percent = 0.0
        self._process = psutil.Process()
        self._greenlet: gevent.Greenlet | None = None
        self.active = False

    def start(self) -> None:
        if self._greenlet is None:
            self._process.cpu_percent(None)
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def reset(self) -> None:
        self.samples = self.saturated_samples = 0
        self.max_percent = self.total_percent = 0.0
        self._process.cpu_percent(None)

    def _loop(self) -> None:
        while True:
            gevent.sleep(CPU_SAMPLE_EVERY_S)
            percent = self._process.cpu_percent(None)
            if not self.active:
                continue
            self.samples += 1
            self.total_percent += percent
            self.max_percent = max(self.max_percent, percent)
            if percent >= CPU_SATURATED_PERCENT:
                self.saturated_samples += 1

    def snapshot(self) -> dict[str, Any]:
        return {"samples": self.samples, "saturated_samples": self.saturated_samples,
                "max_percent": round(self.max_percent, 1),
                "mean_percent": round(self.total_percent / self.samples, 1) if self.samples else 0.0}


def cpu_figures(local: CpuWatch | None, workers: dict[str, dict[str, Any]], runner: Any) -> dict[str, Any]:
    """The report's ``generator.cpu``: this process (``local``, when it sends load) and each worker."""
    processes: dict[str, Any] = {}
    if local is not None:
        processes["local"] = local.snapshot()
    processes.update(workers)
    locust_warned = bool(runner is not None and (runner.cpu_warning_emitted
                                                 or getattr(runner, "worker_cpu_warning_emitted", False)))
    saturated = locust_warned or any(p.get("saturated_samples", 0) >= SATURATED_SAMPLES
                                     for p in processes.values())
    return {
        "processes": processes,
        "max_percent": max((p.get("max_percent", 0.0) for p in processes.values()), default=0.0),
        "mean_percent_sum": round(sum(p.get("mean_percent", 0.0) for p in processes.values()), 1),
        "saturated": saturated,
        "locust_cpu_warning": locust_warned,
        "saturated_threshold_percent": CPU_SATURATED_PERCENT,
    }
