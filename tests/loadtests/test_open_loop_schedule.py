"""Unit tests of the open-loop scheduler and the start-lag tracker."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from loadtests._schedule import ArrivalSchedule, LagTracker
from oip.clock import TimerFd


def test_constant_arrivals_are_evenly_spaced_from_the_start() -> None:
    schedule = ArrivalSchedule(200.0, "constant", start=100.0)
    times = [schedule.claim() for _ in range(5)]
    assert times == pytest.approx([100.0, 100.005, 100.010, 100.015, 100.020])
    assert schedule.issued == 5
    assert schedule.peek() == pytest.approx(100.025)


def test_each_slot_is_handed_out_once() -> None:
    schedule = ArrivalSchedule(50.0, start=0.0)
    claimed = [schedule.claim() for _ in range(100)]
    assert len(set(claimed)) == 100 and claimed == sorted(claimed)


def test_phase_interleaves_processes() -> None:
    a = ArrivalSchedule(10.0, start=0.0, phase=0.0)
    b = ArrivalSchedule(10.0, start=0.0, phase=0.05)
    assert [a.claim(), b.claim(), a.claim(), b.claim()] == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_poisson_arrivals_have_the_asked_rate_and_exponential_gaps() -> None:
    schedule = ArrivalSchedule(1000.0, "poisson", start=0.0, rng=random.Random(42))
    times = [schedule.claim() for _ in range(20_001)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(0.001, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.001, rel=0.05)  # exponential: sd == mean


def test_poisson_is_reproducible_with_a_seed() -> None:
    a = ArrivalSchedule(100.0, "poisson", start=0.0, rng=random.Random(1))
    b = ArrivalSchedule(100.0, "poisson", start=0.0, rng=random.Random(1))
    assert [a.claim() for _ in range(50)] == [b.claim() for _ in range(50)]


def test_rate_can_follow_a_profile() -> None:
    schedule = ArrivalSchedule(lambda t: 10.0 if t < 0.95 else 100.0, start=0.0)
    times = [schedule.claim() for _ in range(20)]
    assert times[10] == pytest.approx(1.0)
    assert times[11] - times[10] == pytest.approx(0.01)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf")])
def test_bad_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        ArrivalSchedule(rate, start=0.0)


def test_unknown_process_is_refused() -> None:
    with pytest.raises(ValueError, match="poisson"):
        ArrivalSchedule(10.0, "bursty", start=0.0)


def test_lag_tracker_counts_late_starts_and_merges() -> None:
    a, b = LagTracker(1000.0), LagTracker(1000.0)
    for lag in (0.0001, 0.0002, 0.0031):
        a.record(lag)
    b.record(-0.001)  # early counts as on time
    b.record(0.050)
    merged = LagTracker.from_wire(json.loads(json.dumps(a.to_wire())))
    merged.merge(LagTracker.from_wire(b.to_wire()))
    summary = merged.summary()
    assert summary["scheduled"] == 5 and summary["late"] == 2
    assert summary["lag_us"]["max"] == pytest.approx(50_000, rel=0.001)
    taken = merged.take()
    assert taken.scheduled == 5 and merged.scheduled == 0 and merged.to_wire() is None


@pytest.mark.skipif(not TimerFd.available(), reason="timerfd is Linux-only")
def test_timerfd_becomes_readable_only_after_its_time() -> None:
    import select
    import time

    timer = TimerFd()
    try:
        timer.arm(time.monotonic() + 0.05)
        assert select.select([timer.fd], [], [], 0)[0] == []
        assert not timer.consume()
        assert select.select([timer.fd], [], [], 5)[0] == [timer.fd]
        assert timer.consume()
    finally:
        timer.close()
