"""Render a conformance run as Markdown: header, levels, root causes, rule matrices, deviations, skips."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from conformance.calls import TRANSPORTS
from conformance.causes import Cause
from conformance.deviations import Deviation, InForce
from conformance.results import DEVIATION, FAIL, PASS, SEVERITY, SKIP, Outcome
from conformance.rules import LEVELS, RULES, SERVER
from reporting.tables import markdown_table

TRANSPORT_TITLES = {"rest": "REST", "grpc": "gRPC"}
CELL = {PASS: "pass", DEVIATION: "known deviation", FAIL: "**FAIL**", SKIP: "skipped"}
NOT_APPLICABLE = "n/a"


@dataclass
class Header:
    title: str
    lines: Sequence[tuple[str, str]]


def render(header: Header, outcomes: Sequence[Outcome], models: Sequence[str],
           in_force: InForce, substitutions: dict[str, str], stopped: str | None,
           unused: Sequence[Deviation] = (), causes: Sequence[Cause] = (),
           coverage: Mapping[Deviation, tuple[int, int]] | None = None) -> str:
    """``coverage``: per entry, how many of its tests ran and how many examples it covered."""
    parts = [f"# {header.title}", "", *[f"- **{k}**: {v}" for k, v in header.lines], ""]
    if stopped:
        parts += [f"> **The run stopped early:** {stopped}", ""]
    parts += _totals(outcomes)
    parts += _levels(outcomes)
    parts += _causes(causes, {o.nodeid: o for o in outcomes}, substitutions)
    parts += _server_matrix(outcomes)
    parts += _model_matrix(outcomes, models)
    parts += _deviations(outcomes, in_force, substitutions, unused, coverage or {})
    parts += _notes([o for o in outcomes if o.note])
    parts += _skips([o for o in outcomes if o.status == SKIP])
    return "\n".join(parts).rstrip() + "\n"


def _levels(outcomes: Sequence[Outcome]) -> list[str]:
    columns = ["level", *(CELL[s].strip("*") for s in (PASS, DEVIATION, FAIL, SKIP)), "fail the run"]
    body = []
    for level in LEVELS:
        mine = [o for o in outcomes if o.level == level]
        counts = Counter(o.status for o in mine)
        gating = sum(o.gating for o in mine if o.status == FAIL)
        body.append([level, *(counts.get(s, 0) for s in (PASS, DEVIATION, FAIL, SKIP)), gating])
    return ["## Levels", "", *markdown_table(columns, body), "",
            "MUST and SHOULD: the OIP specification; extension: Triton's protocol extensions; hardening: "
            "the harness's own policy. See `conformance/rules.py` and `docs/spec-audit.md`.", ""]


def _causes(causes: Sequence[Cause], by_id: dict[str, Outcome], substitutions: dict[str, str]) -> list[str]:
    if not causes:
        return []
    rows = ["## Root causes", "", f"{sum(len(c.tests) for c in causes)} failed tests come from "
            f"{len(causes)} cause(s): a rule, a transport and what the server did.", ""]
    for number, cause in enumerate(causes, 1):
        gate = "" if cause.gating else " (does not fail the run at this --fail-on)"
        rows += [f"### {number}. `{cause.rule}` [{cause.level}] over {cause.transport or 'any'}: "
                 f"{cause.observed}{gate}", "", f"{cause.why}", "",
                 f"Tests it explains ({len(cause.tests)}): " + ", ".join(f"`{t}`" for t in cause.tests), ""]
        repro = substituted(cause.repro, substitutions)
        if repro:
            rows += ["Reproduce:", "", "```", repro.strip()[:4000], "```", ""]
        first = by_id.get(cause.tests[0])
        if first is not None and first.detail:
            rows += ["<details><summary>first test's output</summary>", "", "```",
                     first.detail.strip()[:4000], "```", "", "</details>", ""]
    return rows


def substituted(text: str, substitutions: dict[str, str]) -> str:
    """``text`` with each placeholder (``$URL``, ``$GRPC``) replaced by its value."""
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


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


def _deviation_status(deviation: Deviation, outcomes: Sequence[Outcome], unused: Sequence[Deviation],
                      coverage: Mapping[Deviation, tuple[int, int]]) -> str:
    if deviation in unused:
        return "unused (no model of this run is in its scope)"
    mine = [o for o in outcomes if deviation.label in o.deviation.split("\n")]
    if mine:
        return f"confirmed in {len(mine)} test(s)"
    tests, covered = coverage.get(deviation, (0, 0))
    if not tests:
        return "not run (its tests were not selected or were skipped)"
    if not covered:
        return (f"not exercised: its trigger matched no example of its {tests} test(s) in this run (the "
                "draws missed it, or these models cannot show it; a trigger that never matches is a typo)")
    return "not confirmed (see the root causes above: fixed or changed)"


def _deviations(outcomes: Sequence[Outcome], in_force: InForce, substitutions: dict[str, str],
                unused: Sequence[Deviation], coverage: Mapping[Deviation, tuple[int, int]]) -> list[str]:
    rows = ["## Known deviations", "", f"In force: {in_force.describe()}.", ""]
    if not in_force.entries:
        return [*rows, "No baseline applies to this server: every rule is judged as written, and no failure "
                "is expected. Record one with `--record-deviations FILE`.", ""]
    body = [[f"`{d.rule}`" + "".join(f" ({k}={v})" for k, v in d.where.items()),
             TRANSPORT_TITLES[d.transport], d.scope, d.spec, d.server_does,
             _deviation_status(d, outcomes, unused, coverage), f"{d.file.name if d.file else ''}:{d.line}"]
            for d in in_force.entries]
    columns = ["rule", "transport", "scope", "the spec says", "the server does", "this run", "entry"]
    rows += markdown_table(columns, body)
    rows += ["", "Reproducing requests:", ""]
    for d in in_force.entries:
        if d in unused or not d.reproduce:
            continue
        command = substituted(d.reproduce, substitutions)
        rows += [f"- `{d.label}`", "", "  ```sh", f"  {command}", "  ```", ""]
    return rows


def _notes(outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        return []
    return ["## Notes", "", *[f"- `{o.nodeid}`: {o.note}" for o in outcomes], ""]


def _skips(outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        return []
    reasons = Counter(o.detail for o in outcomes)
    return ["## Skipped (not counted as passed)", "",
            *[f"- {count} test(s): {reason}" for reason, count in reasons.most_common()], ""]

