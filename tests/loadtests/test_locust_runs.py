"""End-to-end runs of `locust -f loadtests/ --headless` against real and stand-in servers.

Each run is short (a few seconds of load), bounded by -t and a subprocess
timeout, and sends load to loopback only.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.delay_server import DelayServer
from loadtests._workload import GRPC_METHOD, build_model_load, check_grpc, check_rest
from oip import h2
from oip.precise import GrpcConnection, HttpConnection
from reference.paths import REPO_ROOT
from reference.server import ReferenceServer, free_ports

RUN_TIMEOUT_S = 180


def locust(reports: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run Locust headless with the harness's locustfiles; return the process and latency.json."""
    command = [sys.executable, "-m", "locust", "-f", "loadtests/", "--headless", "--only-summary",
               "--reports-root", str(reports), *args]
    process = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = reports / "loadtest" / "latest" / "latency.json"
    return process, (json.loads(report.read_text()) if report.exists() else None)


def by(document: dict, field: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for series in document["series"]:
        counts[series[field]] = counts.get(series[field], 0) + series["requests"]
    return counts


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceServer]:
    with ReferenceServer(ports="free") as server:
        yield server


@pytest.fixture(scope="module")
def stand_in() -> Iterator[DelayServer]:
    with DelayServer(delay_ms=2, max_seconds=600) as server:
        yield server


@pytest.mark.parametrize("client", ["precise", "stock"])
def test_mixed_load_on_the_reference_deployment(reference: ReferenceServer, tmp_path: Path,
                                                client: str) -> None:
    e = reference.endpoints
    process, doc = locust(tmp_path, "-u", "6", "-t", "10s", "-H", e.rest_url, "--grpc-host", e.grpc_target,
                          "--mix", "mnist-svm=3,mushroom-xgboost=1", "--client", client)
    assert process.returncode == 0, process.stderr[-3000:]
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
    run = tmp_path / "loadtest" / "latest"
    assert (run / "locust.html").is_file()
    rows = list(csv.DictReader((run / "locust_stats.csv").open()))
    aggregated = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(aggregated["Request Count"]) == doc["total"]["requests"]


def test_precise_clients_speak_to_mlserver(reference: ReferenceServer) -> None:
    """Interop with grpcio's server and uvicorn: a 256-row request (past HTTP/2's default 64 KiB
    window, so MLServer's flow control paces it), errors as status codes, kernel-stamped timing."""
    e = reference.endpoints
    load = build_model_load("mnist-svm", batch_size=256, versioned=True, rest_url=e.rest_url)
    item = load.items[0]
    assert len(item.grpc_body) > h2.DEFAULT_WINDOW
    grpc_connection = GrpcConnection("127.0.0.1", int(e.grpc_target.rpartition(":")[2]))
    http_connection = HttpConnection("127.0.0.1", int(e.rest_url.rpartition(":")[2]))
    try:
        for _ in range(3):
            reply = grpc_connection.call(GRPC_METHOD, item.grpc_body)
            assert reply.status == h2.GRPC_OK, reply.details
            assert check_grpc(load, item, reply.body) is None and reply.stamped
            answer = http_connection.exchange(item.rest_request)
            assert check_rest(load, item, answer.status, answer.body) is None and answer.stamped
        unknown = grpc_connection.call(GRPC_METHOD, item.grpc_body.replace(b"mnist-svm", b"mnist-xxx"))
        assert unknown.status != h2.GRPC_OK and "mnist-xxx" in unknown.details
        assert grpc_connection.call(GRPC_METHOD, item.grpc_body).status == h2.GRPC_OK
    finally:
        grpc_connection.close()
        http_connection.close()


