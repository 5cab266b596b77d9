"""The suite's tables agree with each other: every rule has its test, every deviation and
bad-request builder names a real rule, and the deviation table is fit to be reported."""

from __future__ import annotations

import ast
from pathlib import Path

from conformance.bad_requests import BUILDERS
from conformance.calls import TRANSPORTS
from conformance.deviations import DEVIATIONS, SERVERS, find
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
    assert error_rules == set(BUILDERS)
    for rule, builders in BUILDERS.items():
        assert builders.rest or builders.grpc, rule


def test_deviations_name_real_rules_and_are_complete() -> None:
    keys = set()
    for d in DEVIATIONS:
        assert d.rule in RULES, d.rule
        assert d.transport in TRANSPORTS, d.transport
        assert d.spec and d.server_does and d.observed and d.reproduce, d.label
        assert "$URL" in d.reproduce or "$GRPC" in d.reproduce, d.label
        assert d.label not in keys, f"{d.label} is listed twice"
        keys.add(d.label)


def test_deviations_apply_only_to_the_listed_server() -> None:
    some = DEVIATIONS[0]
    params = {"transport": some.transport, **some.where}
    listed = next(iter(SERVERS))
    assert find(listed, some.rule, params) == some
    assert find(("MLServer", listed[1]), some.rule, params) == some  # the name is not case-sensitive
    assert find((listed[0], "1.7.2"), some.rule, params) is None
    assert find(("triton", "2.50.0"), some.rule, params) is None
    assert find(listed, some.rule, {**params, "transport": "none"}) is None
