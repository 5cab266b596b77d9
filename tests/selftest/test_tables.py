"""The suite's tables agree with each other: every rule has its test, every bad-request builder
and every entry of the suite's deviation files names a real rule, and each file is fit to be
reported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conformance.bad_requests import BUILDERS
from conformance.calls import TRANSPORTS
from conformance.deviations import builtin_files, builtin_for, in_force, load
from conformance.rules import RULES, rule_of_test

SUITE = Path(__file__).resolve().parents[2] / "conformance"


def _test_functions() -> set[str]:
    names = set()
    for module in SUITE.glob("test_*.py"):
        tree = ast.parse(module.read_text())
        names |= {node.name for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return names


def test_every_rule_has_exactly_one_test_named_after_it() -> None:
    tests = {rule_of_test(name) for name in _test_functions()}
    assert tests == set(RULES), (sorted(set(RULES) - tests), sorted(tests - set(RULES)))


def test_every_error_rule_has_bad_requests_and_every_builder_a_rule() -> None:
    assert set(BUILDERS) <= set(RULES)
    error_rules = {r for r in RULES if r.startswith("error_")}
    assert error_rules <= set(BUILDERS)
    # Bad requests with a rule of their own that is not a client-error rule (a 2xx may be right).
    assert set(BUILDERS) - error_rules == {"infer_mistyped_element_coerced_or_refused"}
    for rule, builders in BUILDERS.items():
        assert builders.rest or builders.grpc, rule


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.name)
def test_builtin_deviation_files_name_real_rules_and_are_complete(path: Path) -> None:
    baseline = load(path)  # raises on an unknown rule, key or transport
    assert path.name == f"{baseline.name.lower()}-{baseline.version}.toml", "one file per server identity"
    keys = set()
    for d in baseline.entries:
        assert d.transport in TRANSPORTS, d.label
        assert d.spec and d.server_does and d.observed and d.reproduce, d.label
        assert "$URL" in d.reproduce or "$GRPC" in d.reproduce, d.label
        key = (d.label, tuple(sorted(d.observed)))
        assert key not in keys, f"{d.label} is listed twice ({d.place})"
        keys.add(key)


def test_the_builtin_baseline_is_chosen_by_the_identity_get_v2_reports() -> None:
    mlserver = builtin_for("MLServer", "1.7.1")  # the name is not case-sensitive
    assert mlserver is not None and mlserver.entries
    assert builtin_for("mlserver", "1.7.2") is None
    assert in_force("mlserver", "1.7.2").entries == ()
    assert in_force("mlserver", "1.7.1", builtin=False).entries == ()
    some = mlserver.entries[0]
    params = {"transport": some.transport, **some.where}
    found = in_force("mlserver", "1.7.1").find(some.rule, params)
    assert some.rule in {d.rule for d in found}
    assert in_force("mlserver", "1.7.1").find(some.rule, {**params, "transport": "none"}) == []
