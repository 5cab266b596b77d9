"""Render a conformance run as Markdown: header, rule matrices, deviations, failures, skips."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conformance.calls import TRANSPORTS
from conformance.deviations import DEVIATIONS, Deviation
from conformance.results import DEVIATION, FAIL, PASS, SEVERITY, SKIP, Outcome
from conformance.rules import RULES, SERVER
from reporting.tables import markdown_table

TRANSPORT_TITLES = {"rest": "REST", "grpc": "gRPC"}
CELL = {PASS: "pass", DEVIATION: "known deviation", FAIL: "**FAIL**", SKIP: "skipped"}
NOT_APPLICABLE = "n/a"


@dataclass
class Header:
    title: str
    lines: Sequence[tuple[str, str]]


def render(header: Header, outcomes: Sequence[Outcome], models: Sequence[str],
           deviations_apply: bool, substitutions: dict[str, str], stopped: str | None,
           unused: Sequence[Deviation] = ()) -> str:
    parts = [f"# {header.title}", "", *[f"- **{k}**: {v}" for k, v in header.lines], ""]
    if stopped:
        parts += [f"> **The run stopped early:** {stopped}", ""]
    parts += _totals(outcomes)
    parts += _server_matrix(outcomes)
    parts += _model_matrix(outcomes, models)
    parts += _deviations(outcomes, deviations_apply, substitutions, unused)
    parts += _listing("Failures", [o for o in outcomes if o.status == FAIL])
    parts += _skips([o for o in outcomes if o.status == SKIP])
    return "\n".join(parts).rstrip() + "\n"


def _totals(outcomes: Sequence[Outcome]) -> list[str]:
    counts = Counter(o.status for o in outcomes)
    shown = ", ".join(f"{counts.get(s, 0)} {CELL[s].strip('*').lower()}"
                      for s in (PASS, DEVIATION, FAIL, SKIP))
    return [f"**Tests:** {len(outcomes)}: {shown}.", ""]


def _cell(outcomes: Iterable[Outcome]) -> str:
    counts = Counter(o.status for o in outcomes)
    if not counts:
        return NOT_APPLICABLE
    if len(counts) == 1:
        return CELL[next(iter(counts))]
    ordered = sorted(counts, key=lambda s: -SEVERITY[s])
    return ", ".join(f"{CELL[s]} {counts[s]}" for s in ordered)


def _by(outcomes: Sequence[Outcome]) -> dict[tuple[str, str, str], list[Outcome]]:
    grouped: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        grouped[(o.rule, o.transport, o.model)].append(o)
    return grouped


def _examples(outcomes: Iterable[Outcome], rule: str) -> int:
    return sum(o.examples for o in outcomes if o.rule == rule)


def _server_matrix(outcomes: Sequence[Outcome]) -> list[str]:
    grouped = _by(outcomes)
    header = ["rule", *(TRANSPORT_TITLES[t] for t in TRANSPORTS)]
    body = [[f"`{rule.id}`: {rule.says}", *(_cell(grouped.get((rule.id, t, ""), [])) for t in TRANSPORTS)]
            for rule in RULES.values() if rule.scope == SERVER]
    return ["## Server rules", "", *markdown_table(header, body), ""]


def _model_matrix(outcomes: Sequence[Outcome], models: Sequence[str]) -> list[str]:
    grouped = _by(outcomes)
    columns = [(t, m) for t in TRANSPORTS for m in models]
    header = ["rule", *(f"{TRANSPORT_TITLES[t]} {m}" for t, m in columns), "examples"]
    body = [[f"`{rule.id}`: {rule.says}", *(_cell(grouped.get((rule.id, t, m), [])) for t, m in columns),
             _examples(outcomes, rule.id)]
            for rule in RULES.values() if rule.scope != SERVER]
    rows = ["## Model rules (rule x transport x model)", "", *markdown_table(header, body)]
    return [*rows, "", "A cell with several results comes from variants of the rule (paths, endpoints, "
            "datatypes); the failures and skips below name them.", ""]


def _deviation_status(deviation: Deviation, outcomes: Sequence[Outcome], unused: Sequence[Deviation]) -> str:
    mine = [o for o in outcomes if o.deviation == deviation.label]
    if deviation in unused:
        return "unused (no model of this run is in its scope)"
    if not mine:
        return "not run"
    return _cell(mine).replace(CELL[DEVIATION], "confirmed").replace(CELL[FAIL], "**CHANGED / FIXED**")


def _deviations(outcomes: Sequence[Outcome], apply: bool, substitutions: dict[str, str],
                unused: Sequence[Deviation]) -> list[str]:
    rows = ["## Known deviations (conformance/deviations.py)", ""]
    if not apply:
        return [*rows, "The target is not a server listed in the deviation table: every rule is judged "
                "as written, and no failure is expected.", ""]
    body = [[f"`{d.rule}`" + "".join(f" ({k}={v})" for k, v in d.where.items()),
             TRANSPORT_TITLES[d.transport], d.scope, d.spec, d.server_does,
             _deviation_status(d, outcomes, unused)]
            for d in DEVIATIONS]
    columns = ["rule", "transport", "scope", "the spec says", "the server does", "this run"]
    rows += markdown_table(columns, body)
    rows += ["", "Reproducing requests:", ""]
    for d in DEVIATIONS:
        if d in unused:
            continue
        command = d.reproduce
        for key, value in substitutions.items():
            command = command.replace(key, value)
        rows += [f"- `{d.label}`", "", "  ```sh", f"  {command}", "  ```", ""]
    return rows


def _listing(title: str, outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        return []
    rows = [f"## {title}", ""]
    for o in outcomes:
        rows += [f"### `{o.nodeid}`", "", "```", o.detail.strip()[:4000], "```", ""]
    return rows


def _skips(outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        return []
    reasons = Counter(o.detail for o in outcomes)
    return ["## Skipped (not counted as passed)", "",
            *[f"- {count} test(s): {reason}" for reason, count in reasons.most_common()], ""]

