"""Comparisons that survive noise: against a stored baseline, and A/B within one run.

A baseline comparison reads two ``summary.json`` files of the same schema and
gives, per model x transport, the relative change of throughput and latency
percentiles against a tolerance. An A/B comparison takes rounds measured
interleaved (A, B, A, B, ...) in one run, so that both sides see the same
machine noise, and decides from the per-round ratios B/A: their median and
their spread.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reporting.summary import SCHEMA

DEFAULT_TOLERANCE = 0.10
# Metrics where a larger value is worse.
HIGHER_IS_WORSE = {"p50", "p90", "p99", "error_rate"}


class BaselineError(ValueError):
    """A baseline that is missing or cannot be compared; says what to do."""


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(
            f"baseline {path} does not exist: run `tox -e bench` on the reference revision and copy "
            f"its reports/bench/latest/summary.json there"
        ) from None
    except ValueError as exc:
        raise BaselineError(f"baseline {path} is not valid JSON ({exc})") from None
    schema = baseline.get("schema") if isinstance(baseline, dict) else None
    if schema != SCHEMA:
        raise BaselineError(
            f"baseline {path} has schema {schema!r}, this harness writes {SCHEMA!r}: "
            f"re-record the baseline with this version of the harness"
        )
    return baseline


def _metric(stats: Mapping[str, Any], metric: str) -> float | None:
    if metric == "throughput":
        return stats.get("throughput_rps")
    if metric == "error_rate":
        return stats.get("error_rate")
    return (stats.get("latency_us") or {}).get(metric)


def _judge(metric: str, change: float | None, tolerance: float) -> str:
    if change is None:
        return "n/a"
    worse = change > tolerance if metric in HIGHER_IS_WORSE else change < -tolerance
    better = change < -tolerance if metric in HIGHER_IS_WORSE else change > tolerance
    return "worse" if worse else "better" if better else "same"


def compare_to_baseline(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: Sequence[str] = ("throughput", "p50", "p99", "error_rate"),
) -> dict[str, Any]:
    """Per scope and metric: baseline, current, relative change, better/same/worse."""
    rows = []
    for scope, stats in current.get("scopes", {}).items():
        base_stats = baseline.get("scopes", {}).get(scope)
        if base_stats is None:
            continue
        for metric in metrics:
            now, then = _metric(stats, metric), _metric(base_stats, metric)
            if metric == "error_rate":
                change = None if now is None or then is None else now - then
            else:
                change = None if not then or now is None else now / then - 1.0
            rows.append({"scope": scope or "overall", "metric": metric, "baseline": then,
                         "current": now, "change": change,
                         "judgement": _judge(metric, change, tolerance)})
    judgements = {r["judgement"] for r in rows}
    verdict = "slower" if "worse" in judgements else "faster" if "better" in judgements else "within noise"
    return {"tolerance": tolerance, "baseline_run": baseline.get("run", {}).get("id"),
            "rows": rows, "verdict": verdict}


@dataclass(frozen=True)
class RatioEstimate:
    median: float
    low: float  # spread: the lowest and highest per-round ratio
    high: float
    rounds: int

    def verdict(self, tolerance: float, higher_is_better: bool) -> str:
        """``same`` when the median is within tolerance of 1, else which side wins."""
        if abs(self.median - 1.0) <= tolerance:
            return "same within noise"
        b_better = self.median > 1.0 if higher_is_better else self.median < 1.0
        return "B is better" if b_better else "A is better"


def ratio_estimate(a: Sequence[float], b: Sequence[float]) -> RatioEstimate:
    """Per-round ratios b[i]/a[i] of interleaved rounds: median and spread."""
    if len(a) != len(b) or not a:
        raise ValueError("A/B needs the same, non-zero number of rounds on each side")
    ratios = [y / x for x, y in zip(a, b, strict=True) if x]
    if not ratios:
        raise ValueError("every A round measured zero: nothing to compare")
    return RatioEstimate(statistics.median(ratios), min(ratios), max(ratios), len(ratios))
