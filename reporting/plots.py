"""PNG plots of a run, drawn from ``summary.json`` alone (matplotlib, no display needed).

- ``latency_percentiles.png``: p50 .. max per model x transport (log scale);
- ``latency_distribution.png``: the percentile spectrum per model x transport,
  from the HDR histograms (x: percentile on a 1/(1-p) scale, y: latency);
- ``timeline.png``: throughput and latency over time, per second (from Locust's
  stats history, which rounds latencies to milliseconds: good for shape over
  time, not for sub-millisecond values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LATENCY_BARS = ("p50", "p90", "p95", "p99", "p99.9", "max")


def _leaf_scopes(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Model x transport scopes only (``model/transport``), in a stable order."""
    return {k: v for k, v in sorted(summary.get("scopes", {}).items()) if "/" in k}


def plot_percentiles(summary: Mapping[str, Any], path: Path) -> Path | None:
    scopes = _leaf_scopes(summary)
    if not scopes:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(scopes)
    for i, (scope, stats) in enumerate(scopes.items()):
        values = [(stats.get("latency_us") or {}).get(p) or math.nan for p in LATENCY_BARS]
        xs = [j + i * width for j in range(len(LATENCY_BARS))]
        ax.bar(xs, [v / 1000 for v in values], width, label=scope)
    ax.set_xticks([j + width * (len(scopes) - 1) / 2 for j in range(len(LATENCY_BARS))], LATENCY_BARS)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Client-side latency percentiles (HDR, µs resolution)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distribution(summary: Mapping[str, Any], path: Path) -> Path | None:
    scopes = {k: v for k, v in _leaf_scopes(summary).items() if v.get("spectrum")}
    if not scopes:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for scope, stats in scopes.items():
        points = [(p, us) for p, us in stats["spectrum"] if p < 100]
        xs = [1 / (1 - p / 100) for p, _ in points]
        ax.plot(xs, [us / 1000 for _, us in points], marker=".", label=scope)
    ticks = [50, 90, 99, 99.9, 99.99]
    ax.set_xscale("log")
    ax.set_xticks([1 / (1 - t / 100) for t in ticks], [f"{t}%" for t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency distribution (percentile spectrum)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timeline(summary: Mapping[str, Any], path: Path) -> Path | None:
    rows = summary.get("timeline") or []
    if len(rows) < 2:
        return None
    t0 = rows[0]["t"]
    ts = [r["t"] - t0 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    top.plot(ts, [r.get("rps") or 0 for r in rows], label="requests/s")
    top.plot(ts, [r.get("failures_per_s") or 0 for r in rows], label="failures/s", color="tab:red")
    top.set_ylabel("per second")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            bottom.plot(ts, [math.nan if v is None else v for v in values], label=label)
    bottom.set_ylabel("latency (ms, Locust, 1 ms steps)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.suptitle("Throughput and latency over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(summary: Mapping[str, Any], path: Path) -> Path | None:
    sweep = summary.get("sweep") or {}
    steps = sweep.get("steps") or []
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for workers in sorted({s["parallel_workers"] for s in steps}):
        mine = [s for s in steps if s["parallel_workers"] == workers]
        xs = [s["throughput_rps"] or 0 for s in mine]
        line, = ax.plot(xs, [(s["p99_us"] or math.nan) / 1000 for s in mine], marker="o",
                        label=f"parallel_workers={workers} p99")
        ax.plot(xs, [(s["p50_us"] or math.nan) / 1000 for s in mine], marker=".", linestyle="--",
                color=line.get_color(), label=f"parallel_workers={workers} p50")
        for s, x in zip(mine, xs, strict=True):
            ax.annotate(str(s["users"]), (x, (s["p99_us"] or math.nan) / 1000), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    limit = sweep.get("p99_limit_us")
    if limit:
        ax.axhline(limit / 1000, color="grey", linestyle=":", label=f"p99 limit {limit / 1000:.0f} ms")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency vs throughput (numbers: concurrent users)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    drawn = [
        plot_percentiles(summary, folder / "latency_percentiles.png"),
        plot_distribution(summary, folder / "latency_distribution.png"),
        plot_timeline(summary, folder / "timeline.png"),
        plot_sweep(summary, folder / "latency_vs_throughput.png"),
    ]
    return [p for p in drawn if p is not None]
