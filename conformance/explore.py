"""Run one rule's check over hypothesis-drawn examples, judged against known deviations.

``explore(strategy, check)`` draws examples with the active profile and calls
``check`` on each. Each example's request is ``note()``-d, so a failure prints
the exact request. Each example is judged by the test's :class:`~conformance.judge.Judge`:
examples a known deviation covers and that fail as it says are expected, every
other example is checked as the rule says (see :mod:`conformance.judge`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conformance.calls import TargetLost
from conformance.judge import JUDGE_KEY, Judge, StopExploring, features_of

T = TypeVar("T")
EXIT_TARGET_LOST = 3
#: The fixtures' types: ``explore_examples(strategy, check, examples=(), features=None)`` and
#: ``check_once(check, features=None)``.
Explore = Callable[..., None]
CheckOnce = Callable[..., None]
EXAMPLES_KEY = pytest.StashKey[int]()


def explore(item: pytest.Item, strategy: st.SearchStrategy[T], check: Callable[[T], Any],
            examples: Sequence[T] = (), features: Callable[[T], Mapping[str, str]] | None = None) -> None:
    """Check ``examples`` (edge cases always tried first), then drawn examples of ``strategy``.

    ``features(example)`` describes an example for deviation triggers (default: the request's).
    """
    judge = _judge(item)
    describe = features or features_of

    def run(value: T) -> None:
        _count(item)
        judge.check(lambda: check(value), dict(describe(value)))

    for value in reversed(examples):
        run = example(value)(run)
    run = settings.default(given(strategy)(run))

    # Each test keeps its own entry in hypothesis' example database (the same
    # hook hypothesis uses to tell parametrized tests apart).
    run.hypothesis.inner_test._hypothesis_internal_add_digest = item.nodeid.encode()
    _judged(item, judge, run)


def once(item: pytest.Item, check: Callable[[], Any], features: Mapping[str, str] | None = None) -> None:
    """Run a fixed (not drawn) check, judged like drawn ones."""
    judge = _judge(item)

    def run() -> None:
        _count(item)
        judge.check(check, dict(features or {}))

    _judged(item, judge, run)


def _judge(item: pytest.Item) -> Judge:
    judge = item.stash.get(JUDGE_KEY, None)
    if judge is None:
        judge = item.stash[JUDGE_KEY] = Judge([])
    return judge


def _count(item: pytest.Item) -> None:
    item.stash[EXAMPLES_KEY] = item.stash.get(EXAMPLES_KEY, 0) + 1


def _judged(item: pytest.Item, judge: Judge, run: Callable[[], None]) -> None:
    try:
        run()
    except TargetLost as lost:
        pytest.exit(f"the target stopped answering during {item.nodeid}: {lost}", returncode=EXIT_TARGET_LOST)
    except StopExploring:
        pass
    judge.verdict()
