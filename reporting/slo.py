"""Service-level thresholds in k6's spirit: ``--slo "p99<25ms" --slo "error_rate<0.1%"``.

Grammar: ``[SCOPE:]METRIC OP VALUE[UNIT]`` where

- SCOPE is empty (the whole run), a model (``mnist-svm``) or ``model/transport``
  (``mnist-svm/grpc``);
- METRIC is a latency percentile ``p50 p90 p95 p99 p99.9 max mean`` (units
  ``us``, ``ms``, ``s``; default ``ms``), ``error_rate`` (``%`` or a fraction)
  or ``throughput`` (requests per second, ``rps`` or no unit);
- OP is ``<``, ``<=``, ``>``, ``>=``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

LATENCY_METRICS = {"p50", "p90", "p95", "p99", "p99.9", "max", "mean"}
LATENCY_UNITS_US = {"us": 1.0, "µs": 1.0, "ms": 1_000.0, "s": 1_000_000.0}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}
_PATTERN = re.compile(
    r"^\s*(?:(?P<scope>[A-Za-z0-9_.\-/]+)\s*:)?\s*(?P<metric>[a-z_]+[0-9.]*)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>%|us|µs|ms|s|rps)?\s*$"
)


class SloError(ValueError):
    """A threshold expression that does not parse; the message shows the grammar."""


@dataclass(frozen=True)
class Slo:
    text: str
    scope: str  # "" = overall
    metric: str
    op: str
    threshold: float  # µs for latency, a fraction for error_rate, rps for throughput

    def holds(self, actual: float) -> bool:
        return OPERATORS[self.op](actual, self.threshold)


def parse_slo(text: str) -> Slo:
    match = _PATTERN.match(text)
    hint = ('expected [SCOPE:]METRIC OP VALUE[UNIT], e.g. "p99<25ms", "error_rate<0.1%", '
            '"mnist-svm/grpc:p50<=2ms", "throughput>500"')
    if not match:
        raise SloError(f"cannot parse SLO {text!r}: {hint}")
    scope, metric, op = match["scope"] or "", match["metric"], match["op"]
    value, unit = float(match["value"]), match["unit"]
    if metric in LATENCY_METRICS:
        if unit not in (None, *LATENCY_UNITS_US):
            raise SloError(f"SLO {text!r}: latency takes us, ms or s, not {unit!r}")
        threshold = value * LATENCY_UNITS_US[unit or "ms"]
    elif metric == "error_rate":
        if unit not in (None, "%"):
            raise SloError(f"SLO {text!r}: error_rate takes % or a fraction, not {unit!r}")
        threshold = value / 100 if unit == "%" else value
    elif metric == "throughput":
        if unit not in (None, "rps"):
            raise SloError(f"SLO {text!r}: throughput is in requests per second (rps)")
        threshold = value
    else:
        known = sorted(LATENCY_METRICS | {"error_rate", "throughput"})
        raise SloError(f"SLO {text!r}: unknown metric {metric!r}; known: {known}")
    return Slo(text.strip(), scope, metric, op, threshold)


def actual_value(slo: Slo, stats: Mapping[str, Any]) -> float | None:
    """The measured value an SLO is about, from one ``summary.json`` stats block."""
    if slo.metric == "error_rate":
        return stats.get("error_rate")
    if slo.metric == "throughput":
        return stats.get("throughput_rps")
    return (stats.get("latency_us") or {}).get(slo.metric)


def evaluate(slos: list[Slo], scopes: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check each SLO against ``scopes`` ({"": overall, "model": ..., "model/transport": ...})."""
    results = []
    for slo in slos:
        stats = scopes.get(slo.scope)
        actual = None if stats is None else actual_value(slo, stats)
        results.append({
            "slo": slo.text, "scope": slo.scope or "overall", "metric": slo.metric,
            "threshold": slo.threshold, "actual": actual,
            # An SLO on something that was not measured fails: silence is not a pass.
            "ok": actual is not None and slo.holds(actual),
        })
    return results
