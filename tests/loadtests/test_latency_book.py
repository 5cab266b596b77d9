"""Unit tests of reporting.latency: recording, percentiles, merging and serialising HDR histograms."""

from __future__ import annotations

import json
import random

import pytest

from reporting.latency import (
    HIGHEST_US,
    PERCENTILES,
    LatencyBook,
    LatencyHistogram,
    SeriesKey,
    WireFormatError,
)


def test_microsecond_resolution_survives() -> None:
    histogram = LatencyHistogram()
    for value in (480.0, 510.0, 530.0, 2_000.0):
        histogram.record(value)
    assert histogram.percentile(50) == 510  # a millisecond-rounding tool would say 0 or 1 ms
    assert histogram.min == 480
    assert histogram.max == 2_000


def test_percentiles_match_hdrhistogram() -> None:
    rng = random.Random(7)
    histogram = LatencyHistogram()
    for _ in range(20_000):
        histogram.record(rng.lognormvariate(7, 1.5))
    reference = histogram._hdr  # the library's own (slow) implementation
    for p in [0.0, 12.5, *(p for _, p in PERCENTILES), 100.0]:
        assert histogram.percentile(p) == reference.get_value_at_percentile(p), p
    assert histogram.min == reference.get_min_value()
    assert histogram.mean == pytest.approx(reference.get_mean_value(), rel=1e-9)


def test_values_out_of_range_are_clamped_and_counted() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.2)
    histogram.record(HIGHEST_US * 10)
    assert histogram.count == 2
    assert histogram.clamped == 1
    assert histogram.min == 1


def test_merge_equals_recording_everything_in_one_book() -> None:
    rng = random.Random(3)
    samples = [(rng.choice(["mnist-svm", "mushroom-xgboost"]), rng.choice(["rest", "grpc"]),
                rng.uniform(100, 50_000), rng.random() > 0.05) for _ in range(5_000)]
    whole = LatencyBook()
    parts = [LatencyBook(), LatencyBook(), LatencyBook()]
    for i, (model, transport, value, ok) in enumerate(samples):
        whole.record(model, transport, "infer", value, ok)
        parts[i % 3].record(model, transport, "infer", value, ok)
    merged = LatencyBook()
    for part in parts:
        merged.merge(LatencyBook.from_wire(json.loads(json.dumps(part.to_wire()))))
    assert merged.summary(10.0) == whole.summary(10.0)
    assert merged.requests() == len(samples)
    assert merged.errors() == sum(1 for *_, ok in samples if not ok)


def test_failures_stay_out_of_the_percentiles() -> None:
    """A refused connection answers in a millisecond: mixed in, it would make a dead server look fast."""
    book = LatencyBook()
    for _ in range(100):
        book.record("mnist-svm", "rest", "infer", 20_000.0)
    for _ in range(10_000):
        book.record("mnist-svm", "rest", "infer", 1_500.0, ok=False, kind="connection")
    book.record("mnist-svm", "rest", "infer", 50.0, ok=False, kind="wrong prediction")
    total = LatencyBook.from_wire(json.loads(json.dumps(book.to_wire()))).summary(1.0)["total"]
    assert total["latency_us"]["p50"] == pytest.approx(20_000, rel=0.001)
    assert total["requests"] == 10_101 and total["successes"] == 100 and total["errors"] == 10_001
    assert total["errors_by_kind"] == {"connection": 10_000, "wrong prediction": 1}
    assert total["failed_latency_us"]["p50"] == pytest.approx(1_500, rel=0.001)


def test_legacy_wire_reads_as_one_histogram() -> None:
    book = LatencyBook()
    book.record("m", "rest", "infer", 100.0)
    wire = {**book.to_wire(), "schema": 1}
    wire["series"][0]["errors"] = 1
    del wire["series"][0]["kinds"]
    assert LatencyBook.from_wire(wire).kinds() == {"failed": 1}


def test_take_hands_over_deltas() -> None:
    book = LatencyBook()
    book.record("mnist-svm", "rest", "infer", 500)
    first = book.take()
    book.record("mnist-svm", "rest", "infer", 700)
    assert first.requests() == 1 and book.requests() == 1
    first.merge(book)
    assert first.requests() == 2


def test_summary_has_per_key_figures_in_microseconds() -> None:
    book = LatencyBook()
    for value in range(1, 1001):
        book.record("mnist-svm", "grpc", "infer", value * 10.0, ok=value % 100 != 0, kind="timeout")
    summary = book.summary(duration_s=2.0)
    (series,) = summary["series"]
    assert (series["model"], series["transport"], series["endpoint"]) == ("mnist-svm", "grpc", "infer")
    assert series["requests"] == 1000 and series["errors"] == 10
    assert series["throughput_rps"] == 500.0
    latency = series["latency_us"]
    assert set(latency) == {"min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"}
    assert latency["p50"] == pytest.approx(4_990, rel=0.001)  # of the 990 successes
    assert latency["p99"] == pytest.approx(9_890, rel=0.002)
    assert latency["max"] == pytest.approx(9_990, rel=0.001)  # the successes' own: 10,000 µs failed
    assert series["successes"] == 990 and series["errors_by_kind"] == {"timeout": 10}
    assert series["failed_latency_us"]["min"] == pytest.approx(1_000, rel=0.001)
    assert summary["total"]["requests"] == 1000
    assert SeriesKey("mnist-svm", "grpc", "infer") in book


def test_empty_book_summarises_to_nothing() -> None:
    summary = LatencyBook().summary(None)
    assert summary["series"] == [] and summary["total"]["requests"] == 0


@pytest.mark.parametrize("wire", [
    {"schema": 99, "series": []},
    {"schema": 1, "series": [{"model": "m", "transport": "rest", "endpoint": "infer", "hdr": "garbage!"}]},
    {"schema": 1, "series": [{"model": "m"}]},
    [],
])
def test_bad_wire_data_is_refused(wire: object) -> None:
    with pytest.raises(WireFormatError):
        LatencyBook.from_wire(wire)  # type: ignore[arg-type]
