"""Confidence intervals and verdicts for every comparison the benchmarks make.

One method everywhere: an **expanded percentile bootstrap** (``scipy.stats.bootstrap``,
95 %, a fixed seed so a report is reproducible) over the units a run measures
independently, A/B rounds measured in turns (paired) or stability windows (two
samples). A plain percentile interval is too narrow for the handful of rounds a
benchmark affords (at n = 6, 89 % coverage in a simulation of normal data; expanded: 96 %); the expanded one
(Hesterberg 2015) takes the bootstrap percentiles at the level whose normal
quantile is ``sqrt(n / (n - 1)) * t(n - 1)``, which restores the coverage for
near-normal data and keeps the bootstrap's shape for skewed data. A percentile
interval never reaches beyond the data, so below :data:`MIN_VALUES` values (6
rounds, or 3 + 3 windows) no verdict but ``inconclusive`` is given: with 2
rounds, both land on the same side half the time by chance. A relative
change is bootstrapped on the log scale (the mean of ``log(B/A)`` per round,
or ``log(mean B / mean A)``) and reported as a ratio; an error rate as a
difference in absolute points.

A verdict comes from the interval against the tolerance band (``tol`` around
no change, in the metric's own terms: relative for throughput and latency,
absolute points for the error rate), with ``d`` the change oriented so that a
positive ``d`` is worse:

* ``slower`` (``worse`` for the error rate): the whole interval is beyond
  ``+tol``: certainly worse by more than the tolerance;
* ``faster`` (``better``): the whole interval is beyond ``-tol``;
* ``same``: the whole interval is inside ``[-tol, +tol]``;
* ``inconclusive`` otherwise, with an estimate of how many more rounds
  would likely decide: the half-width shrinks as ``1/sqrt(n)``, so reaching
  the half-width that would separate the point estimate from the band's edge
  takes ``n * (h / h_needed)^2`` rounds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _scipy

CONFIDENCE = 0.95
RESAMPLES = 4999
SEED = 20261201
MAX_MORE_ROUNDS = 1000  # beyond this, "more rounds" is reported as unbounded
MIN_VALUES = 6  # rounds (paired) or windows of both sides together: fewer decide nothing

# metric -> True when a larger value is worse. Every metric the harness reports is here:
# an unknown metric is an error, never silently "better".
HIGHER_IS_WORSE: dict[str, bool] = {
    "throughput": False,
    "min": True, "mean": True, "p50": True, "p90": True, "p95": True, "p99": True, "p99.9": True,
    "max": True,
    "error_rate": True,
}
ABSOLUTE_METRICS = {"error_rate"}  # compared as a difference in points, not a ratio


def higher_is_worse(metric: str) -> bool:
    try:
        return HIGHER_IS_WORSE[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_WORSE)}") from None


@dataclass(frozen=True)
class Interval:
    """A change with its confidence interval: ``estimate`` within ``low .. high``.

    ``kind`` is ``ratio`` (B/A, 1.0 = no change) or ``difference`` (B - A, 0.0 =
    no change); ``n`` the number of rounds (paired) or windows per side.
    """

    estimate: float
    low: float
    high: float
    n: int
    kind: str = "ratio"
    values: int = 0  # values behind the interval: n (paired), both sides' windows (two samples)

    @property
    def decisive(self) -> bool:
        return max(self.values, self.n) >= MIN_VALUES

    @property
    def changes(self) -> tuple[float, float, float]:
        """``(estimate, low, high)`` as changes from no change (ratio - 1, or the difference)."""
        if self.kind == "ratio":
            return self.estimate - 1.0, self.low - 1.0, self.high - 1.0
        return self.estimate, self.low, self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expanded_level(n: int, confidence: float = CONFIDENCE) -> float:
    """The bootstrap percentile level of Hesterberg's expanded interval for ``n`` values."""
    alpha = 1.0 - confidence
    z = math.sqrt(n / (n - 1)) * float(_scipy.t.ppf(1 - alpha / 2, n - 1))
    return min(1.0 - 2.0 * float(_scipy.norm.sf(z)), 1.0 - 1.0 / RESAMPLES)


