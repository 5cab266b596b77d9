"""Comparisons that survive noise: against a stored baseline, and A/B within one run.

A baseline comparison reads two ``summary.json`` files of the same schema and
gives, per scope (overall, model, model/transport) and metric, the change with
a 95 % bootstrap interval over each run's measured stability windows
(:mod:`reporting.stats`), judged against the tolerance: relative for
throughput and latency, absolute points for the error rate. The run's verdict
comes from the overall scope; the other scopes are shown. A baseline without
windows (one value per side) gives no interval: ``inconclusive``.

An A/B comparison (``bench ab``) takes rounds measured interleaved in one run
and bootstraps the per-round ratios B/A (:func:`reporting.stats.paired_ratio`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reporting import stats
from reporting.summary import SCHEMA

DEFAULT_TOLERANCE = 0.10
DEFAULT_ERROR_TOLERANCE_POINTS = 0.5  # percentage points
DEFAULT_METRICS = ("throughput", "p50", "p99", "error_rate")
HIGHER_IS_WORSE = {m for m, worse in stats.HIGHER_IS_WORSE.items() if worse}


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


def metric_value(figures: Mapping[str, Any], metric: str) -> float | None:
    """A metric from a scope's figures (``summary.json`` scope, or a window's compact scope)."""
    stats.higher_is_worse(metric)  # unknown metrics are an error
    if metric in figures and not isinstance(figures.get(metric), Mapping):
        return figures.get(metric)
    if metric == "throughput":
        return figures.get("throughput_rps")
    if metric == "error_rate":
        return figures.get("error_rate")
    return (figures.get("latency_us") or {}).get(metric)


def window_values(summary: Mapping[str, Any], scope: str, metric: str) -> list[float]:
    """The metric in each measured stability window of a run (empty: the run kept no windows)."""
    out = []
    for window in summary.get("windows") or []:
        if not window.get("measured"):
            continue
        figures = (window.get("scopes") or {}).get(scope)
        value = metric_value(figures, metric) if figures else None
        if value is not None:
            out.append(float(value))
    return out


def _has_metric(summary: Mapping[str, Any], metric: str) -> bool:
    overall = (summary.get("scopes") or {}).get("", {})
    return metric_value(overall, metric) is not None or bool(window_values(summary, "", metric))


def compare_row(scope: str, metric: str, current: Mapping[str, Any], baseline: Mapping[str, Any],
                tolerance: float, error_tolerance: float) -> dict[str, Any]:
    """One scope x metric: point values, the interval over windows and the verdict."""
    now = metric_value((current.get("scopes") or {}).get(scope) or {}, metric)
    then = metric_value((baseline.get("scopes") or {}).get(scope) or {}, metric)
    absolute = metric in stats.ABSOLUTE_METRICS
    row: dict[str, Any] = {"scope": scope or "overall", "metric": metric, "baseline": then, "current": now,
                           "tolerance": error_tolerance if absolute else tolerance,
                           "change": None, "interval": None}
    if now is not None and then is not None:
        row["change"] = now - then if absolute else (now / then - 1.0 if then else None)
    a, b = window_values(baseline, scope, metric), window_values(current, scope, metric)
    if len(a) < 2 or len(b) < 2:
        row["judgement"] = (f"inconclusive (windows: baseline {len(a)}, current {len(b)}; "
                            f"an interval needs 2 or more on each side)")
        return row
    try:
        interval = (stats.two_sample_difference(a, b) if absolute else stats.two_sample_ratio(a, b))
    except ValueError as exc:
        row["judgement"] = f"inconclusive ({exc})"
        return row
    row["interval"] = interval.to_dict()
    row["judgement"] = str(stats.decide(metric, interval, row["tolerance"], unit="windows per run"))
    return row


def check_baseline(baseline: Mapping[str, Any], metrics: Sequence[str]) -> None:
    """Every metric asked for is known and in the baseline's overall scope, else :class:`BaselineError`."""
    for metric in metrics:
        if metric not in stats.HIGHER_IS_WORSE:
            raise BaselineError(f"unknown metric {metric!r}; known: {sorted(stats.HIGHER_IS_WORSE)}")
        if not _has_metric(baseline, metric):
            raise BaselineError(f"the baseline (run {baseline.get('run', {}).get('id')}) has no {metric!r} "
                                f"figure: re-record it with this harness or leave {metric} out")


def overall_verdict(judgements: Sequence[str]) -> str:
    """``slower`` if any metric is slower or worse, else ``faster`` if any is better, else ``same``
    when all are, else ``inconclusive``."""
    words = {j.split(" ", 1)[0] for j in judgements}
    if words & {"slower", "worse"}:
        return "slower"
    if words & {"faster", "better"}:
        return "faster"
    if words == {"same"}:
        return "same"
    return "inconclusive"


def compare_to_baseline(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    error_tolerance: float = DEFAULT_ERROR_TOLERANCE_POINTS / 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Any]:
    """Per scope and metric: baseline, current, change, 95 % interval, verdict; the overall verdict."""
    try:
        stats.check_tolerance(tolerance)
    except ValueError as exc:
        raise BaselineError(str(exc)) from None
    check_baseline(baseline, metrics)
    rows = []
    for scope in current.get("scopes", {}):
        if scope not in baseline.get("scopes", {}):
            continue
        rows += [compare_row(scope, m, current, baseline, tolerance, error_tolerance) for m in metrics]
    overall = [r["judgement"] for r in rows if r["scope"] == "overall"]
    return {"tolerance": tolerance, "error_tolerance": error_tolerance,
            "interval": f"{stats.CONFIDENCE:.0%} expanded percentile bootstrap over measured windows",
            "baseline_run": baseline.get("run", {}).get("id"), "rows": rows,
            "verdict": overall_verdict(overall) if overall else "inconclusive"}


def describe_row(row: Mapping[str, Any]) -> str:
    """One line of a comparison row: metric, change, interval, verdict."""
    interval = row.get("interval")
    if not interval:
        return f"{row['metric']}: {row['judgement']}"
    return stats.describe(row["metric"], stats.Interval(**interval), row["judgement"])
