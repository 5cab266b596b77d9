"""What happened to each test, reduced to one outcome per (rule, transport, model, variant)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pytest

PASS, DEVIATION, FAIL, SKIP = "pass", "known deviation", "fail", "skipped"
SEVERITY = {PASS: 0, SKIP: 1, DEVIATION: 2, FAIL: 3}


@dataclass
class Outcome:
    nodeid: str
    rule: str
    transport: str
    model: str  # "" for server-level rules
    variant: str  # other parameters, e.g. "endpoint=ready"
    status: str
    detail: str = ""
    examples: int = 0
    deviation: str = ""
    seconds: float = 0.0
    level: str = ""  # the rule's level (conformance.rules)
    gating: bool = True  # whether a failure of this test fails the run (see --fail-on)
    strict: bool = False  # a failure that counts whatever the level: deviation changed/fixed, test error
    observed: str = ""  # a failure's short signature: what the server did
    why: str = ""  # a failure's first line
    repro: str = ""  # the request that shows a failure
    note: str = ""  # e.g. "served but not advertised"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(report: pytest.TestReport) -> tuple[str, str] | None:
    """(status, detail) for one phase's report, or None when the phase says nothing."""
    if report.when == "call":
        if report.passed:
            return PASS, ""
        if report.skipped and hasattr(report, "wasxfail"):
            return DEVIATION, str(report.wasxfail)
        if report.skipped:
            return SKIP, _skip_reason(report)
        text = str(report.longrepr)
        if "[XPASS(strict)]" in text:
            return FAIL, "passed, but a known deviation is declared: fixed by the server? remove its entry"
        return FAIL, _first_lines(report.longreprtext)
    if report.skipped:
        return SKIP, _skip_reason(report)
    if report.failed:
        return FAIL, f"{report.when} error: {_first_lines(report.longreprtext)}"
    return None


def worse(current: str | None, new: str) -> str:
    if current is None:
        return new
    return new if SEVERITY[new] > SEVERITY[current] else current


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _first_lines(text: str, limit: int = 40) -> str:
    lines = [line for line in text.splitlines() if line.strip().startswith("E ")]
    chosen = lines[:limit] or text.splitlines()[-limit:]
    return "\n".join(line.strip().removeprefix("E ").strip() for line in chosen)


@dataclass(frozen=True)
class TestMeta:
    rule: str
    transport: str
    model: str
    variant: str
    params: dict[str, str]


def describe(item: pytest.Item, rule: str) -> TestMeta:
    """Rule, transport, model and remaining parameters of a collected test."""
    callspec = getattr(item, "callspec", None)
    params = {k: str(v) for k, v in (callspec.params if callspec else {}).items()}
    marker = item.get_closest_marker("transports")
    transport = params.get("transport") or (marker.args[0] if marker and len(marker.args) == 1 else "")
    params["transport"] = transport
    variant = ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("transport", "model"))
    return TestMeta(rule, transport, params.get("model", ""), variant, params)
