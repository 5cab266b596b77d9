"""End-to-end runs of `locust -f loadtests/ --headless` against real and stand-in servers.

Every run goes through the harness's one Locust runner (:mod:`loadtests._launch`),
is short (a few seconds of load), bounded by -t and a subprocess timeout, and
sends load to loopback only. Where one run answers several questions it is a
module fixture read by several tests; the refused runs, which send nothing,
run side by side.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fakes.delay_server import DelayServer
from loadtests._launch import LocustRun, run_locust
from loadtests._workload import build_model_load, check_grpc, check_rest
from oip import h2
from oip.names import GRPC_MODEL_INFER, LOOPBACK
from oip.precise import GrpcConnection, HttpConnection
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer, free_ports

RUN_TIMEOUT_S = 180
# Long enough for the 3:1 --mix check on each transport: it fails by chance ~0.7% of the time with
# 150 requests on a transport, 0.02% with 300. MLServer's gRPC side is the slow one (~40 req/s with
# the precise client on a busy 2-core VM, ~15 with grpcio under gevent), so the stock run is longer.
MIXED_RUN_TIME = {"precise": "6s", "stock": "10s"}
CSV_WARNING = "could not finish Locust's CSV files"


def locust(reports: Path, *args: str) -> LocustRun:
    """Run Locust headless with the harness's locustfiles; the run folder goes under ``reports``."""
    return run_locust(args, reports_root=reports, timeout=RUN_TIMEOUT_S)


