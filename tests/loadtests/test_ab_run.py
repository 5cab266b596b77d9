"""``python -m bench ab`` end to end: two real deployments, measured in turns, pinned, analysed.

Two rounds decide nothing (a verdict needs 6), so the run must say
``inconclusive``; what is checked is the machinery: both servers up on free
ports, the two Locust runs taking turns with no request out of turn, each
round's figures on both sides, the CPU split, the report, and nothing left
running. Bad settings are refused before any server starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reference import affinity
from reference.paths import REPO_ROOT

AB_TIMEOUT_S = 240


def bench_ab(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "ab", "--reports-root", str(root), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=AB_TIMEOUT_S)


@pytest.fixture(scope="module")
def ab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    root = tmp_path_factory.mktemp("ab")
    return bench_ab(root, "--rounds", "2", "--round-seconds", "0.8", "--turn-seconds", "0.1"), root


def test_two_rounds_in_turns_are_measured_and_decide_nothing(
        ab_run: tuple[subprocess.CompletedProcess, Path]) -> None:
    done, root = ab_run
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((root / "ab" / "latest" / "summary.json").read_text())
    ab = summary["ab"]
    assert len(ab["a"]) == len(ab["b"]) == 2  # the warm-up round is left out
    assert all(r["throughput"] > 0 and r["requests"] > 0 and r["errors"] == 0 for r in ab["a"] + ab["b"])
    assert ab["metrics"]["throughput"]["word"] == "inconclusive"
    assert summary["verdict"].startswith("B inconclusive")
    halves = affinity.split()
    if halves is not None:
        assert ab["pinned"] == {"generators": sorted(halves[0]), "servers": sorted(halves[1])}
    last = sorted((root / "ab" / "latest" / "locust-runs").glob("attempt-*"))[-1]  # a slow start tries again
    for side in ("turn-0", "turn-1"):  # each side's Locust run kept to its own turns
        latency = json.loads(next((last / side).rglob("latency.json")).read_text())
        assert latency["turns"]["off_turn"] == 0 and latency["turns"]["rounds"] == 3
    assert "throughput:" in done.stdout and "report:" in done.stdout


def test_a_round_that_is_not_whole_turns_is_refused(tmp_path: Path) -> None:
    done = bench_ab(tmp_path, "--rounds", "6", "--round-seconds", "0.3", "--turn-seconds", "0.1")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--round-seconds 0.3 must be a whole number of cycles" in lines[0], done.stderr
    assert not (tmp_path / "ab").exists()  # refused before any run folder or server
