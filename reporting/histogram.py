"""One HDR histogram of microsecond latencies (1 us .. 1 h, 3 significant digits).

The building block of :class:`reporting.latency.LatencyBook`: records in about
2 us, serialises to JSON-safe dicts and merges exactly. Also used alone where
one series is enough (open-loop schedule lags, bad-traffic windows).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "LOWEST_US", "PERCENTILES", "SIGNIFICANT_DIGITS", "LatencyHistogram",
           "WireFormatError"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
#: Reported percentiles: (name in the JSON, percentile).
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0),
                                               ("p99.9", 99.9))


class WireFormatError(ValueError):
    """A serialised histogram or book could not be read back."""


class LatencyHistogram:
    """One HDR histogram of microsecond values, plus how many were clamped into range.

    Values below 1 us are recorded as 1 us (the resolution) and values above
    one hour as one hour (``clamped`` counts those), so recording never raises.
    """

    __slots__ = ("_hdr", "clamped")

    def __init__(self) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.clamped = 0

    def record(self, value_us: float, count: int = 1) -> None:
        value = int(value_us + 0.5)
        if value < LOWEST_US:
            value = LOWEST_US  # below the resolution, not out of range
        elif value > HIGHEST_US:
            value = HIGHEST_US
            self.clamped += count
        self._hdr.record_value(value, count)

    @property
    def count(self) -> int:
        return self._hdr.get_total_count()

    # hdrh computes percentiles and the mean in pure-Python loops over its
    # ~23k buckets (~10 ms each): too slow to run inside a load generator.
    # These read the same counts with numpy and give identical values.

    def _counts(self) -> np.ndarray:
        counts = self._hdr.counts
        return np.frombuffer(counts, dtype=np.dtype(f"<u{ctypes.sizeof(counts) // len(counts)}"))

    def percentiles(self, percentiles: Iterable[float]) -> dict[float, int]:
        """Values (us) at several percentiles (0..100) at once; 0 when empty.

        Same definition as HdrHistogram: the highest value equivalent to the
        bucket holding the ``ceil(p * count / 100)``-th sample.
        """
        total = self.count
        wanted = list(percentiles)
        if not total:
            return dict.fromkeys(wanted, 0)
        cumulative = np.cumsum(self._counts())
        lowest, highest = _bucket_bounds(len(cumulative))
        out = {}
        for p in wanted:
            target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
            index = int(np.searchsorted(cumulative, target))
            out[p] = int(highest[index] if p else lowest[index])
        return out

    def percentile(self, percentile: float) -> int:
        """The value (us) at ``percentile`` (0..100), or 0 when empty."""
        return self.percentiles([percentile])[percentile]

    @property
    def max(self) -> int:
        return self._hdr.get_max_value() if self.count else 0

    @property
    def min(self) -> int:
        if not self.count:
            return 0
        first = int(np.flatnonzero(self._counts())[0])
        return int(_bucket_bounds(self._hdr.counts_len)[0][first])

    @property
    def mean(self) -> float:
        """Mean of the bucket midpoints (as HdrHistogram computes it)."""
        if not self.count:
            return 0.0
        middle = _bucket_middles(self._hdr.counts_len)
        # (not np.dot: BLAS may start threads, which a load generator does not need)
        return float(np.multiply(self._counts(), middle).sum() / self.count)

    def merge(self, other: LatencyHistogram) -> None:
        if other.count:
            self._hdr.add(other._hdr)
        self.clamped += other.clamped

    def stats(self) -> dict[str, float | int]:
        """min, mean, the reported percentiles and max, in microseconds."""
        out: dict[str, float | int] = {"min": self.min, "mean": round(self.mean, 1)}
        values = self.percentiles(p for _, p in PERCENTILES)
        for name, p in PERCENTILES:
            out[name] = values[p]
        out["max"] = self.max
        return out

    def encode(self) -> str:
        """The histogram as a compact string (HdrHistogram's compressed base64 form)."""
        return self._hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, text: str, clamped: int = 0) -> LatencyHistogram:
        histogram = cls()
        if not isinstance(text, str) or not text:
            raise WireFormatError(f"an encoded histogram must be a non-empty string, got {text!r:.40}")
        try:
            decoded = HdrHistogram.decode(text.encode("ascii"))
        except Exception as exc:  # hdrh raises assorted errors on bad input
            raise WireFormatError(
                f"cannot decode histogram {text[:24]!r}... ({exc}); "
                "it must come from LatencyHistogram.encode()"
            ) from None
        if decoded.get_total_count():
            histogram._hdr.add(decoded)
        histogram.clamped = int(clamped)
        return histogram

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, p50={self.percentile(50)}us, max={self.max}us)"


@functools.lru_cache(maxsize=4)
def _bucket_bounds(counts_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest value of every bucket index (HdrHistogram's layout for our range)."""
    probe = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    if probe.counts_len != counts_len:
        raise WireFormatError(f"histogram with {counts_len} buckets, expected {probe.counts_len}")
    index = np.arange(counts_len, dtype=np.int64)
    bucket = (index >> probe.sub_bucket_half_count_magnitude) - 1
    sub_bucket = (index & (probe.sub_bucket_half_count - 1)) + probe.sub_bucket_half_count
    below = bucket < 0
    sub_bucket[below] -= probe.sub_bucket_half_count
    bucket[below] = 0
    lowest = sub_bucket << (bucket + probe.unit_magnitude)
    highest = lowest + (np.int64(1) << (bucket + probe.unit_magnitude)) - 1
    return lowest, highest


@functools.lru_cache(maxsize=4)
def _bucket_middles(counts_len: int) -> np.ndarray:
    lowest, highest = _bucket_bounds(counts_len)
    return (lowest + ((highest - lowest + 1) >> 1)).astype(np.float64)
