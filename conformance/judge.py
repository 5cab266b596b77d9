"""Judge each example of a rule against the known deviations that cover it.

A test knows the deviation entries of its rule, transport and model
(:class:`conformance.deviations.InForce`). Each example is described by its
*features* (the request's id, datatype, shape...), and an entry with a
``trigger`` covers only the examples whose features match it; the others are
checked as the rule says (so a deviation never masks the rest of its rule). A
covered example that fails as the entry documents is the known deviation; one
that fails otherwise is a real failure (:class:`DeviationChanged`); an entry
whose covered examples all passed no longer happens (:class:`DeviationFixed`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from conformance.calls import GrpcBytes, InferCall, RestBody
from conformance.checks import RuleViolation
from conformance.deviations import Deviation, InForce

JUDGE_KEY = pytest.StashKey["Judge"]()
IN_FORCE_KEY = pytest.StashKey[InForce]()  # the deviation entries a run applies
FEATURE_LIMIT = 200  # characters of one feature value kept


class DeviationChanged(AssertionError):
    """An example a known deviation covers failed, but not the way the entry says: update the entry."""


class DeviationFixed(AssertionError):
    """Every example a known deviation covers passed: the server no longer does it; remove the entry."""


class StopExploring(BaseException):
    """Every remaining example is covered by a deviation already seen: nothing more to learn.

    A BaseException, so that hypothesis lets it through instead of treating it as a failure.
    """


def features_of(value: Any) -> dict[str, str]:
    """What a trigger can match on, for one example (request) of a rule."""
    if isinstance(value, InferCall):
        found = {"model": value.model, "version": str(value.version or ""),
                 "raw": str(value.raw).lower(), "nested": str(value.nested).lower()}
        if value.id is not None:
            found["id"] = value.id
        if value.inputs:
            name, array = value.inputs[0]
            found["input"] = name
            found["shape"] = json.dumps(list(value.shape if value.shape is not None else np.shape(array)))
            found["rows"] = str(np.shape(array)[0]) if np.ndim(array) else "0"
            found["datatype"] = str(value.datatype_label or value.datatype or array.dtype)
        if value.outputs is not None:
            found["outputs"] = ",".join(value.outputs)
        if value.padding:
            found["padding"] = str(value.padding)
        return {k: v[:FEATURE_LIMIT] for k, v in found.items()}
    if isinstance(value, RestBody):
        return {"path": value.path, "content_type": str(value.headers.get("Content-Type", "")),
                "bytes": str(len(value.body))}
    if isinstance(value, GrpcBytes):
        return {"method": value.method, "bytes": str(len(value.payload))}
    if isinstance(value, Mapping):
        return {str(k): str(v)[:FEATURE_LIMIT] for k, v in value.items()}
    return {}


@dataclass
class Failure:
    """A failed example, kept for the report (root causes) and for ``--record-deviations``."""

    observed: str
    why: str
    repro: str
    features: dict[str, str]


@dataclass
class Judge:
    """The judgement of one test: its entries, what they covered, what failed."""

    entries: list[Deviation]
    recording: bool = False
    covered: Counter = field(default_factory=Counter)  # entry -> covered examples
    failed: Counter = field(default_factory=Counter)  # entry -> covered examples that failed as expected
    seen: Counter = field(default_factory=Counter)  # entry -> covered examples that failed as it documents
    failures: list[Failure] = field(default_factory=list)  # failures no entry explains
    passed: list[dict[str, str]] = field(default_factory=list)  # features of passing examples (recording)

    def check(self, run: Callable[[], Any], features: dict[str, str]) -> None:
        """Run one example's check and judge it."""
        covering = [] if self.recording else [e for e in self.entries if e.triggered_by(features)]
        for entry in covering:
            self.covered[entry] += 1
        try:
            run()
        except RuleViolation as failure:
            documented = [e for e in covering if failure.observed in e.observed]
            if documented:
                # Entries may overlap (an id entry and a model's entry): the failure is expected of
                # each entry covering it, and seen for those that document its signature.
                for entry in covering:
                    self.failed[entry] += 1
                for entry in documented:
                    self.seen[entry] += 1
                # Every example is covered alike and each entry showed itself: no more to learn. Never
                # while a real failure is being shrunk (hypothesis would drop it for this one).
                if not self.failures and all(not e.trigger and self.seen[e] for e in self.entries):
                    raise StopExploring() from None
                return
            self.failures.append(Failure(failure.observed, failure.why, failure.repro, features))
            if self.recording:
                return
            if covering:
                documented_as = sorted({o for e in covering for o in e.observed})
                raise DeviationChanged(
                    f"known deviation {covering[0].label} ({covering[0].place}) documents {documented_as}, "
                    f"but the server now does {failure.observed!r}: update that entry\n{failure}"
                ) from failure
            raise
        if self.recording:
            self.passed.append(features)

    def verdict(self) -> None:
        """After every example: xfail for a confirmed deviation, fail for one that no longer happens."""
        if self.recording and self.failures:
            first = self.failures[0]
            raise RuleViolation(
                f"{len(self.failures)} example(s) failed (recorded for --record-deviations); "
                f"the first: {first.why}\nrequest:\n{first.repro}", first.observed, first.repro)
        fixed = [e for e in self.entries if self.covered[e] and not self.failed[e]]
        if fixed:
            raise DeviationFixed("; ".join(
                f"known deviation {e.label} no longer happens: its {self.covered[e]} covered example(s) "
                f"passed (fixed by the server?): remove the entry at {e.place}" for e in fixed))
        seen = [e for e in self.entries if self.seen[e]]
        if seen:
            pytest.xfail("known deviation: " + "; ".join(
                f"{e.label} in {self.seen[e]} example(s) ({e.file.name if e.file else ''}:{e.line})"
                for e in seen))

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None
