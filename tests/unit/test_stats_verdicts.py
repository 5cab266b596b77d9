"""reporting.stats: intervals, every metric's direction, verdicts against the tolerance."""

from __future__ import annotations

import pytest

from reporting import stats

LATENCY = ["min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]


def _pairs(ratio: float, n: int = 8, jitter: float = 0.01) -> tuple[list[float], list[float]]:
    a = [100.0 * (1 + jitter * ((i % 3) - 1)) for i in range(n)]
    return a, [x * ratio * (1 + jitter * ((i % 2) - 0.5)) for i, x in enumerate(a)]


@pytest.mark.parametrize("metric", LATENCY)
def test_a_higher_latency_is_slower_and_a_lower_one_faster(metric: str) -> None:
    a, b = _pairs(1.30)
    assert stats.decide(metric, stats.paired_ratio(a, b), 0.05).word == "slower"
    a, b = _pairs(0.70)
    assert stats.decide(metric, stats.paired_ratio(a, b), 0.05).word == "faster"


def test_higher_throughput_is_faster_and_lower_is_slower() -> None:
    a, b = _pairs(1.30)
    assert stats.decide("throughput", stats.paired_ratio(a, b), 0.05).word == "faster"
    a, b = _pairs(0.70)
    assert stats.decide("throughput", stats.paired_ratio(a, b), 0.05).word == "slower"


def test_error_rate_is_compared_in_absolute_points_against_its_own_tolerance() -> None:
    # 1 % -> 3 % of requests failed: +2 points, beyond a 0.5-point tolerance (a relative
    # tolerance of 10 % against an absolute difference would have called this "same").
    a = [0.010, 0.011, 0.009, 0.010, 0.010, 0.011]
    b = [0.030, 0.031, 0.029, 0.030, 0.030, 0.031]
    interval = stats.paired_difference(a, b)
    assert interval.kind == "difference" and interval.estimate == pytest.approx(0.02)
    assert stats.decide("error_rate", interval, 0.005).word == "worse"
    assert stats.decide("error_rate", stats.paired_difference(b, a), 0.005).word == "better"
    assert stats.decide("error_rate", stats.paired_difference(a, a), 0.005).word == "same"


def test_unknown_metric_is_an_error_not_better() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        stats.higher_is_worse("p42")


def test_every_reported_metric_has_a_direction() -> None:
    assert set(LATENCY) | {"throughput", "error_rate"} <= set(stats.HIGHER_IS_WORSE)


def test_interval_contains_the_estimate_and_no_spread_gives_no_width() -> None:
    a, b = _pairs(0.9, jitter=0.05)
    interval = stats.paired_ratio(a, b)
    assert interval.low <= interval.estimate <= interval.high
    flat = stats.paired_ratio([100.0] * 4, [90.0] * 4)
    assert flat.low == pytest.approx(0.9) and flat.high == pytest.approx(0.9)


def test_same_when_the_whole_interval_is_inside_the_tolerance() -> None:
    a, b = _pairs(1.0, n=10, jitter=0.005)
    assert stats.decide("throughput", stats.paired_ratio(a, b), 0.05).word == "same"


def test_inconclusive_says_how_many_more_rounds_would_likely_decide() -> None:
    # a 10 % drop measured with a lot of noise: the interval straddles the tolerance edge
    a = [100.0, 100.0, 100.0, 100.0]
    b = [70.0, 105.0, 95.0, 92.0]
    interval = stats.paired_ratio(a, b)
    verdict = stats.decide("throughput", interval, 0.05)
    assert verdict.word == "inconclusive"
    assert verdict.more_rounds is not None and verdict.more_rounds >= 1
    assert f"about {verdict.more_rounds} more rounds" in str(verdict)


def test_rounds_to_decide_follows_one_over_sqrt_n() -> None:
    # half-width 0.10 at n=4; a change of 0.10 against a 0.05 tolerance needs half-width 0.05:
    # (0.10 / 0.05)^2 = 4 times the rounds, 12 more
    assert stats.rounds_to_decide(4, 0.10, 0.0, 0.20, 0.05) == 12
    assert stats.rounds_to_decide(4, 0.05, -0.05, 0.15, 0.05) is None  # on the edge: never


def test_two_sample_interval_over_windows() -> None:
    interval = stats.two_sample_ratio([100, 102, 98], [80, 81, 79])
    assert interval.estimate == pytest.approx(0.8)
    assert interval.high < 0.9
    diff = stats.two_sample_difference([0.0, 0.0, 0.0], [0.02, 0.03, 0.025])
    assert stats.decide("error_rate", diff, 0.005).word == "worse"


def test_fewer_than_six_values_decide_nothing() -> None:
    # two rounds both 20 % down: by chance alone, both land on one side half the time
    interval = stats.paired_ratio([100.0, 100.0], [80.0, 81.0])
    verdict = stats.decide("throughput", interval, 0.05)
    assert verdict.word == "inconclusive" and verdict.more_rounds >= 4
    windows = stats.two_sample_ratio([100, 101], [80, 81])
    assert stats.decide("throughput", windows, 0.05).word == "inconclusive"
    separated = stats.two_sample_ratio([100, 101, 99], [80, 81, 79])
    assert stats.decide("throughput", separated, 0.05).word == "slower"


def test_expanded_interval_is_wider_for_fewer_values() -> None:
    assert stats.expanded_level(6) > stats.expanded_level(30) > stats.CONFIDENCE


def test_one_round_gives_an_unbounded_interval() -> None:
    interval = stats.paired_ratio([100.0], [50.0])
    assert stats.decide("throughput", interval, 0.05).word == "inconclusive"


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5])
def test_relative_tolerance_must_lie_strictly_between_0_and_1(value: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        stats.check_tolerance(value)


def test_error_tolerance_is_given_in_points() -> None:
    assert stats.check_error_tolerance(0.5) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="points"):
        stats.check_error_tolerance(0)
