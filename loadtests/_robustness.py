"""Named robustness metrics of a run with bad traffic, and thresholds on them.

:func:`metrics` reads them from a run's ``latency.json`` (its ``total`` and its
``bad_traffic`` section): the good traffic's ``good_error_rate``,
``good_p50`` and ``good_p99`` (µs), the bad requests ``bad_accepted``
(accepted although the kind must be refused), ``bad_server_error``,
``bad_closed``, ``bad_timeout``, ``bad_unclassified``, and ``liveness_lost``
(live probes that got no 200). A threshold is ``METRIC OP VALUE[UNIT]``
(``good_p99<50ms``, ``good_error_rate<=0.1%``, ``bad_accepted<=0``,
``liveness_lost==0``; ``p50``, ``p99`` and ``error_rate`` name the good
traffic's, as ``--slo`` does); ``--bad-threshold`` (locust) and the
``robustness`` bench scenario check them, exit 1 when one is breached.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._classify import ACCEPTED, CLOSED, SERVER_ERROR, TIMEOUT, UNCLASSIFIED
from ._plan import PlanError

LATENCY = {"good_p50", "good_p99"}
RATES = {"good_error_rate"}
COUNTS = {"bad_accepted", "bad_server_error", "bad_closed", "bad_timeout", "bad_unclassified",
          "liveness_lost", "bad_requests"}
METRICS = tuple(sorted(LATENCY | RATES | COUNTS))
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt}
_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}
_PATTERN = re.compile(r"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op><=|>=|==|<|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*"
                      r"(?P<unit>%|us|ms|s)?\s*$")
ALIASES = {"p50": "good_p50", "p99": "good_p99", "error_rate": "good_error_rate"}  # as --slo names them
DEFAULT_GATES = ("liveness_lost==0", "bad_unclassified==0", "good_error_rate<=0")


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # µs for latency, a fraction for the error rate, a count otherwise

    def holds(self, actual: float) -> bool:
        return OPS[self.op](actual, self.value)


def parse_threshold(text: str) -> Threshold:
    """A threshold; :class:`PlanError` (exit 2) when it does not parse or names no known metric."""
    match = _PATTERN.match(text or "")
    if not match:
        raise PlanError(f"threshold {text!r} does not parse: expected METRIC OP VALUE, e.g. good_p99<50ms, "
                        "bad_accepted<=0")
    metric, unit, value = ALIASES.get(match["metric"], match["metric"]), match["unit"], float(match["value"])
    if metric not in METRICS:
        raise PlanError(f"threshold {text!r}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if metric in LATENCY:
        if unit not in (None, *_UNITS_US):
            raise PlanError(f"threshold {text!r}: latency takes us, ms or s")
        value *= _UNITS_US[unit or "ms"]
    elif metric in RATES:
        if unit not in (None, "%"):
            raise PlanError(f"threshold {text!r}: an error rate takes % or a fraction")
        value = value / 100 if unit == "%" else value
    elif unit is not None:
        raise PlanError(f"threshold {text!r}: {metric} is a count, without a unit")
    return Threshold(text.strip(), metric, match["op"], value)


def metrics(document: Mapping[str, Any]) -> dict[str, float | None]:
    """The named metrics of one ``latency.json`` (see the module docstring)."""
    total = document.get("total") or {}
    bad = document.get("bad_traffic") or {}
    by_class = (bad.get("classification") or {}).get("by_class") or {}
    latency = total.get("latency_us") or {}
    requests = total.get("requests") or 0
    return {
        "good_error_rate": (total.get("errors") or 0) / requests if requests else None,
        "good_p50": latency.get("p50"), "good_p99": latency.get("p99"),
        "bad_requests": (bad.get("classification") or {}).get("requests", 0),
        "bad_accepted": by_class.get(ACCEPTED, 0), "bad_server_error": by_class.get(SERVER_ERROR, 0),
        "bad_closed": by_class.get(CLOSED, 0), "bad_timeout": by_class.get(TIMEOUT, 0),
        "bad_unclassified": by_class.get(UNCLASSIFIED, 0),
        "liveness_lost": (bad.get("liveness") or {}).get("lost_probes", 0),
    }


def evaluate(thresholds: list[Threshold], measured: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Each threshold against ``measured``; a metric not measured fails (silence is not a pass)."""
    out = []
    for threshold in thresholds:
        actual = measured.get(threshold.metric)
        out.append({"threshold": threshold.text, "metric": threshold.metric, "actual": actual,
                    "ok": actual is not None and threshold.holds(actual)})
    return out
