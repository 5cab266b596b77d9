"""The cost of bad traffic: the good traffic in windows with and without it, compared.

With ``--bad-share``, bad requests go out only in every other window of
``--bad-window`` seconds (default 5): windows are cut from the wall clock
(``int(time / window) % 2 == 0``: with bad traffic), so every Locust process
agrees on them without a message. :class:`Windows` keeps, per window, the
good requests' latency (an HDR histogram of the successes) and their failures,
by the time each was sent. :func:`compare` leaves out the first and the last
window (warm-up, a window cut short), and windows with fewer than
:data:`MIN_REQUESTS` good answers, then compares the windows with bad traffic
against those without with :mod:`reporting.stats`: the ratio of the mean
per-window p50 and p99 (two-sample expanded bootstrap, 95 %) and the
difference of the error rate in points, each with a verdict
(faster/slower/same/inconclusive; better/worse for the error rate).
"""

from __future__ import annotations

import time
from typing import Any

from reporting import stats
from reporting.latency import LatencyHistogram, WireFormatError

DEFAULT_WINDOW_S = 5.0
ON_FRACTION = 0.5  # the share of the time with bad traffic (every other window)
MIN_REQUESTS = 20
LATENCY_TOLERANCE = 0.10  # a relative change counted as none
ERROR_TOLERANCE = 0.005  # half a point


def bad_window(window_s: float, wall: float | None = None) -> bool:
    """Is ``wall`` (default now) in a window with bad traffic? (every window when ``window_s`` is 0)."""
    if window_s <= 0:
        return True
    return int((time.time() if wall is None else wall) / window_s) % 2 == 0


class Windows:
    """Good traffic per window: {index: [successes' histogram, successes, failures]}."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.data: dict[int, list[Any]] = {}

    def record(self, sent_wall: float, latency_us: float, ok: bool) -> None:
        if self.window_s <= 0:
            return
        entry = self.data.get(int(sent_wall / self.window_s))
        if entry is None:
            entry = self.data[int(sent_wall / self.window_s)] = [LatencyHistogram(), 0, 0]
        if ok:
            entry[0].record(latency_us)
            entry[1] += 1
        else:
            entry[2] += 1

    def take(self) -> dict[str, Any]:
        """Worker: every window so far, for the master (and forget them)."""
        data, self.data = self.data, {}
        return {str(i): [h.encode(), ok, failed] for i, (h, ok, failed) in data.items()}

    def merge(self, wire: dict[str, Any]) -> None:
        for index, (encoded, ok, failed) in wire.items():
            try:
                histogram = LatencyHistogram.decode(encoded)
            except (WireFormatError, ValueError):
                continue
            entry = self.data.setdefault(int(index), [LatencyHistogram(), 0, 0])
            entry[0].merge(histogram)
            entry[1] += int(ok)
            entry[2] += int(failed)

    def clear(self) -> None:
        self.data = {}


def _side(entries: list[list[Any]]) -> dict[str, Any]:
    pooled = LatencyHistogram()
    ok = failed = 0
    for histogram, good, bad in entries:
        pooled.merge(histogram)
        ok, failed = ok + good, failed + bad
    return {"windows": len(entries), "requests": ok + failed, "failed": failed,
            "p50_us": pooled.percentile(50) if ok else None, "p99_us": pooled.percentile(99) if ok else None,
            "error_rate": failed / (ok + failed) if ok + failed else None}


def _metric(name: str, without: list[float], with_bad: list[float]) -> dict[str, Any]:
    try:
        if name == "error_rate":
            interval = stats.two_sample_difference(without, with_bad)
            verdict = stats.decide(name, interval, ERROR_TOLERANCE, unit="windows")
        else:
            interval = stats.two_sample_ratio(without, with_bad)
            verdict = stats.decide(name, interval, LATENCY_TOLERANCE, unit="windows")
    except ValueError as exc:
        return {"metric": name, "interval": None, "verdict": "inconclusive", "line": f"{name}: {exc}"}
    return {"metric": name, "interval": interval.to_dict(), "verdict": verdict.word,
            "line": stats.describe(name, interval, verdict)}


def compare(windows: Windows) -> dict[str, Any] | None:
    """Windows with bad traffic against windows without (see the module docstring); None: no windows."""
    if windows.window_s <= 0 or not windows.data:
        return None
    indices = sorted(windows.data)[1:-1]
    kept = [i for i in indices if windows.data[i][1] + windows.data[i][2] >= MIN_REQUESTS]
    sides: dict[bool, list[list[Any]]] = {True: [], False: []}
    for index in kept:
        sides[index % 2 == 0].append(windows.data[index])

    def values(entries: list[list[Any]], what: str) -> list[float]:
        out = []
        for histogram, ok, failed in entries:
            if what == "error_rate":
                out.append(failed / (ok + failed))
            elif ok:
                out.append(float(histogram.percentile(50 if what == "p50" else 99)))
        return out

    metrics = [_metric(m, values(sides[False], m), values(sides[True], m))
               for m in ("p50", "p99", "error_rate")]
    return {"window_s": windows.window_s, "tolerance": LATENCY_TOLERANCE, "error_tolerance": ERROR_TOLERANCE,
            "windows_left_out": len(windows.data) - len(kept),
            "without_bad": _side(sides[False]), "with_bad": _side(sides[True]), "metrics": metrics}