def by(document: dict, field: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for series in document["series"]:
        counts[series[field]] = counts.get(series[field], 0) + series["requests"]
    return counts


@pytest.fixture(scope="module")
def stand_in() -> Iterator[DelayServer]:
    with DelayServer(delay_ms=2, max_seconds=600) as server:
        yield server


# ------------------------------------------------------------ the reference deployment


@pytest.mark.parametrize("client", ["precise", "stock"])
def test_mixed_load_on_the_reference_deployment(reference: ReferenceServer, tmp_path: Path,
                                                client: str) -> None:
    e = reference.endpoints
    run = locust(tmp_path, "-u", "6", "-t", MIXED_RUN_TIME[client], "-H", e.rest_url,
                 "--grpc-host", e.grpc_target, "--mix", "mnist-svm=3,mushroom-xgboost=1", "--client", client)
    doc = run.report
    assert run.returncode == 0, run.stderr[-3000:]
    assert doc is not None and doc["complete"] is True
    assert doc["total"]["errors"] == 0 and doc["locust"]["failures"] == 0
    assert doc["total"]["requests"] == doc["locust"]["requests"] > 100
    assert {(s["model"], s["transport"]) for s in doc["series"]} == {
        (m, t) for m in ("mnist-svm", "mushroom-xgboost") for t in ("rest", "grpc")}
    for transport in ("rest", "grpc"):  # --mix weighs each transport's requests 3:1
        counts = {s["model"]: s["requests"] for s in doc["series"] if s["transport"] == transport}
        assert 1.8 <= counts["mnist-svm"] / counts["mushroom-xgboost"] <= 5.0, counts
    for series in doc["series"]:
        latency = series["latency_us"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert (run.run_dir / "locust.html").is_file()
    # Locust's CSVs are finished through its public StatsCSV writers: a Locust upgrade that
    # changes them shows here (the harness logs the warning and keeps the stale file).
    assert CSV_WARNING not in run.stderr
    rows = list(csv.DictReader((run.run_dir / "locust_stats.csv").open()))
    aggregated = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(aggregated["Request Count"]) == doc["total"]["requests"]


def test_precise_clients_speak_to_mlserver(reference: ReferenceServer) -> None:
    """Interop with grpcio's server and uvicorn: a 256-row request (past HTTP/2's default 64 KiB
    window, so MLServer's flow control paces it), errors as status codes, kernel-stamped timing."""
    e = reference.endpoints
    load = build_model_load("mnist-svm", batch_size=256, versioned=True, rest_url=e.rest_url)
    item = load.items[0]
    assert len(item.grpc_body) > h2.DEFAULT_WINDOW
    grpc_connection = GrpcConnection(LOOPBACK, e.grpc_port)
    http_connection = HttpConnection(LOOPBACK, e.http_port)
    try:
        for _ in range(3):
            reply = grpc_connection.call(GRPC_MODEL_INFER, item.grpc_body)
            assert reply.status == h2.GRPC_OK, reply.details
            assert check_grpc(load, item, reply.body) is None and reply.stamped
            answer = http_connection.exchange(item.rest_request)
            assert check_rest(load, item, answer.status, answer.body) is None and answer.stamped
        unknown = grpc_connection.call(GRPC_MODEL_INFER, item.grpc_body.replace(b"mnist-svm", b"mnist-xxx"))
        assert unknown.status != h2.GRPC_OK and "mnist-xxx" in unknown.details
        assert grpc_connection.call(GRPC_MODEL_INFER, item.grpc_body).status == h2.GRPC_OK
    finally:
        grpc_connection.close()
        http_connection.close()


# ------------------------------------------------------------------ the stand-in


def test_wrong_answers_fail_the_run(quiet_runs: dict[str, Any]) -> None:
    run = quiet_runs[WRONG_AND_CAPPED]
    doc = run.report
    assert run.returncode == 1, run.stderr[-3000:]
    assert doc is not None and doc["total"]["errors"] == doc["total"]["requests"] > 0
    # Locust groups failures by (method, name, error): the error is kind-level, one line per endpoint
    rows = list(csv.DictReader((run.run_dir / "locust_failures.csv").open()))
    assert rows and {r["Error"] for r in rows} == {"wrong prediction"}
    assert len(rows) <= 4  # not one line per held-out row
    # ... and the harness keeps the detail (model, row, both values) among its examples
    wrong = doc["failures"]["wrong prediction"]
    assert wrong["count"] == doc["total"]["errors"] and 1 <= len(wrong["examples"]) <= 3
    detail = wrong["examples"][0]["detail"]
    assert detail.startswith("wrong answer: m") and " row " in detail
    assert "server" in detail and "oracle" in detail
    assert doc["total"]["errors_by_kind"] == {"wrong prediction": doc["total"]["errors"]}


def test_max_requests_caps_the_run(quiet_runs: dict[str, Any]) -> None:
    run = quiet_runs[WRONG_AND_CAPPED]
    doc = run.report
    assert doc is not None, run.stderr[-3000:]
    assert doc["total"]["requests"] == doc["locust"]["requests"] == 40
    assert "max-requests" in doc["stop_reason"] and doc["duration_s"] < 20


def test_processes_merge_their_histograms(stand_in: DelayServer, tmp_path: Path) -> None:
    run = locust(tmp_path, "--processes", "2", "-u", "4", "-t", "3s", "-H", stand_in.rest_url,
                 "--grpc-host", stand_in.grpc_target)
    doc = run.report
    assert run.returncode == 0, run.stderr[-3000:]
    assert doc is not None and doc["plan"]["worker_processes"] == 2
    assert doc["total"]["requests"] == doc["locust"]["requests"] > 50
    assert set(by(doc, "transport")) == {"rest", "grpc"}
    assert doc["total"]["latency_us"]["p50"] >= 2000  # the stand-in holds every request 2 ms


def test_open_loop_follows_its_schedule(stand_in: DelayServer, tmp_path: Path) -> None:
    run = locust(tmp_path, "-u", "8", "-t", "3s", "--arrival-rate", "50", "-H", stand_in.rest_url,
                 "--grpc-host", stand_in.grpc_target, "--transports", "rest")
    doc = run.report
    assert run.returncode == 0, run.stderr[-3000:]
    assert doc is not None and doc["plan"]["mode"] == "open-loop"
    schedule = doc["schedule"]
    assert 100 <= schedule["scheduled"] <= 155  # 50/s for 3 s
    # every slot taken was sent; a request still in flight when Locust stops is not recorded
    assert schedule["scheduled"] - 3 <= doc["total"]["requests"] <= schedule["scheduled"]
    assert doc["total"]["latency_us"]["p50"] >= 2000


# ------------------------------------------------------------ refused before any load

REFUSALS = {
    "unknown-model": (["--mix", "mnist-svm=3,resnet=1"], ["unknown model 'resnet'"]),
    "mix-syntax": (["--mix", "mnist-svm:3"], ["unknown model 'mnist-svm:3'"]),
    "dead-grpc": (["--transports", "rest,grpc", "--grpc-host", f"{LOOPBACK}:{{dead}}"],
                  ["no gRPC endpoint answers"]),
    "dead-rest": (["-H", f"http://{LOOPBACK}:{{dead}}"], ["cannot reach the REST endpoint"]),
    # gRPC asked for, but the gRPC host is an HTTP/1.1 (REST-only) server
    "rest-only-grpc-host": (["--grpc-host", "{rest_hostport}"],
                            ["no gRPC endpoint answers", "--transports rest"]),
    # a --samples request that contradicts mnist-svm's declared signature (its input is FP32)
    "sample-contradicts": (["--samples", "{bad}/samples"], ["mnist-svm/fp64.json", "declared FP32"]),
    # a model repository whose model's own samples/ hold something that is not a V2 request
    "sample-not-v2": (["--models-dir", "{bad}/repo"], ["mnist-svm/samples/not-v2.json", "'inputs'"]),
    # abort rules and thresholds that do not parse
    "bad-abort-rule": (["--abort-when", "no-success>>5"], ["--abort-when 'no-success>>5' does not parse",
                                                           "error-rate>PERCENT%"]),
    "bad-abort-unit": (["--abort-when", "error-rate>150%"], ["error-rate takes a percentage"]),
    "bad-slo": (["--slo", "p99<<3ms"], ["cannot parse SLO 'p99<<3ms'"]),
    "slo-abort-alone": (["--slo-abort"], ["--slo-abort needs at least one --slo"]),
    # taking turns (python -m bench ab): a run that cannot keep to its slots does not start
    "turn-without-start": (["--turn", "0/2"], ["--turn needs --turn-start"]),
    "turn-open-loop": (["--turn", "1/2", "--turn-start", "{soon}", "--arrival-rate", "50"],
                       ["--turn works in closed loop only"]),
}


def bad_samples(folder: Path) -> Path:
    """``folder/samples/mnist-svm/fp64.json`` and a repository ``folder/repo`` with a non-V2 sample."""
    (folder / "samples" / "mnist-svm").mkdir(parents=True)
    (folder / "samples" / "mnist-svm" / "fp64.json").write_text(json.dumps({"inputs": [
        {"name": "predict", "datatype": "FP64", "shape": [1, 64], "data": [0.0] * 64}]}))
    model = folder / "repo" / "mnist-svm"
    (model / "samples").mkdir(parents=True)
    shutil.copy(MODELS_DIR / "mnist-svm" / "model-settings.json", model)
    (model / "samples" / "not-v2.json").write_text(json.dumps({"inputs": "predict"}))
    return folder


WRONG_AND_CAPPED = "wrong-and-capped"


def wrong_and_capped(reports: Path) -> LocustRun:
    """One run against a stand-in whose every answer is wrong, capped at 40 requests: it answers
    both test_wrong_answers_fail_the_run and test_max_requests_caps_the_run."""
    with DelayServer(delay_ms=1, wrong_every=1, separate=False, max_seconds=120) as server:
        return locust(reports, "-u", "2", "-t", "30s", "--max-requests", "40", "-H", server.rest_url,
                      "--grpc-host", server.grpc_target)


@pytest.fixture(scope="module")
def quiet_runs(stand_in: DelayServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The runs no test times, side by side: the wrong-and-capped run and every refused run.

    The refused runs send nothing to the stand-in; ``stand_in_requests`` is its count of
    inference requests once all of them are done."""
    dead = str(free_ports(1)[0])
    rest_hostport = stand_in.rest_url.removeprefix("http://")
    defaults = ["-H", stand_in.rest_url, "--grpc-host", stand_in.grpc_target]
    stand_in.reset()

    bad = bad_samples(tmp_path_factory.mktemp("bad-samples"))

    def refused(case: str) -> LocustRun:
        soon = f"{time.time() + 60:.3f}"
        args = [a.format(dead=dead, rest_hostport=rest_hostport, bad=bad, soon=soon)
                for a in REFUSALS[case][0]]
        return locust(tmp_path_factory.mktemp(case), "-t", "5s", *defaults, *args)

    with ThreadPoolExecutor(max_workers=len(REFUSALS) + 1) as pool:
        wrong = pool.submit(wrong_and_capped, tmp_path_factory.mktemp(WRONG_AND_CAPPED))
        runs = dict(zip(REFUSALS, pool.map(refused, REFUSALS), strict=True))
        runs[WRONG_AND_CAPPED] = wrong.result()
    runs["stand_in_requests"] = stand_in.truth().requests()
    return runs


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_input_stops_before_any_load(quiet_runs: dict[str, Any], case: str) -> None:
    run = quiet_runs[case]
    assert run.returncode == 2, run.stderr[-3000:]
    for fragment in REFUSALS[case][1]:
        assert fragment in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr[-3000:]  # one line saying what to change
    assert run.report is None  # no run folder: nothing was started
    assert quiet_runs["stand_in_requests"] == 0  # and no inference was sent
