"""The answers rules turn red on the fault each one is about, and only on it.

One ``fakes.faulty_proxy`` per fault in front of the reference deployment, and one
run of the suite per proxy limited to the rules named here (``-k``); the runs are
independent processes, started together. No gRPC target is given to a proxy, so
only the REST side of each rule is judged. ``--fail-on hardening``: the
content-encoding rule is harness policy, which otherwise does not fail a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

FAILED = "fail"
PASSED = "pass"


@dataclass(frozen=True)
class Case:
    fault: str
    must_fail: tuple[str, ...]  # rules whose every REST test must fail
    must_pass: tuple[str, ...]  # rules the fault does not touch

    @property
    def selection(self) -> str:
        return " or ".join(self.must_fail + self.must_pass)


CASES = {case.fault: case for case in (
    Case("duplicate-key", ("rest_answer_unique_keys",),
         ("rest_answer_strict_json", "rest_json_content_type", "infer_outputs_well_formed")),
    Case("nan-literal", ("rest_answer_strict_json",), ("rest_answer_unique_keys", "rest_json_content_type")),
    Case("text-content-type", ("rest_json_content_type",),
         ("rest_answer_strict_json", "infer_outputs_match_metadata")),
    Case("gzip-unasked", ("rest_content_encoding",), ("rest_answer_strict_json", "rest_json_content_type")),
    Case("wrong-output-datatype", ("infer_outputs_match_metadata",),
         ("rest_json_content_type", "infer_parameters_are_scalars")),
    Case("misnested-data", ("infer_outputs_well_formed",), ("rest_answer_strict_json",)),
)}


@pytest.fixture(scope="module")
def case_runs(request: pytest.FixtureRequest, suites_behind_proxies: Callable) -> dict[str, tuple[str, Any]]:
    """Per selected case: its proxy's URL and its suite run, all started together."""
    selected = {item.callspec.params["fault"] for item in request.session.items if item.path == request.path
                and getattr(item, "originalname", None) == test_answers_rule_catches_fault.__name__}
    return suites_behind_proxies({fault: ((fault,), ("-k", CASES[fault].selection, "--fail-on", "hardening"))
                                  for fault in selected})


@pytest.mark.parametrize("fault", CASES)
def test_answers_rule_catches_fault(fault: str, case_runs) -> None:
    case = CASES[fault]
    proxy_url, process = case_runs[fault]
    run = process.result()
    assert run.results is not None, f"no results.json written:\n{run.output[-3000:]}"
    assert run.returncode == 1, run.output[-3000:]
    for rule in case.must_fail:
        assert run.statuses(rule) == {FAILED}, (rule, run.statuses(rule), run.output[-3000:])
        assert all(proxy_url in o["detail"] for o in run.outcomes(rule))  # the request to repeat
    for rule in case.must_pass:
        assert run.statuses(rule) <= {PASSED, "skipped"} and PASSED in run.statuses(rule), \
            (rule, run.statuses(rule), run.output[-3000:])
