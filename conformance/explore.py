"""Run one rule's check over hypothesis-drawn examples, aware of known deviations.

``explore(strategy, check)`` draws examples with the active profile and calls
``check`` on each. Each example's request is ``note()``-d, so a failure prints
the exact request. For a known deviation the run stops at the first failure
(no shrinking), and a failure whose signature is not the documented one is
re-raised as :class:`DeviationChanged` (a real failure, not an expected one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conformance import profiles
from conformance.calls import TargetLost
from conformance.checks import RuleViolation
from conformance.deviations import Deviation

T = TypeVar("T")
EXIT_TARGET_LOST = 3
#: The fixtures' types: ``explore_examples(strategy, check, examples=())`` and ``check_once(check)``.
Explore = Callable[..., None]
CheckOnce = Callable[[Callable[[], Any]], None]
DEVIATION_KEY = pytest.StashKey[Deviation | None]()
EXAMPLES_KEY = pytest.StashKey[int]()


class DeviationChanged(AssertionError):
    """The rule still fails, but not the way the deviation table says: update the table."""


def explore(item: pytest.Item, strategy: st.SearchStrategy[T], check: Callable[[T], Any],
            examples: Sequence[T] = ()) -> None:
    """Check ``examples`` (edge cases always tried first), then drawn examples of ``strategy``."""
    deviation = item.stash.get(DEVIATION_KEY, None)
    chosen = profiles.for_known_deviation(settings.default) if deviation else settings.default

    def run(value: T) -> None:
        _count(item)
        check(value)

    for value in reversed(examples):
        run = example(value)(run)
    run = chosen(given(strategy)(run))

    # Each test keeps its own entry in hypothesis' example database (the same
    # hook hypothesis uses to tell parametrized tests apart).
    run.hypothesis.inner_test._hypothesis_internal_add_digest = item.nodeid.encode()
    _judged(item, deviation, run)


def once(item: pytest.Item, check: Callable[[], Any]) -> None:
    """Run a fixed (not drawn) check with the same deviation handling as :func:`explore`."""

    def run() -> None:
        _count(item)
        check()

    _judged(item, item.stash.get(DEVIATION_KEY, None), run)


def _count(item: pytest.Item) -> None:
    item.stash[EXAMPLES_KEY] = item.stash.get(EXAMPLES_KEY, 0) + 1


def _judged(item: pytest.Item, deviation: Deviation | None, run: Callable[[], None]) -> None:
    try:
        run()
    except TargetLost as lost:
        pytest.exit(f"the target stopped answering during {item.nodeid}: {lost}", returncode=EXIT_TARGET_LOST)
    except RuleViolation as failure:
        if deviation is not None and failure.observed not in deviation.observed:
            raise DeviationChanged(
                f"known deviation {deviation.label} documents {sorted(deviation.observed)}, "
                f"but the server now does {failure.observed!r}: update conformance/deviations.py\n{failure}"
            ) from failure
        raise
