"""Every spec rule quotes the spec verbatim: its quote stands in docs/spec-audit.md's sentence table.

The table's quotes were checked against the spec files, so a rule's quote found
there (whitespace collapsed, markdown escapes and table pipes undone) is the
spec's own words. HARDENING rules are the harness's policy and quote nothing;
EXTENSION rules name their extension.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.rules import EXTENSION, HARDENING, MUST, RULES, SHOULD, Rule

AUDIT = Path(__file__).resolve().parents[2] / "docs" / "spec-audit.md"
ROW = re.compile(r"^\| (\d+) \| (?P<source>[^|]+?) \| `` (?P<sentence>.*?) `` \|", re.MULTILINE)


def _plain(text: str) -> str:
    """Whitespace collapsed; the table's markdown escapes (``\\|``, ``\\<``, ``\\>``) undone."""
    return " ".join(re.sub(r"\\([|<>])", r"\1", text).split())


def _sentences() -> list[str]:
    return [_plain(m["sentence"]) for m in ROW.finditer(AUDIT.read_text(encoding="utf-8"))]


SENTENCES = _sentences()
SPEC_RULES = [r for r in RULES.values() if r.level in (MUST, SHOULD)]


def test_the_sentence_table_is_read() -> None:
    assert len(SENTENCES) >= 150, f"read {len(SENTENCES)} rows of {AUDIT}: has the table's layout changed?"


@pytest.mark.parametrize("rule", SPEC_RULES, ids=lambda r: r.id)
def test_spec_rule_has_quote_and_source(rule: Rule) -> None:
    assert rule.quote.strip(), f"{rule.id} ({rule.level}) needs the spec sentence behind it as `quote`"
    assert re.match(r"^(rest|grpc)\.(md|yaml|proto) § \S", rule.source), \
        f"{rule.id}: source {rule.source!r} should read like 'rest.md § Model Ready'"


@pytest.mark.parametrize("rule", SPEC_RULES, ids=lambda r: r.id)
def test_spec_rule_quote_is_in_the_audit_table(rule: Rule) -> None:
    quote = _plain(rule.quote)
    assert any(quote in sentence for sentence in SENTENCES), \
        f"{rule.id}: quote {quote!r} is not (verbatim) in the sentence table of {AUDIT.name}"


@pytest.mark.parametrize("rule", [r for r in RULES.values() if r.level == HARDENING], ids=lambda r: r.id)
def test_hardening_rule_quotes_nothing(rule: Rule) -> None:
    assert not rule.quote and not rule.source, f"{rule.id} is harness policy: it quotes no spec sentence"


def test_extension_rules_name_their_extension() -> None:
    for rule in RULES.values():
        assert (rule.level == EXTENSION) == bool(rule.extension), rule.id
