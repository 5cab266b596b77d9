"""``--turn``: two real Locust runs against MLServer take turns, and report their own rounds.

The runs share one reference deployment here (the A/B gives each its own): what
is checked is the generators' side, that each run sent in its own slots only,
counted its throughput over them, and split its histograms by round.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.turns import rounds_of
from loadtests._launch import LocustRun, run_locust
from reference.server import ReferenceServer

ROUNDS, ROUND_S, SLOT_S = 3, 1.0, 0.1
STARTUP_S = 8.0  # two Locust processes at once on a busy 2-core CI machine


@pytest.fixture(scope="module")
def turns(reference: ReferenceServer, tmp_path_factory: pytest.TempPathFactory) -> list[LocustRun]:
    e = reference.endpoints
    start = time.time() + STARTUP_S

    def party(index: int) -> LocustRun:
        return run_locust(["-u", "2", "-t", "60s", "-H", e.rest_url, "--grpc-host", e.grpc_target,
                           "--transports", "rest", "--reset-stats", "--turn", f"{index}/2",
                           "--turn-start", f"{start:.6f}", "--turn-slot", str(SLOT_S),
                           "--turn-round", str(ROUND_S), "--turn-rounds", str(ROUNDS)],
                          reports_root=tmp_path_factory.mktemp(f"turn-{index}"), timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(party, range(2)))


@pytest.mark.parametrize("index", [0, 1])
def test_each_run_sends_in_its_own_slots_only(turns: list[LocustRun], index: int) -> None:
    run = turns[index]
    assert run.returncode == 0, run.stderr[-3000:]
    doc = run.report
    assert doc is not None and doc["complete"]
    section = doc["turns"]
    assert section["turn"] == f"{index}/2" and section["late_s"] == 0.0, section["late_s"]
    assert section["off_turn"] == 0  # not one request went out in the other run's slot
    assert doc["stop_reason"] == f"the {ROUNDS} rounds of --turn are done"
    # throughput is over its own slots: half of every round
    assert section["own_s"] == pytest.approx(ROUNDS * ROUND_S / 2)
    assert doc["duration_s"] == pytest.approx(section["own_s"], abs=1e-3)
    total = doc["total"]
    assert total["errors"] == 0 and total["requests"] > 100
    assert total["throughput_rps"] == pytest.approx(total["requests"] / section["own_s"], rel=1e-3)


def test_rounds_add_up_to_the_run(turns: list[LocustRun]) -> None:
    for run in turns:
        rounds = rounds_of(run.report or {})
        assert len(rounds) == ROUNDS and all(r is not None for r in rounds)
        assert all(r["own_s"] == pytest.approx(ROUND_S / 2) and r["requests"] > 20 for r in rounds)
        assert sum(r["requests"] for r in rounds) == run.report["total"]["requests"]
        assert all(0 < r["p50"] <= r["p99"] <= r["max"] for r in rounds)


def test_both_runs_cover_the_same_window(turns: list[LocustRun]) -> None:
    stops = [time.mktime(time.strptime(r.report["stopped_at"][:19], "%Y-%m-%dT%H:%M:%S")) for r in turns]
    assert abs(stops[0] - stops[1]) <= 2  # both end with the last round, not with their own -t
