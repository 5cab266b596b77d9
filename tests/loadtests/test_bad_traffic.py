"""Bad traffic under load (``--bad-share``): options, the pool from the conformance catalogue, every answer
classified, bad requests kept out of Locust's failures and the abort rules, liveness, reports, thresholds.

The unit tests need no server; the Locust runs are short, bounded by -t and a subprocess
timeout, loopback only: the reference MLServer where the classification matters, the delay
stand-in for a server that dies. No assertion is about time.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.bad_requests import BUILDERS, not_applicable
from fakes.delay_server import DelayServer
from loadtests._abort import EXIT_ABORTED
from loadtests._bad_cost import Windows, compare
from loadtests._bad_pool import (
    KINDS,
    LOAD_OVERSIZE_BYTES,
    build_pool,
    kinds_in,
    models_under_test,
    parse_kinds,
    parse_share,
)
from loadtests._classify import (
    ACCEPTED,
    ACCEPTED_ALLOWED,
    CLASSES,
    CLIENT_ERROR,
    CLIENT_ERROR_BARE,
    CLOSED,
    SERVER_ERROR,
    TIMEOUT,
    UNCLASSIFIED,
    classify_grpc,
    classify_no_answer,
    classify_rest,
)
from loadtests._launch import LocustRun, run_locust
from loadtests._plan import PlanError
from loadtests._robustness import evaluate, metrics, parse_threshold
from loadtests._workload import build_workload
from oip import h2
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer

RUN_TIMEOUT_S = 180
LOAD_WAIT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_MODELS = ["mnist-svm", "mushroom-xgboost"]


# ------------------------------------------------------------ options


@pytest.mark.parametrize(("text", "share"), [("5%", 0.05), ("0.05", 0.05), ("0", 0.0), ("100%", 1.0),
                                             (" 2.5 % ", 0.025), ("", 0.0)])
def test_bad_share_takes_a_percentage_or_a_fraction(text: str, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["150%", "1.5", "-1%", "five", "5%%"])
def test_a_bad_share_outside_0_100_or_unparsed_is_refused(text: str) -> None:
    with pytest.raises(PlanError, match="--bad-share"):
        parse_share(text)


def test_bad_kinds_narrow_to_rule_ids_and_refuse_unknown_ones() -> None:
    assert parse_kinds("") == KINDS == tuple(BUILDERS)
    assert parse_kinds("error_deep_json, error_unknown_model") == ("error_deep_json", "error_unknown_model")
    with pytest.raises(PlanError, match="unknown bad kind error_nope"):
        parse_kinds("error_deep_json,error_nope")


@pytest.mark.parametrize("args", [
    ["--bad-share", "150%"], ["--bad-share", "5%", "--bad-kinds", "error_nope"],
    ["--bad-share", "5%", "--bad-threshold", "nope<1"], ["--bad-kinds", "error_deep_json"],
])
def test_bad_input_is_one_line_and_exit_2_before_any_load(tmp_path: Path, args: list[str]) -> None:
    run = run_locust(["-H", "http://127.0.0.1:9", "-t", "2s", *args], reports_root=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("bad" in errors[0] or "threshold" in errors[0])


def test_the_robustness_scenario_refuses_an_unknown_metric_with_exit_2() -> None:
    command = [sys.executable, "-m", "bench", "run", "--scenario", "robustness", "--slo", "nope<1"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown metric 'nope'" in done.stderr


# ------------------------------------------------------------ classification


@pytest.mark.parametrize(("status", "body", "allowed", "cls"), [
    (400, b'{"error": "bad datatype"}', False, CLIENT_ERROR),
    (422, b'{"detail": [{"msg": "Field required"}]}', False, CLIENT_ERROR_BARE),
    (404, b"not json", False, CLIENT_ERROR_BARE),
    (400, b'{"error": 3}', False, CLIENT_ERROR_BARE),
    (500, b"Internal Server Error", False, SERVER_ERROR),
    (503, b"", False, SERVER_ERROR),
    (200, b"{}", False, ACCEPTED),
    (200, b"{}", True, ACCEPTED_ALLOWED),
    (302, b"", False, UNCLASSIFIED),
])
def test_rest_answers_are_classified(status: int, body: bytes, allowed: bool, cls: str) -> None:
    assert classify_rest(status, body, allowed) == cls


def test_every_grpc_status_is_classified_as_the_issue_says() -> None:
    expected = {"INVALID_ARGUMENT": CLIENT_ERROR, "NOT_FOUND": CLIENT_ERROR,
                "FAILED_PRECONDITION": CLIENT_ERROR, "OUT_OF_RANGE": CLIENT_ERROR,
                "INTERNAL": SERVER_ERROR, "UNKNOWN": SERVER_ERROR,
                "UNIMPLEMENTED": SERVER_ERROR, "DATA_LOSS": SERVER_ERROR, "UNAVAILABLE": CLOSED,
                "DEADLINE_EXCEEDED": TIMEOUT, "OK": ACCEPTED}
    for status, cls in expected.items():
        assert classify_grpc(status) == cls, status
    assert all(classify_grpc(name) != UNCLASSIFIED for name in h2.STATUS_NAMES.values())
    assert classify_grpc("OK", allowed=True) == ACCEPTED_ALLOWED
    assert classify_no_answer("timeout") == TIMEOUT and classify_no_answer("connection") == CLOSED


# ------------------------------------------------------------ the pool: one catalogue


@pytest.fixture(scope="module")
def pool() -> dict:
    workload = build_workload(SEED_MODELS, 1, True)
    return build_pool(workload, str(MODELS_DIR), ["rest", "grpc"], KINDS, "http://127.0.0.1:8080")


def test_the_pool_holds_every_applicable_kind_of_the_catalogue_per_model_and_transport(pool: dict) -> None:
    models = models_under_test(build_workload(SEED_MODELS, 1, True), str(MODELS_DIR))
    for (model, transport), requests in pool.items():
        expected = {k for k, b in BUILDERS.items()
                    if b.for_transport(transport) is not None and not not_applicable(k, models[model])}
        assert {r.kind for r in requests} == expected, (model, transport)
    assert set(kinds_in(pool)) == {"rest", "grpc"}


def test_the_pool_is_drawn_with_a_fixed_seed_and_caps_the_oversized_kind(pool: dict) -> None:
    again = build_pool(build_workload(["mnist-svm"], 1, True), str(MODELS_DIR), ["rest"],
                       ("error_malformed_body", "error_oversized_payload"), "http://127.0.0.1:8080")
    first = [r for r in pool[("mnist-svm", "rest")] if r.kind in ("error_malformed_body",
                                                                 "error_oversized_payload")]
    assert {r.request for r in again[("mnist-svm", "rest")]} == {r.request for r in first}
    for requests in pool.values():
        for request in requests:
            assert len(request.body) <= LOAD_OVERSIZE_BYTES + 64 * 1024, request.kind
    malformed = [r for r in pool[("mnist-svm", "rest")] if r.kind == "error_malformed_body"]
    assert malformed and all(r.request.endswith(r.body) for r in malformed)  # raw bytes, as drawn
    with pytest.raises(ValueError):
        json.loads(malformed[0].body)


# ------------------------------------------------------------ thresholds and the cost comparison


def test_robustness_thresholds_gate_named_metrics() -> None:
    found = {"requests": 50, "by_class": {ACCEPTED: 3, SERVER_ERROR: 7}}
    document = {"total": {"requests": 1000, "errors": 2, "latency_us": {"p50": 3000, "p99": 40000}},
                "bad_traffic": {"liveness": {"lost_probes": 0}, "classification": found}}
    measured = metrics(document)
    assert measured["bad_accepted"] == 3 and measured["bad_server_error"] == 7
    assert measured["good_error_rate"] == pytest.approx(0.002) and measured["liveness_lost"] == 0
    texts = ["p99<50ms", "good_error_rate<=0.1%", "bad_accepted<=0", "bad_server_error<=10",
             "liveness_lost==0"]
    results = evaluate([parse_threshold(t) for t in texts], measured)
    assert [r["ok"] for r in results] == [True, False, False, True, True]
    assert evaluate([parse_threshold("bad_closed<=0")], {})[0]["ok"] is False  # not measured: fails
    with pytest.raises(PlanError):
        parse_threshold("bad_accepted<=3ms")


def test_windows_with_bad_traffic_are_compared_with_those_without() -> None:
    windows = Windows(5.0)
    for index in range(12):
        slow = index % 2 == 0  # even windows carry bad traffic
        for i in range(100):
            windows.record(index * 5.0 + 0.01 * i, (4000 if slow else 2000) + i, ok=True)
    found = compare(windows)
    assert found is not None and found["windows_left_out"] == 2
    verdicts = {m["metric"]: m["verdict"] for m in found["metrics"]}
    assert verdicts["p50"] == "slower" and verdicts["error_rate"] == "same"
    assert found["with_bad"]["p50_us"] > found["without_bad"]["p50_us"]


# ------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def mlserver_run(reference: ReferenceServer, tmp_path_factory: pytest.TempPathFactory) -> LocustRun:
    """MLServer 1.7.1 under 30% bad traffic throughout, a strict error-rate abort rule on the good
    traffic, and a threshold MLServer is known to breach (it answers some bad requests with a 500)."""
    e = reference.endpoints
    return run_locust(["-H", e.rest_url, "--grpc-host", e.grpc_target, "-u", "4", "-t", "8s",
                       "--bad-share", "30%", "--bad-window", "0", "--abort-when", "error-rate>1%/2s",
                       "--bad-threshold", "bad_unclassified==0", "--bad-threshold", "bad_server_error<=0"],
                      reports_root=tmp_path_factory.mktemp("bad"), timeout=RUN_TIMEOUT_S)


def test_every_bad_answer_of_mlserver_is_classified(mlserver_run: LocustRun) -> None:
    bad = mlserver_run.report["bad_traffic"]
    found = bad["classification"]
    assert found["requests"] > 0 and found["unclassified"] == 0
    assert set(found["by_class"]) <= set(CLASSES) - {UNCLASSIFIED}
    sent = {t: {r["kind"] for r in found["rows"] if r["transport"] == t} for t in ("rest", "grpc")}
    assert sent == {t: set(kinds) for t, kinds in bad["pool"].items()}  # every kind of the pool went out
    assert bad["liveness"]["probes"] > 0 and bad["liveness"]["lost"] is False


def test_bad_requests_are_neither_locust_failures_nor_counted_by_abort_rules(mlserver_run: LocustRun) -> None:
    doc = mlserver_run.report
    assert doc["aborted"] is None and doc["total"]["errors"] == 0
    assert doc["locust"]["failures"] == 0
    rows = list(csv.DictReader((mlserver_run.run_dir / "locust_stats.csv").open()))
    bad_rows = [r for r in rows if r["Type"] == "BAD"]
    assert {r["Name"] for r in bad_rows} == {"REST bad requests", "gRPC bad requests"}
    assert all(r["Failure Count"] == "0" for r in rows)
    assert sum(int(r["Request Count"]) for r in bad_rows) == doc["bad_traffic"]["classification"]["requests"]


def test_a_breached_threshold_exits_1_and_the_table_is_in_the_reports(mlserver_run: LocustRun) -> None:
    results = {r["threshold"]: r["ok"] for r in mlserver_run.report["bad_traffic"]["thresholds"]}
    assert results == {"bad_unclassified==0": True, "bad_server_error<=0": False}
    assert mlserver_run.returncode == 1, mlserver_run.stderr[-3000:]
    summary = json.loads((mlserver_run.run_dir / "summary.json").read_text())
    assert "bad_server_error<=0" in summary["verdict"] and summary["bad_traffic"]["classification"]["rows"]
    report = (mlserver_run.run_dir / "report.md").read_text()
    assert "## Bad traffic" in report and "| model | transport | bad kind |" in report
    assert "`error_malformed_body`" in report
    assert "bad traffic:" in mlserver_run.stdout and "error_malformed_body" in mlserver_run.stdout


def test_the_stock_client_survives_mlservers_silent_close_after_a_500(reference: ReferenceServer,
                                                                      tmp_path: Path) -> None:
    """MLServer 1.7.1 closes the connection after its REST 500s without saying so: FastHttpUser's
    client must not fail the next (good) request on it."""
    e = reference.endpoints
    run = run_locust(["-H", e.rest_url, "--grpc-host", e.grpc_target, "-u", "2", "-t", "5s",
                      "--client", "stock", "--transports", "rest", "--bad-share", "30%", "--bad-window", "0",
                      "--bad-kinds", "error_wrong_feature_count,error_data_length_mismatch"],
                     reports_root=tmp_path, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.report["total"]["errors"] == 0 and run.report["locust"]["failures"] == 0
    assert run.report["bad_traffic"]["classification"]["by_class"].get(SERVER_ERROR, 0) > 0


def test_a_server_that_dies_under_bad_traffic_is_reported_with_the_time(tmp_path: Path) -> None:
    with DelayServer(delay_ms=2, separate=False, max_seconds=300) as server:
        pid = server.pids["rest"]

        def kill() -> None:  # once the load is on (the stand-in answered 300 requests)
            deadline = time.monotonic() + LOAD_WAIT_S
            while server.truth().requests() < 300:
                assert time.monotonic() < deadline, "the load never reached the stand-in"
                time.sleep(0.2)
            os.kill(pid, signal.SIGKILL)

        run = run_locust(["-H", server.rest_url, "--grpc-host", server.grpc_target, "-u", "4", "-t", "60s",
                          "--bad-share", "10%"], reports_root=tmp_path, timeout=RUN_TIMEOUT_S, during=kill)
    assert run.returncode == EXIT_ABORTED, run.stderr[-3000:]
    live = run.report["bad_traffic"]["liveness"]
    assert live["lost"] is True and live["outages"]
    assert live["outages"][0]["at"].endswith("UTC") and live["outages"][0]["start_s"] is not None
    assert run.report["bad_traffic"]["classification"]["requests"] > 0
