"""High-resolution latency histograms keyed by model x transport x endpoint.

The one place the harness keeps request latencies: HDR histograms
(:class:`reporting.histogram.LatencyHistogram`) at
microsecond resolution (1 us .. 1 h, 3 significant digits, so every reported
value is within 0.1% of the recorded one), which

* record in ~2 us per request (cheap enough for a load generator's hot path),
* serialise to JSON-safe dicts (``to_wire``/``from_wire``) so worker processes
  can ship them to a master, and merge exactly (``merge``): the percentiles of
  a merged book are those of all samples together, not averages of percentiles;
* summarise to plain numbers (``summary``): per key requests, errors (by
  kind), throughput and p50/p90/p95/p99/p99.9/max in microseconds.

Failed requests go into a histogram of their own: a refused connection
answers in a millisecond, and mixed in, it would make a dead server look
fast. The reported percentiles (``latency_us``) are those of the successful
requests; the failures' own are ``failed_latency_us``.

It knows nothing about Locust: the load tests, the benchmarks and the report
writers all use it the same way::

    book = LatencyBook()
    book.record("mnist-svm", "rest", "infer", 512.3)          # microseconds
    book.record("mnist-svm", "grpc", "infer", 830.0, ok=False, kind="timeout")
    wire = book.to_wire()                                       # json.dumps-able
    total = LatencyBook.from_wire(wire); total.merge(other_book)
    total.summary(duration_s=10.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reporting.histogram import (
    HIGHEST_US,
    LOWEST_US,
    PERCENTILES,
    SIGNIFICANT_DIGITS,
    LatencyHistogram,
    WireFormatError,
)

__all__ = ["FAILED", "HIGHEST_US", "LOWEST_US", "PERCENTILES", "SIGNIFICANT_DIGITS", "WIRE_SCHEMA",
           "LatencyBook", "LatencyHistogram", "SeriesKey", "WireFormatError"]

WIRE_SCHEMA = 2  # 2: failures in a histogram of their own, counted by kind
LEGACY_SCHEMAS = (1,)  # one histogram for every outcome
FAILED = "failed"  # the kind of a failure recorded without one


class SeriesKey(NamedTuple):
    """What a latency series is about: one model, one transport, one endpoint."""

    model: str
    transport: str
    endpoint: str

    @property
    def label(self) -> str:
        return f"{self.model} {self.transport} {self.endpoint}"


@dataclass
class _Series:
    histogram: LatencyHistogram  # successful requests
    failed: LatencyHistogram = field(default_factory=LatencyHistogram)  # failed requests
    kinds: dict[str, int] = field(default_factory=dict)  # failures by kind

    @property
    def errors(self) -> int:
        return sum(self.kinds.values())

    def add(self, other: _Series) -> None:
        self.histogram.merge(other.histogram)
        self.failed.merge(other.failed)
        for kind, count in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + count


class LatencyBook:
    """Latency histograms and failure counts, one series per ``SeriesKey``.

    Every request goes in: a success into the series' histogram, a failure
    (``ok=False``) into its failures' histogram and its ``kind``'s count.
    ``requests`` in a summary counts both; the percentiles are the successes'.
    """

    def __init__(self) -> None:
        self._series: dict[SeriesKey, _Series] = {}

    # -- recording ----------------------------------------------------------

    def series(self, key: SeriesKey) -> _Series:
        entry = self._series.get(key)
        if entry is None:
            entry = self._series[key] = _Series(LatencyHistogram())
        return entry

    def record(self, model: str, transport: str, endpoint: str, latency_us: float, ok: bool = True,
               kind: str | None = None) -> None:
        self.record_key(SeriesKey(model, transport, endpoint), latency_us, ok, kind)

    def record_key(self, key: SeriesKey, latency_us: float, ok: bool = True, kind: str | None = None) -> None:
        entry = self._series.get(key) or self.series(key)
        if ok:
            entry.histogram.record(latency_us)
            return
        entry.failed.record(latency_us)
        kind = kind or FAILED
        entry.kinds[kind] = entry.kinds.get(kind, 0) + 1

    # -- reading ------------------------------------------------------------

    def keys(self) -> list[SeriesKey]:
        return sorted(self._series)

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key: object) -> bool:
        return key in self._series

    def histogram(self, key: SeriesKey) -> LatencyHistogram:
        """The successful requests of ``key``."""
        return self._series[key].histogram

    def failed_histogram(self, key: SeriesKey) -> LatencyHistogram:
        """The failed requests of ``key`` (their own latencies, apart)."""
        return self._series[key].failed

    def kinds(self, key: SeriesKey | None = None) -> dict[str, int]:
        """Failures by kind, of ``key`` or of every series."""
        return self._whole(key).kinds

    def _entries(self, key: SeriesKey | None) -> list[_Series]:
        if key is None:
            return list(self._series.values())
        return [self._series[key]] if key in self._series else []

    def _whole(self, key: SeriesKey | None = None) -> _Series:
        """``key``'s series (every series merged when None), as a new series."""
        whole = _Series(LatencyHistogram())
        for entry in self._entries(key):
            whole.add(entry)
        return whole

    def requests(self, key: SeriesKey | None = None) -> int:
        """Requests recorded, successful and failed."""
        return sum(s.histogram.count + s.failed.count for s in self._entries(key))

    def successes(self, key: SeriesKey | None = None) -> int:
        return sum(s.histogram.count for s in self._entries(key))

    def errors(self, key: SeriesKey | None = None) -> int:
        return sum(s.errors for s in self._entries(key))

    def combined(self, failed: bool = False) -> LatencyHistogram:
        """All series' successful (``failed``: failed) requests merged into one histogram."""
        whole = self._whole()
        return whole.failed if failed else whole.histogram

    # -- combining ----------------------------------------------------------

    def merge(self, other: LatencyBook) -> None:
        """Add every sample and error of ``other`` to this book."""
        for key, entry in other._series.items():
            self.series(key).add(entry)

    def take(self) -> LatencyBook:
        """Hand over everything recorded so far and start empty (for periodic deltas)."""
        taken = LatencyBook()
        taken._series, self._series = self._series, {}
        return taken

    def clear(self) -> None:
        self._series = {}

    # -- serialisation ------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """A JSON-safe dict holding every histogram exactly (see ``from_wire``)."""
        return {
            "schema": WIRE_SCHEMA,
            "unit": "us",
            "series": [
                {
                    "model": key.model,
                    "transport": key.transport,
                    "endpoint": key.endpoint,
                    "errors": entry.errors,
                    "kinds": dict(entry.kinds),
                    "clamped": entry.histogram.clamped,
                    "hdr": entry.histogram.encode(),
                    **({"failed_hdr": entry.failed.encode(), "failed_clamped": entry.failed.clamped}
                       if entry.failed.count else {}),
                }
                for key, entry in sorted(self._series.items())
                if entry.histogram.count or entry.failed.count
            ],
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> LatencyBook:
        if not isinstance(wire, Mapping) or wire.get("schema") not in (WIRE_SCHEMA, *LEGACY_SCHEMAS):
            found = wire.get("schema") if isinstance(wire, Mapping) else type(wire).__name__
            raise WireFormatError(
                f"not a LatencyBook wire dict of schema {WIRE_SCHEMA} (found schema {found!r}); "
                "produce it with LatencyBook.to_wire() from the same harness version"
            )
        book = cls()
        for item in wire.get("series", []):
            try:
                key = SeriesKey(str(item["model"]), str(item["transport"]), str(item["endpoint"]))
                entry = _Series(LatencyHistogram.decode(item["hdr"], item.get("clamped", 0)))
                if item.get("failed_hdr"):
                    entry.failed = LatencyHistogram.decode(item["failed_hdr"], item.get("failed_clamped", 0))
                kinds = item.get("kinds")
                errors = int(item.get("errors", 0))
                entry.kinds = ({str(k): int(v) for k, v in kinds.items()} if isinstance(kinds, Mapping)
                               else {FAILED: errors} if errors else {})
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise WireFormatError(f"a series entry lacks {exc}: {item!r:.120}") from None
            book.series(key).add(entry)
        return book

    # -- summary ------------------------------------------------------------

    def summary(self, duration_s: float | None) -> dict[str, Any]:
        """Per-key and total figures, in microseconds; throughput needs ``duration_s`` > 0."""
        series = [
            _summarise(
                {"model": key.model, "transport": key.transport, "endpoint": key.endpoint},
                self._series[key], duration_s,
            )
            for key in self.keys()
        ]
        total = _summarise({}, self._whole(), duration_s)
        return {"unit": "us", "series": series, "total": total}


def _summarise(head: dict[str, Any], entry: _Series, duration_s: float | None) -> dict[str, Any]:
    """One series' figures: ``latency_us`` of its successes, failures by kind and their own latencies."""
    histogram, errors = entry.histogram, entry.errors
    requests = histogram.count + entry.failed.count
    timed = duration_s is not None and duration_s > 0 and math.isfinite(duration_s)
    throughput = round(requests / duration_s, 3) if timed else None
    out = dict(head)
    out.update(
        requests=requests,
        successes=histogram.count,
        errors=errors,
        error_rate=round(errors / requests, 6) if requests else 0.0,
        throughput_rps=throughput,
        latency_us=histogram.stats(),
    )
    if errors:
        out["errors_by_kind"] = dict(sorted(entry.kinds.items()))
        out["failed_latency_us"] = entry.failed.stats()
    if histogram.clamped:
        out["clamped"] = histogram.clamped
    return out