def test_wrong_answers_fail_the_run(tmp_path: Path) -> None:
    with DelayServer(delay_ms=1, wrong_every=1) as server:
        process, doc = locust(tmp_path, "-u", "2", "-t", "3s", "-H", server.rest_url,
                              "--grpc-host", server.grpc_target)
    assert process.returncode == 1, process.stderr[-3000:]
    assert doc is not None and doc["total"]["errors"] == doc["total"]["requests"] > 0
    failures = (tmp_path / "loadtest" / "latest" / "locust_failures.csv").read_text()
    assert "wrong answer: mnist-svm row" in failures
    assert "server" in failures and "oracle" in failures


def test_processes_merge_their_histograms(stand_in: DelayServer, tmp_path: Path) -> None:
    process, doc = locust(tmp_path, "--processes", "2", "-u", "4", "-t", "4s", "-H", stand_in.rest_url,
                          "--grpc-host", stand_in.grpc_target)
    assert process.returncode == 0, process.stderr[-3000:]
    assert doc is not None and doc["plan"]["worker_processes"] == 2
    assert doc["total"]["requests"] == doc["locust"]["requests"] > 50
    assert set(by(doc, "transport")) == {"rest", "grpc"}
    assert doc["total"]["latency_us"]["p50"] >= 2000  # the stand-in holds every request 2 ms


def test_open_loop_follows_its_schedule(stand_in: DelayServer, tmp_path: Path) -> None:
    process, doc = locust(tmp_path, "-u", "8", "-t", "4s", "--arrival-rate", "50", "-H", stand_in.rest_url,
                          "--grpc-host", stand_in.grpc_target, "--transports", "rest")
    assert process.returncode == 0, process.stderr[-3000:]
    assert doc is not None and doc["plan"]["mode"] == "open-loop"
    schedule = doc["schedule"]
    assert 150 <= schedule["scheduled"] <= 205  # 50/s for 4 s
    # every slot taken was sent; a request still in flight when Locust stops is not recorded
    assert schedule["scheduled"] - 3 <= doc["total"]["requests"] <= schedule["scheduled"]
    assert doc["total"]["latency_us"]["p50"] >= 2000


def test_max_requests_caps_the_run(stand_in: DelayServer, tmp_path: Path) -> None:
    process, doc = locust(tmp_path, "-u", "2", "-t", "30s", "--max-requests", "40", "-H", stand_in.rest_url,
                          "--grpc-host", stand_in.grpc_target)
    assert process.returncode == 0, process.stderr[-3000:]
    assert doc is not None and doc["total"]["requests"] == 40
    assert "max-requests" in doc["stop_reason"] and doc["duration_s"] < 20


@pytest.mark.parametrize(("args", "fragment"), [
    (["--mix", "mnist-svm=3,resnet=1"], "unknown model 'resnet'"),
    (["--mix", "mnist-svm:3"], "unknown model 'mnist-svm:3'"),
    (["--transports", "rest,grpc", "--grpc-host", "127.0.0.1:{dead}"], "no gRPC endpoint answers"),
    (["-H", "http://127.0.0.1:{dead}"], "cannot reach the REST endpoint"),
])
def test_bad_input_stops_before_any_load(stand_in: DelayServer, tmp_path: Path, args: list[str],
                                         fragment: str) -> None:
    dead = str(free_ports(1)[0])
    args = [a.replace("{dead}", dead) for a in args]
    defaults = ["-H", stand_in.rest_url, "--grpc-host", stand_in.grpc_target]
    stand_in.reset()
    process, doc = locust(tmp_path, "-t", "5s", *defaults, *args)
    assert process.returncode == 2
    assert fragment in process.stderr
    assert doc is None  # no run folder: nothing was started
    assert stand_in.truth().requests() == 0  # and no inference was sent


def test_a_target_without_grpc_is_refused(tmp_path: Path) -> None:
    with DelayServer(delay_ms=1, grpc=False) as server:
        process, _ = locust(tmp_path, "-t", "5s", "-H", server.rest_url, "--grpc-host", server.rest_url[7:])
        assert server.truth().requests() == 0
    assert process.returncode == 2
    assert "no gRPC endpoint answers" in process.stderr and "--transports rest" in process.stderr
