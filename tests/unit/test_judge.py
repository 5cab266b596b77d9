"""Judging examples against deviations, root causes, --record-deviations and --fail-on gating."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.calls import InferCall
from conformance.causes import root_causes
from conformance.checks import RuleViolation
from conformance.deviations import Deviation
from conformance.judge import DeviationChanged, DeviationFixed, Judge, StopExploring, features_of
from conformance.record import narrow_trigger
from conformance.results import FAIL, PASS, Outcome
from conformance.rules import EXTENSION, HARDENING, MUST, RULES, SHOULD, Rule, gates

ID_ENTRY = Deviation("infer_echoes_id", "grpc", frozenset({"INTERNAL"}), trigger={"id": "[^ -~]"})


def _fails(observed: str):
    def run() -> None:
        raise RuleViolation("broken", observed, "repro")
    return run


def _passes() -> None:
    return None


def test_a_triggered_deviation_covers_its_examples_and_the_rest_are_still_checked() -> None:
    judge = Judge([ID_ENTRY])
    judge.check(_fails("INTERNAL"), {"id": "é"})  # covered, documented: expected
    judge.check(_passes, {"id": "plain"})  # not covered, checked, passes
    with pytest.raises(RuleViolation):
        judge.check(_fails("INTERNAL"), {"id": "plain"})  # not covered: a real failure
    assert judge.seen[ID_ENTRY] == 1 and judge.covered[ID_ENTRY] == 1


def test_a_covered_example_failing_otherwise_is_a_changed_deviation() -> None:
    with pytest.raises(DeviationChanged, match="now does 'UNKNOWN'"):
        Judge([ID_ENTRY]).check(_fails("UNKNOWN"), {"id": "é"})


def test_a_deviation_whose_covered_examples_all_pass_no_longer_happens() -> None:
    judge = Judge([ID_ENTRY])
    judge.check(_passes, {"id": "é"})
    with pytest.raises(DeviationFixed, match="remove the entry"):
        judge.verdict()


def test_a_seen_deviation_is_an_expected_failure_and_an_untouched_one_is_neither() -> None:
    judge = Judge([ID_ENTRY])
    judge.check(_fails("INTERNAL"), {"id": "é"})
    with pytest.raises(pytest.xfail.Exception, match="infer_echoes_id"):
        judge.verdict()
    untouched = Judge([ID_ENTRY])
    untouched.check(_passes, {"id": "plain"})
    untouched.verdict()  # never triggered: neither confirmed nor fixed


def test_an_untriggered_deviation_stops_exploring_once_seen() -> None:
    entry = Deviation("error_deep_json", "rest", frozenset({"422 detail"}))
    with pytest.raises(StopExploring):
        Judge([entry]).check(_fails("422 detail"), {})


def test_recording_keeps_every_failure_and_passing_features() -> None:
    judge = Judge([ID_ENTRY], recording=True)
    judge.check(_fails("INTERNAL"), {"id": "é"})
    judge.check(_passes, {"id": "plain"})
    assert [f.features for f in judge.failures] == [{"id": "é"}] and judge.passed == [{"id": "plain"}]
    with pytest.raises(RuleViolation, match="recorded"):
        judge.verdict()


def test_the_trigger_is_as_narrow_as_the_failing_examples_show() -> None:
    failing = [{"id": "é", "raw": "false"}, {"id": "日本", "raw": "true"}]
    passing = [{"id": "plain", "raw": "false"}]
    assert narrow_trigger(failing, passing) == {"id": r"[^\x20-\x7e]"}  # a class fits
    assert narrow_trigger([{"id": "a"}, {"id": "b"}], [{"id": "c"}]) == {"id": "^(?:a|b)$"}  # none does
    assert narrow_trigger(failing, []) == {}  # every example failed: the entry covers all
    assert narrow_trigger([{"id": "x"}], [{"id": "x"}]) == {}  # nothing tells them apart


def test_features_describe_a_request() -> None:
    call = InferCall("m", "1", (("x", np.zeros((3, 4), np.float32)),), id="é", raw=True)
    found = features_of(call)
    assert found["id"] == "é" and found["shape"] == "[3, 4]" and found["rows"] == "3"
    assert found["raw"] == "true" and found["datatype"] == "float32"


def _outcome(nodeid: str, rule: str, observed: str, model: str = "m", status: str = FAIL) -> Outcome:
    return Outcome(nodeid, rule, "rest", model, "", status, observed=observed, why="w", repro="r")


def test_failures_are_grouped_by_rule_transport_and_what_the_server_did() -> None:
    causes = root_causes([
        _outcome("a", "infer_echoes_id", "500 text", "m1"),
        _outcome("b", "infer_echoes_id", "500 text", "m2"),
        _outcome("c", "infer_echoes_id", "no-response"), _outcome("d", "health_live", "404 json"),
        _outcome("e", "health_live", "", status=PASS),
    ])
    assert [(c.rule, c.observed, c.tests) for c in causes] == [
        ("infer_echoes_id", "500 text", ["a", "b"]), ("infer_echoes_id", "no-response", ["c"]),
        ("health_live", "404 json", ["d"])]
    assert causes[0].models == ["m1", "m2"]


def test_fail_on_levels_and_unadvertised_extensions() -> None:
    must, should = RULES["health_live"], Rule("x", "model", "x", SHOULD)
    hardening = Rule("h", "model", "h", HARDENING)
    extension = Rule("e", "model", "e", EXTENSION, extension="statistics")
    assert gates(must, EXTENSION, ()) and gates(should, EXTENSION, ()) and not gates(hardening, EXTENSION, ())
    assert gates(hardening, HARDENING, ()) and not gates(should, MUST, ())
    assert gates(extension, EXTENSION, ["statistics"]) and not gates(extension, EXTENSION, ["other"])
    assert gates(extension, HARDENING, [])
    with pytest.raises(ValueError, match="choose one of"):
        gates(must, "MAY", ())


def test_overlapping_entries_share_a_failure_and_neither_reads_as_fixed() -> None:
    model_entry = Deviation("infer_echoes_id", "grpc", frozenset({"UNKNOWN"}))  # every example
    judge = Judge([ID_ENTRY, model_entry])
    judge.check(_fails("INTERNAL"), {"id": "é"})  # covered by both, documented by the id entry
    judge.check(_fails("UNKNOWN"), {"id": "plain"})  # covered by the model entry only
    assert judge.seen[ID_ENTRY] == 1 and judge.seen[model_entry] == 1
    with pytest.raises(pytest.xfail.Exception):
        judge.verdict()


def test_a_recorded_trigger_generalises_to_a_character_class_where_one_fits() -> None:
    failing = [{"id": "é"}, {"id": "日本"}, {"id": "tab\there"}]
    passing = [{"id": "plain"}, {"id": "with space"}]
    assert narrow_trigger(failing, passing) == {"id": r"[^\x20-\x7e]"}
    assert narrow_trigger([{"id": "ab\x00cd"}], [{"id": "ab"}, {"id": "é"}]) == {"id": r"\x00"}


def test_a_documented_failure_never_stops_the_exploration_of_a_real_one() -> None:
    entry = Deviation("error_deep_json", "rest", frozenset({"422 detail"}))
    judge = Judge([entry])
    with pytest.raises(DeviationChanged):
        judge.check(_fails("500 text"), {})  # a real failure: hypothesis now shrinks it
    judge.check(_fails("422 detail"), {})  # a shrink step failing as documented: no StopExploring
    assert judge.seen[entry] == 1 and len(judge.failures) == 1
