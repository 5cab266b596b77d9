"""The conformance suite turns red on a faulty server: each fault of ``fakes.faulty_proxy``
makes exactly the rules that check it fail, while unrelated rules still pass.

Each case has its own proxy and its own run of the suite; the runs are independent
processes, so the module starts them all at once and each test waits for its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

FAILED = "fail"
PASSED = "pass"


# predictions_match_oracle runs once per datatype: two of them are enough here.
ORACLE_SAMPLE = "(predictions_match_oracle and (FP32 or UINT8))"


@dataclass(frozen=True)
class Case:
    faults: tuple[str, ...]
    must_fail: tuple[str, ...]  # rules whose every REST test must fail
    must_pass: tuple[str, ...]  # rules the fault does not touch

    @property
    def selection(self) -> str:
        rules = self.must_fail + self.must_pass
        return " or ".join(ORACLE_SAMPLE if r == "predictions_match_oracle" else r for r in rules)


CASES = {
    "drop-id": Case(("drop-id",), ("infer_echoes_id",),
                    ("health_live", "server_metadata", "infer_outputs_well_formed",
                     "infer_echoes_model_name_and_version")),
    "wrong-shape": Case(("wrong-shape",), ("infer_outputs_well_formed", "infer_batch_sizes"),
                        ("infer_echoes_model_name_and_version",)),
    "500-unknown-model": Case(("500-unknown-model",), ("error_unknown_model",), ("error_unknown_version",)),
    "wrong-prediction": Case(("wrong-prediction",), ("predictions_match_oracle",),
                             ("infer_outputs_well_formed", "interop_tritonclient")),
    "no fault": Case((), (), ("infer_echoes_model_name_and_version", "infer_outputs_well_formed",
                              "error_unknown_model", "predictions_match_oracle")),
}


@pytest.fixture(scope="module")
def case_runs(request: pytest.FixtureRequest, suites_behind_proxies: Callable) -> dict[str, tuple[str, Any]]:
    """Per selected case: its proxy's URL and its suite run (a ``SuiteProcess``), all started together."""
    selected = {item.callspec.params["name"] for item in request.session.items if item.path == request.path
                and getattr(item, "originalname", None) == test_suite_catches_fault.__name__}
    return suites_behind_proxies({name: (case.faults, ("-k", case.selection))
                                  for name, case in CASES.items() if name in selected})


@pytest.mark.parametrize("name", CASES)
def test_suite_catches_fault(name: str, case_runs) -> None:
    case = CASES[name]
    proxy_url, process = case_runs[name]
    run = process.result()
    assert run.results is not None, f"no results.json written:\n{run.output[-3000:]}"
    assert run.returncode == (1 if case.must_fail else 0), run.output[-3000:]
    for rule in case.must_fail:
        assert run.statuses(rule) == {FAILED}, (rule, run.statuses(rule), run.output[-3000:])
        # The failure names the exact request that reproduces it, against the proxy.
        assert all(f"{proxy_url}/v2/models/" in o["detail"] and "curl -sS -X " in o["detail"]
                   for o in run.outcomes(rule))
    for rule in case.must_pass:
        assert run.statuses(rule) == {PASSED}, (rule, run.statuses(rule), run.output[-3000:])
    # No gRPC target was given for the proxy: gRPC rules are skipped, visibly, never passed.
    grpc = [o for rule in case.must_fail + case.must_pass for o in run.outcomes(rule, "grpc")]
    assert grpc and {o["status"] for o in grpc} == {"skipped"}
    assert "no --grpc-target given" in run.report
    assert ("**FAIL**" in run.report) == bool(case.must_fail)
    # One injected fault is one root cause per rule it breaks, listing every test it explains.
    causes = run.results["root_causes"]
    assert sorted(c["rule"] for c in causes) == sorted(case.must_fail), causes
    for cause in causes:
        assert sorted(cause["tests"]) == sorted(o["nodeid"] for o in run.outcomes(cause["rule"])), cause
        assert f"{proxy_url}/v2/models/" in cause["repro"], cause
    assert ("## Root causes" in run.report) == bool(case.must_fail)
