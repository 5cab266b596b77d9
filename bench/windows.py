"""Measuring in windows until the deployment is stable, as perf_analyzer does.

A benchmark measures successive windows of equal length (each its own bounded
Locust run, statistics reset once every user is spawned, so a window's
throughput covers its measured time only, not the spawn ramp) and stops when
the last :data:`STABLE_WINDOWS` windows agree: their throughput, p50 and p99
each lie within ``stability`` (default 10 %) of those windows' mean. It gives
up after ``max_windows`` and says so. The report's figures are those of the
last :data:`STABLE_WINDOWS` windows merged (exactly: HDR histograms), and each
window's own figures are kept, so that a later comparison can put an interval
on a change (:mod:`reporting.compare`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scenario import Measurement, measure
from reporting.latency import LatencyBook
from reporting.summary import scopes_from_book

STABLE_WINDOWS = 3
STABILITY_METRICS = ("throughput", "p50", "p99")
COMPACT_LATENCY = ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")


def compact_scopes(scopes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A window's figures per scope, without the spectrum: what comparisons need."""
    out = {}
    for scope, figures in scopes.items():
        lat = figures.get("latency_us") or {}
        out[scope] = {"requests": figures.get("requests"), "throughput": figures.get("throughput_rps"),
                      "error_rate": figures.get("error_rate"),
                      **{k: lat.get(k) for k in COMPACT_LATENCY if k in lat}}
    return out


def spread(values: Sequence[float | None]) -> float | None:
    """Largest distance of a value from the values' mean, relative to the mean (None: unmeasured)."""
    if not values or any(v is None for v in values):
        return None
    mean = sum(values) / len(values)  # type: ignore[arg-type]
    if mean <= 0:
        return None
    return max(abs(v - mean) for v in values) / mean  # type: ignore[operator]


def stable(windows: Sequence[dict[str, Any]], stability: float) -> tuple[bool, dict[str, float | None]]:
    """Whether the last :data:`STABLE_WINDOWS` windows agree within ``stability``; each metric's spread."""
    last = windows[-STABLE_WINDOWS:]
    spreads = {m: spread([(w.get("scopes") or {}).get("", {}).get(m) for w in last])
               for m in STABILITY_METRICS}
    ok = len(last) == STABLE_WINDOWS and all(s is not None and s <= stability for s in spreads.values())
    return ok, spreads


def merged_scopes(measurements: Sequence[Measurement]) -> dict[str, dict[str, Any]]:
    """The windows' HDR books merged, over their summed measured time, with their error kinds."""
    book = LatencyBook()
    kinds: Counter[str] = Counter()
    duration = 0.0
    for m in measurements:
        book.merge(LatencyBook.from_wire(m.latency["hdr"]))
        kinds.update(m.overall.get("errors") or {})
        duration += m.duration_s
    return scopes_from_book(book, duration or None, dict(kinds))


@dataclass
class WindowedRun:
    measurements: list[Measurement]
    windows: list[dict[str, Any]]  # per window: index, duration_s, measured, scopes (compact)
    stabilised: bool
    stability: float
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def measured(self) -> list[Measurement]:
        return self.measurements[-STABLE_WINDOWS:]

    def describe(self) -> dict[str, Any]:
        indices = [w["index"] for w in self.windows if w["measured"]]
        _, spreads = stable(self.windows, self.stability)
        return {"criterion": f"last {STABLE_WINDOWS} windows' throughput, p50 and p99 within "
                             f"{self.stability:.0%} of their mean",
                "stabilised": self.stabilised, "windows": len(self.windows),
                "measured_windows": indices, "spreads": spreads,
                "note": "" if self.stabilised else
                f"never stabilised: figures are from the last {len(indices)} windows"}


def measure_until_stable(rest_url: str, grpc_target: str, scenario: dict[str, Any], scratch: Path, *,
                         window_s: float, stability: float, max_windows: int,
                         on_window=None) -> WindowedRun:
    """Windows of ``window_s`` until stable or ``max_windows``; ``on_window(run)`` after each one."""
    max_windows = max(STABLE_WINDOWS, max_windows)
    run = WindowedRun([], [], False, stability)
    for index in range(max_windows):
        m = measure(rest_url, grpc_target, window_s, scratch / f"window-{index:02d}", scenario)
        run.measurements.append(m)
        run.windows.append({"index": index, "duration_s": m.duration_s, "measured": False,
                            "scopes": compact_scopes(m.scopes)})
        run.stabilised, _ = stable(run.windows, stability)
        if on_window:
            on_window(run)
        if run.stabilised:
            break
    for window in run.windows[-STABLE_WINDOWS:]:
        window["measured"] = True
    run.scopes = merged_scopes(run.measured)
    return run
