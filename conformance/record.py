"""``--record-deviations FILE``: turn a run's failures into a baseline for the user to review.

One entry per (rule, transport, test variant), scoped to the models that failed
and, when some examples of those tests passed, to a trigger as narrow as the
failing examples show: the one feature whose failing values no passing example
had (the request ids that broke, the datatypes that broke...).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.judge import Judge
from conformance.results import TestMeta
from conformance.rules import RULES

MAX_TRIGGER_VALUES = 20  # more distinct failing values than this, and no class fits: no trigger
NOT_TRIGGERS = frozenset({"model", "version"})  # scoped by `models` / the test, never by trigger
# Classes of values a trigger generalises to (one, or two joined): all failing values match, no passing
# value does. A class covers the next run's drawn values too; a list of exact values only this run's.
CLASSES = (
    r"\x00",  # a NUL
    r"[\x00-\x1f\x7f]",  # a control character
    r"[^\x00-\xff]",  # a character outside Latin-1
    r"[^\x20-\x7e]",  # a character outside printable ASCII
    r"^\s|\s$",  # a leading or trailing blank
)


@dataclass(frozen=True)
class Judged:
    """One finished test, as the recorder needs it."""

    meta: TestMeta
    implementation: str | None
    judge: Judge


def narrow_trigger(failing: Sequence[dict[str, str]], passing: Sequence[dict[str, str]]) -> dict[str, str]:
    """A trigger covering every failing example and no passing one, on one feature; {} if none does."""
    if not passing or not failing:
        return {}
    common = set.intersection(*(set(f) for f in failing)) - NOT_TRIGGERS
    exact: tuple[str, set[str]] | None = None
    for key in sorted(common):
        failed = {f[key] for f in failing}
        passed = {p[key] for p in passing if key in p}
        if failed & passed:
            continue
        if (pattern := _class_of(failed, passed)) is not None:
            return {key: pattern}
        if len(failed) <= MAX_TRIGGER_VALUES and (exact is None or len(failed) < len(exact[1])):
            exact = (key, failed)
    if exact is None:
        return {}
    key, values = exact
    return {key: "^(?:" + "|".join(re.escape(v) for v in sorted(values)) + ")$"}


def _class_of(failed: set[str], passed: set[str]) -> str | None:
    """The narrowest class (or pair of classes) every failing value has and no passing value has."""
    candidates = [*CLASSES, *(f"{a}|{b}" for i, a in enumerate(CLASSES) for b in CLASSES[i + 1:])]
    for pattern in candidates:
        if all(re.search(pattern, v) for v in failed) and not any(re.search(pattern, v) for v in passed):
            return pattern
    return None


def entries(judged: Sequence[Judged], substitutions: dict[str, str]) -> list[dict[str, Any]]:
    """Baseline entries for every failure of ``judged`` (``substitutions``: URL -> ``$URL``...)."""
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Judged]] = defaultdict(list)
    for j in judged:
        where = tuple(sorted((k, v) for k, v in j.meta.params.items() if k not in ("transport", "model")))
        groups[(j.meta.rule, j.meta.transport, where)].append(j)
    found = []
    for (rule, transport, where), tests in groups.items():
        failed = [j for j in tests if j.judge.failures]
        if not failed:
            continue
        failures = [f for j in failed for f in j.judge.failures]
        passing = [p for j in failed for p in j.judge.passed]
        trigger = narrow_trigger([f.features for f in failures], passing)
        first = failures[0]
        entry: dict[str, Any] = {"rule": rule, "transport": transport}
        models = sorted({j.meta.model for j in failed if j.meta.model})
        if models:
            entry["models"] = models
        if where:
            entry["where"] = dict(where)
        if trigger:
            entry["trigger"] = trigger
        note = f"{len(failures)} failing example(s) recorded"
        if passing and not trigger:
            note += (f"; {len(passing)} passed, but no feature's values (exactly, up to "
                     f"{MAX_TRIGGER_VALUES}, or by a character class) tell them apart, so the entry "
                     "covers every example: narrow it")
        entry["observed"] = sorted({f.observed for f in failures})
        entry["spec"] = RULES[rule].quote or RULES[rule].says
        entry["server_does"] = f"answered {first.observed}: {first.why} ({note})"
        entry["reproduce"] = _with_placeholders(first.repro, substitutions)
        found.append(entry)
    return found


def _with_placeholders(text: str, substitutions: dict[str, str]) -> str:
    for value, name in substitutions.items():
        if value:
            text = text.replace(value, name)
    return text