def _interval(data: tuple, statistic, n: int, *, paired: bool) -> tuple[float, float]:
    if n < 2:
        return -math.inf, math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (identical values) warn
        result = _scipy.bootstrap(data, statistic, paired=paired, vectorized=False,
                                  confidence_level=expanded_level(n), n_resamples=RESAMPLES,
                                  method="percentile", rng=np.random.default_rng(SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # every resample identical: no spread seen
        point = float(statistic(*data))
        return point, point
    return low, high


def _clean_pairs(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise ValueError("A/B needs the same number of rounds on each side")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)


def paired_ratio(a: Sequence[float | None], b: Sequence[float | None]) -> Interval:
    """A/B rounds: the geometric mean of the per-round ratios B/A, bootstrapped over rounds."""
    x, y = _clean_pairs(a, b)
    keep = (x > 0) & (y > 0)
    logs = np.log(y[keep] / x[keep])
    if not len(logs):
        raise ValueError("no round measured a positive value on both sides: nothing to compare")
    low, high = _interval((logs,), np.mean, len(logs), paired=False)
    return Interval(math.exp(float(np.mean(logs))), math.exp(low), math.exp(high), len(logs),
                    values=len(logs))


def paired_difference(a: Sequence[float | None], b: Sequence[float | None]) -> Interval:
    """A/B rounds: the mean of B - A per round (e.g. error rate in points), bootstrapped."""
    x, y = _clean_pairs(a, b)
    if not len(x):
        raise ValueError("no round measured both sides: nothing to compare")
    diffs = y - x
    low, high = _interval((diffs,), np.mean, len(diffs), paired=False)
    return Interval(float(np.mean(diffs)), low, high, len(diffs), "difference", len(diffs))


def _values(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None], float)


def two_sample_ratio(base: Sequence[float | None], current: Sequence[float | None]) -> Interval:
    """Windows of two runs: mean(current) / mean(base), each side resampled on its own."""
    x, y = _values(base), _values(current)
    if not len(x) or not len(y) or x.mean() <= 0 or y.mean() <= 0:
        raise ValueError("both sides need positive values to compare")

    def log_ratio(u: np.ndarray, v: np.ndarray) -> float:
        return math.log(max(v.mean(), 1e-300) / max(u.mean(), 1e-300))

    low, high = _interval((x, y), log_ratio, min(len(x), len(y)), paired=False)
    return Interval(float(y.mean() / x.mean()), math.exp(low), math.exp(high), min(len(x), len(y)),
                    values=len(x) + len(y))


def two_sample_difference(base: Sequence[float | None], current: Sequence[float | None]) -> Interval:
    """Windows of two runs: mean(current) - mean(base) (error rate in points), each side resampled."""
    x, y = _values(base), _values(current)
    if not len(x) or not len(y):
        raise ValueError("both sides need values to compare")
    low, high = _interval((x, y), lambda u, v: float(v.mean() - u.mean()), min(len(x), len(y)),
                          paired=False)
    return Interval(float(y.mean() - x.mean()), low, high, min(len(x), len(y)), "difference",
                    len(x) + len(y))


@dataclass(frozen=True)
class Verdict:
    word: str  # slower / faster / same / inconclusive (worse / better for the error rate)
    more_rounds: int | None = None  # inconclusive only: rounds (or windows) more that would likely decide
    unit: str = "rounds"  # what more of would decide: rounds (A/B) or windows (baseline, sweep)

    def __str__(self) -> str:
        if self.word != "inconclusive":
            return self.word
        if self.more_rounds is None:
            return (f"inconclusive (over {MAX_MORE_ROUNDS} more {self.unit}: the estimate sits near the "
                    f"tolerance's edge)")
        return f"inconclusive (about {self.more_rounds} more {self.unit} would likely decide)"


def rounds_to_decide(n: int, change: float, low: float, high: float, tolerance: float) -> int | None:
    """More rounds that would likely decide, if the half-width shrinks as 1/sqrt(n); None: unbounded."""
    half = (high - low) / 2.0
    needed = abs(abs(change) - tolerance)  # the half-width that separates the estimate from the edge
    if n < 2 or not math.isfinite(half):
        return 2 if n < 2 else None
    if needed <= 0 or half <= 0:
        return None
    more = math.ceil(n * (half / needed) ** 2) - n
    return max(1, more) if more <= MAX_MORE_ROUNDS else None


def decide(metric: str, interval: Interval, tolerance: float, unit: str = "rounds") -> Verdict:
    """The verdict for ``metric`` (B against A, current against baseline) from its interval."""
    worse_up = higher_is_worse(metric)
    change, low, high = interval.changes
    if not worse_up:  # orient so that a positive change is worse
        change, low, high = -change, -high, -low
    words = ("worse", "better") if metric in ABSOLUTE_METRICS else ("slower", "faster")
    if not interval.decisive:
        short = MIN_VALUES - max(interval.values, interval.n)
        if interval.values > interval.n:  # two samples: windows on each side
            short = math.ceil(short / 2)
        more = rounds_to_decide(interval.n, change, low, high, tolerance) or 0
        return Verdict("inconclusive", max(short, more), unit)
    if low > tolerance:
        return Verdict(words[0])
    if high < -tolerance:
        return Verdict(words[1])
    if -tolerance <= low and high <= tolerance:
        return Verdict("same")
    return Verdict("inconclusive", rounds_to_decide(interval.n, change, low, high, tolerance), unit)


def check_tolerance(value: float, what: str = "--tolerance") -> float:
    """A relative tolerance must lie in (0, 1)."""
    if not (0.0 < value < 1.0):
        raise ValueError(f"{what} must be a fraction in (0, 1), e.g. 0.05, not {value}")
    return value


def check_error_tolerance(points: float, what: str = "--error-tolerance") -> float:
    """An error-rate tolerance in percentage points, in (0, 100); returned as a fraction."""
    if not (0.0 < points < 100.0):
        raise ValueError(f"{what} is in percentage points, in (0, 100), e.g. 0.5, not {points}")
    return points / 100.0


def describe(metric: str, interval: Interval, verdict: Verdict | str) -> str:
    """One line: ``throughput: B/A 0.912 (95% CI 0.871 .. 0.955, 6 rounds): slower``."""
    if interval.kind == "difference":
        body = (f"{interval.estimate * 100:+.3f} points (95% CI {interval.low * 100:+.3f} .. "
                f"{interval.high * 100:+.3f})")
    else:
        body = f"{interval.estimate:.3f} (95% CI {interval.low:.3f} .. {interval.high:.3f})"
    return f"{metric}: {body}, n={interval.n}: {verdict}"
