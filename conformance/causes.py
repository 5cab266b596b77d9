"""Root causes: failures grouped by rule and by what the server did, each listed once.

One server behaviour (say, a 501 on every versioned path) can fail many tests of
one rule: across models, paths and datatypes. A cause is (rule, transport, what
the server did); it lists the tests it explains and one reproduction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conformance.results import FAIL, Outcome


@dataclass
class Cause:
    rule: str
    level: str
    transport: str
    observed: str
    why: str
    repro: str
    gating: bool
    tests: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        where = self.transport or "any transport"
        models = f" ({', '.join(self.models)})" if self.models else ""
        return f"{self.rule} [{self.level}] over {where}: {self.observed}{models}"

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "level": self.level, "transport": self.transport,
                "observed": self.observed, "why": self.why, "repro": self.repro, "gating": self.gating,
                "tests": self.tests, "models": self.models}


def root_causes(outcomes: Sequence[Outcome]) -> list[Cause]:
    """The failed outcomes, one :class:`Cause` per (rule, transport, observed), in first-seen order."""
    causes: dict[tuple[str, str, str], Cause] = {}
    for o in outcomes:
        if o.status != FAIL:
            continue
        observed = o.observed or "(no signature: see the test's output)"
        key = (o.rule, o.transport, observed)
        cause = causes.get(key)
        if cause is None:
            cause = causes[key] = Cause(o.rule, o.level, o.transport, observed, o.why or _first(o.detail),
                                        o.repro, o.gating)
        cause.tests.append(o.nodeid)
        cause.gating = cause.gating or o.gating
        if o.model and o.model not in cause.models:
            cause.models.append(o.model)
    return list(causes.values())


def _first(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")
