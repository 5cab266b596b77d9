"""The suite uses what the target serves: a capability the target lacks fails once, in its probe rule.

A faulty proxy in front of the reference MLServer takes away one capability (or
contradicts itself); the conformance suite, run against it in a subprocess, must
fail exactly the probe rule about it, while the rules that can use what the
target does serve (the unversioned path, say) still run and pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from fakes.faulty_proxy import UNSERVED_VERSION

FAILED, PASSED, SKIPPED = "fail", "pass", "skipped"
MODELS = ("mnist-svm", "mushroom-xgboost")
INFER_RULES = ("infer_echoes_model_name_and_version", "infer_outputs_well_formed", "infer_batch_sizes",
               "infer_returns_only_requested_outputs", "infer_flat_and_nested_data_agree")


@dataclass(frozen=True)
class Case:
    fault: str
    args: tuple[str, ...]
    fails: str  # the one rule that fails, for every model, on REST
    passes: tuple[str, ...]  # rules that run and pass on REST, for every model




def _only(*rules: str) -> str:
    """A ``-k`` expression selecting exactly these rules' tests (``test_<rule>[`` names no other rule)."""
    return " or ".join(f"test_{rule}[" for rule in rules)


PROBE_RULES = ("probe_versioned_path_served", "probe_metadata_consistent")
CASES = {
    "no-versioned-paths": Case(
        "no-versioned-paths",
        ("--models-dir", "models", "-k",
         _only(*PROBE_RULES, "model_ready", "model_metadata", "model_metadata_lists_served_version",
               *INFER_RULES) + " or (test_predictions_match_oracle[ and FP32)"),
        "probe_versioned_path_served", (*INFER_RULES, "predictions_match_oracle")),
    "unserved-version-listed": Case(
        "unserved-version-listed",
        ("-k", _only(*PROBE_RULES, "model_ready", "model_metadata")),
        "probe_metadata_consistent", ("probe_versioned_path_served", "model_ready")),
}


@pytest.fixture(scope="module")
def case_runs(suites_behind_proxies: Callable) -> dict[str, tuple[str, Any]]:
    """Per case: its proxy's URL and its suite run, all started together."""
    return suites_behind_proxies({name: ((case.fault,), case.args) for name, case in CASES.items()})


def _rest(run, status: str | None = None) -> list[dict[str, Any]]:
    outcomes = [o for o in (run.results or {}).get("outcomes", []) if o["transport"] == "rest"]
    return [o for o in outcomes if status is None or o["status"] == status]


@pytest.mark.parametrize("name", CASES)
def test_missing_capability_fails_once(name: str, case_runs) -> None:
    case = CASES[name]
    proxy_url, process = case_runs[name]
    run = process.result()
    assert run.results is not None, f"no results.json written:\n{run.output[-3000:]}"
    assert run.returncode == 1, run.output[-3000:]
    # exactly the probe rule fails, once per model, with the request that shows it
    failed = _rest(run, FAILED)
    assert {o["rule"] for o in failed} == {case.fails}, [(o["rule"], o["detail"][:300]) for o in failed]
    assert sorted(o["model"] for o in failed) == sorted(MODELS)
    assert all(f"{proxy_url}/v2/models/" in o["detail"] for o in failed)
    for rule in case.passes:
        assert run.statuses(rule) == {PASSED}, (rule, run.outcomes(rule))
    # the probe's facts are in results.json, when the report writes them
    probe = run.results.get("probe")
    if probe is not None:
        assert {m["name"] for m in probe["models"]} == set(MODELS)


def test_rules_use_the_unversioned_path(case_runs) -> None:
    run = case_runs["no-versioned-paths"][1].result()
    versioned = [o for o in _rest(run) if "path=versioned" in o["variant"]
                 or o["rule"] == "model_metadata_lists_served_version"]
    assert len(versioned) == 3 * len(MODELS), versioned  # model_metadata, model_ready, lists_served_version
    for outcome in versioned:
        assert outcome["status"] == SKIPPED and "probe_versioned_path_served" in outcome["detail"], outcome
    for rule in ("model_metadata", "model_ready"):
        assert {o["status"] for o in run.outcomes(rule) if "path=unversioned" in o["variant"]} == {PASSED}
    probe = run.results.get("probe")
    if probe is not None:
        assert probe["versioned_paths"] == "not served"
        assert all(m["version"] is None and m["unversioned_served"] for m in probe["models"])
        assert all(a["status"] == 501 for m in probe["models"] for a in m["versioned"].values())


def test_listed_version_not_served(case_runs) -> None:
    run = case_runs["unserved-version-listed"][1].result()
    details = [o["detail"] for o in _rest(run, FAILED)]
    assert details and all(UNSERVED_VERSION in d for d in details), details
