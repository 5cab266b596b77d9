"""Measurements that hold when the target fails: real Locust runs against the delay stand-in.

The stand-in is killed (SIGKILL) or stopped (SIGSTOP) under load; the runs are
bounded by -t and a subprocess timeout and every load goes to loopback. No
assertion is about time: a run that is aborted says so in its report and its
exit status, whatever the machine's speed.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fakes.delay_server import DelayServer
from loadtests._launch import LocustRun, run_locust
from reference.paths import REPO_ROOT
from reference.server import free_ports

RUN_TIMEOUT_S = 180
LOAD_WAIT_S = 60.0
EXIT_ABORTED = 3


def wait_for_load(server: DelayServer, requests: int) -> None:
    """Until the stand-in has answered ``requests`` inference requests (the load is on)."""
    deadline = time.monotonic() + LOAD_WAIT_S
    while server.truth().requests() < requests:
        assert time.monotonic() < deadline, "the load never reached the stand-in"
        time.sleep(0.2)


def locust(reports: Path, server: DelayServer, *args: str,
           during: Callable[[], None] | None = None) -> LocustRun:
    grpc = ["--grpc-host", server.grpc_target] if server.grpc_port else []
    return run_locust(["-H", server.rest_url, *grpc, *args], reports_root=reports, timeout=RUN_TIMEOUT_S,
                      during=during)


def test_a_dead_target_ends_the_run_with_what_was_measured(tmp_path: Path) -> None:
    with DelayServer(delay_ms=2, separate=False, max_seconds=300) as server:
        pid = server.pids["rest"]

        def kill() -> None:
            wait_for_load(server, 300)
            os.kill(pid, signal.SIGKILL)

        run = locust(tmp_path, server, "-u", "4", "-t", "120s", during=kill)
    doc = run.report
    assert run.returncode == EXIT_ABORTED, run.stderr[-3000:]
    assert doc is not None and doc["complete"] is True and doc["partial"] is True
    assert doc["stop_reason"].startswith("aborted: no successful answer over")
    assert "no-success>5s" in doc["aborted"]["reason"]
    assert any(w.startswith("the run was aborted") for w in doc["warnings"])
    total = doc["total"]
    assert total["successes"] >= 300 and total["errors"] > 0
    assert total["latency_us"]["p50"] >= 2000  # the successes' (held 2 ms), not the refused connections'
    assert set(total["errors_by_kind"]) <= {"connection", "timeout"}
    examples = doc["failures"]["connection"]["examples"]
    assert 1 <= len(examples) <= 3 and " over " in examples[0]["detail"]
    # Locust's failures table: kind-level errors, a few lines, however many rows failed
    rows = list(csv.DictReader((run.run_dir / "locust_failures.csv").open()))
    assert 1 <= len(rows) <= 16 and all(r["Error"].startswith("connection") for r in rows)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert "aborted: no successful answer" in summary["verdict"]
    assert summary["scopes"][""]["latency_us"]["p50"] >= 2000
    assert "aborted" in (run.run_dir / "report.md").read_text()


def test_a_short_stall_does_not_abort_and_is_the_servers(tmp_path: Path) -> None:
    """SIGSTOP for 2 s under a 100 req/s open loop: the default rule (no-success>5s) holds, and
    the report says the server stopped answering, when and for how long."""
    with DelayServer(delay_ms=2, grpc=False, max_seconds=300) as server:
        pid = server.pids["rest"]

        def stall() -> None:
            wait_for_load(server, 150)
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(2.0)
            finally:
                os.kill(pid, signal.SIGCONT)

        run = locust(tmp_path, server, "-u", "8", "-t", "12s", "--arrival-rate", "100",
                     "--transports", "rest", during=stall)
    doc = run.report
    assert run.returncode == 0, run.stderr[-3000:]
    assert doc is not None and doc["aborted"] is None and doc["stop_reason"].startswith("run time")
    (stalled,) = [s for s in doc["stalls"] if s["duration_s"] >= 1.0]
    assert stalled["duration_s"] >= 1.5 and stalled["in_flight"] == 8 and not stalled["ongoing"]
    warning = next(w for w in doc["warnings"] if w.startswith("the server stopped answering"))
    assert "not the generator's" in warning and stalled["at"] in warning
    assert doc["schedule"]["late_waiting_for_the_server"] > 0
    assert doc["total"]["latency_us"]["max"] >= 1_500_000  # the stall counts as latency


def test_slo_thresholds_in_a_locust_run(tmp_path: Path) -> None:
    with DelayServer(delay_ms=2, separate=False, max_seconds=300) as server:
        run = locust(tmp_path, server, "-u", "2", "-t", "3s", "--slo", "p50<1ms", "--slo", "error_rate<1%")
    doc = run.report
    assert run.returncode == 1, run.stderr[-3000:]  # p50 is 2 ms: breached
    assert doc is not None and doc["total"]["errors"] == 0
    results = {r["slo"]: r["ok"] for r in doc["slo"]}
    assert results == {"p50<1ms": False, "error_rate<1%": True}
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert "threshold(s) breached: p50<1ms" in summary["verdict"]
    assert "## Thresholds" in (run.run_dir / "report.md").read_text()


def test_slo_abort_stops_the_run_once_breached(tmp_path: Path) -> None:
    with DelayServer(delay_ms=2, separate=False, max_seconds=300) as server:
        run = locust(tmp_path, server, "-u", "2", "-t", "120s", "--slo", "p50<1ms", "--slo-abort")
    doc = run.report
    assert run.returncode == EXIT_ABORTED, run.stderr[-3000:]
    assert doc is not None and "--slo p50<1ms breached" in doc["aborted"]["reason"]
    assert doc["duration_s"] < 100  # stopped by the breach, not by -t
    assert doc["slo"] == [pytest.approx(doc["slo"][0])] and doc["slo"][0]["ok"] is False


def test_the_web_ui_comes_up_with_the_target_down_and_says_so_at_start(tmp_path: Path) -> None:
    web_port, dead_port = free_ports(2)
    dead = f"http://127.0.0.1:{dead_port}"
    command = [sys.executable, "-m", "locust", "-f", "loadtests/", "--web-host", "127.0.0.1", "--web-port",
               str(web_port), "-H", dead, "--reports-root", str(tmp_path)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + LOAD_WAIT_S
        while True:
            assert process.poll() is None, process.communicate()[0][-3000:]
            try:
                assert httpx.get(base + "/", timeout=5).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the web UI never answered"
                time.sleep(0.3)
        form = {"user_count": 2, "spawn_rate": 2, "host": dead}
        started = httpx.post(base + "/swarm", data=form, timeout=30)
        assert started.status_code == 200
        deadline = time.monotonic() + LOAD_WAIT_S
        while True:
            stats = httpx.get(base + "/stats/requests", timeout=10).json()
            said = [line for line in httpx.get(base + "/logs", timeout=10).json()["master"]
                    if "cannot reach the REST endpoint" in line]
            if stats["state"] == "stopped" and said:
                break
            assert time.monotonic() < deadline, (stats["state"], said)
            time.sleep(0.3)
        assert len(said) == 1 and dead in said[0]
        assert sum(s["num_requests"] for s in stats["stats"]) == 0  # nothing was sent
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
