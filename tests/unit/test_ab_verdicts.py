"""bench.ab's analysis and bench.pr_ab's job summary, work tree and endpoints, without a server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import pr_ab
from bench.ab import analyse, headline
from bench.sweep import step_change
from bench.turns import METRICS, round_figures
from reference.errors import HarnessError


def _rounds(rps: list[float], p50: float = 2000.0, error_rate: float = 0.0) -> list[dict]:
    return [{"throughput": r, **{m: p50 * 1000 / r for m in METRICS if m not in ("throughput", "error_rate")},
             "error_rate": error_rate, "errors": 0} for r in rps]


A = _rounds([500, 520, 480, 510, 490, 505])


def test_a_ten_percent_slowdown_with_little_noise_is_slower() -> None:
    b = _rounds([r * 0.85 for r in (500, 520, 480, 510, 490, 505)])
    metrics = analyse(A, b, 0.05, 0.005)
    assert metrics["throughput"]["word"] == "slower"
    assert metrics["p99"]["word"] == "slower" and metrics["max"]["word"] == "slower"
    assert metrics["error_rate"]["word"] == "same"
    assert headline(metrics, 6, 0.05, 0).startswith("B slower: throughput B/A 0.850 (95% CI")


def test_identical_sides_are_same_and_noise_is_inconclusive() -> None:
    assert analyse(A, A, 0.05, 0.005)["throughput"]["word"] == "same"
    noisy = _rounds([400, 640, 470, 530, 380, 560])
    verdict = analyse(A, noisy, 0.05, 0.005)["throughput"]
    assert verdict["word"] == "inconclusive" and "more rounds" in verdict["verdict"]


def test_round_figures_reads_every_metric() -> None:
    total = {"throughput_rps": 100.0, "error_rate": 0.01, "errors": 1, "requests": 100,
             "latency_us": {m: 1.0 for m in ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")}}
    figures = round_figures(total)
    assert all(figures[m] is not None for m in METRICS) and figures["errors"] == 1


def test_step_summary_has_the_verdict_and_each_interval(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    b = _rounds([r * 0.85 for r in (500, 520, 480, 510, 490, 505)], error_rate=0.02)
    metrics = analyse(A, b, 0.05, 0.005)
    summary = {"verdict": headline(metrics, 6, 0.05, 0),
               "ab": {"a_label": "revision main", "b_label": "working tree", "rounds": 6, "round_s": 3,
                      "slot_s": 0.1, "interval": "95% percentile bootstrap over rounds (paired)",
                      "tolerance": 0.05, "error_tolerance": 0.005, "metrics": metrics}}
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert pr_ab.write_step_summary(summary) == target
    text = target.read_text()
    assert "**B slower: throughput B/A 0.850" in text
    assert "| throughput | ×0.850 |" in text and "| slower |" in text
    assert "| error_rate | +2.000 points |" in text and "| worse |" in text
    assert "revision main" in text and "tolerance 5%" in text
    pr_ab.write_step_summary(summary)  # appends, as GitHub expects
    assert target.read_text().count("## PR benchmark") == 2


def test_no_step_summary_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert pr_ab.write_step_summary({"ab": {}}) is None


def test_endpoints_are_read_from_reference_serve_output() -> None:
    lines = ["MLServer is serving mnist-svm:v0.1.0\n",
             "  REST    http://127.0.0.1:40001   (e.g. http://127.0.0.1:40001/v2/models/x/infer)\n",
             "  gRPC    127.0.0.1:40002\n"]
    assert pr_ab.parse_endpoints(lines[:2]) is None
    assert pr_ab.parse_endpoints(lines) == pr_ab.RemoteEndpoints("http://127.0.0.1:40001", "127.0.0.1:40002")


def test_venv_cache_key_is_the_lock_content(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x==1\n")
    (tmp_path / "b").write_text("x==1\n")
    (tmp_path / "c").write_text("x==2\n")
    a, b, c = (pr_ab.lock_hash(tmp_path / n) for n in "abc")
    assert a == b != c


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, check=True,
                          cwd=pr_ab.REPO_ROOT).stdout


def test_an_unknown_revision_is_one_clear_error(tmp_path: Path) -> None:
    deployment = pr_ab.BaseDeployment("no-such-rev-xyz", root=tmp_path)
    with pytest.raises(HarnessError, match="rev-parse"), deployment:
        pass


def _in_git_checkout() -> bool:
    done = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], capture_output=True, cwd=pr_ab.REPO_ROOT)
    return done.returncode == 0


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the harness in a git checkout")
def test_the_work_tree_is_removed_when_the_start_fails(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def broken_venv(lock: Path, root: Path) -> Path:
        seen.append(lock.parent)
        assert lock.parent.is_dir() and str(lock.parent) in _worktrees()
        raise HarnessError("no venv today")

    monkeypatch.setattr(pr_ab, "build_venv", broken_venv)
    with pytest.raises(HarnessError, match="no venv today"), pr_ab.BaseDeployment("HEAD", root=tmp_path):
        pass
    assert seen and not seen[0].exists() and str(seen[0]) not in _worktrees()


def test_sweep_step_change_has_an_interval() -> None:
    first = {"window_rps": [100, 102, 98]}
    assert step_change(None, first, 0.1) == {"verdict": "first step"}
    more = step_change(first, {"window_rps": [200, 204, 196]}, 0.1)
    assert more["verdict"] == "more throughput" and more["low"] > 1.5
    flat = step_change(first, {"window_rps": [101, 99, 100]}, 0.1)
    assert flat["verdict"] == "same throughput (saturated)"


def test_work_trees_of_dead_runs_are_removed(tmp_path: Path) -> None:
    import os

    dead, live = tmp_path / "abc123-999999999", tmp_path / f"abc123-{os.getpid()}"
    dead.mkdir()
    live.mkdir()
    assert pr_ab.remove_stale_worktrees(tmp_path) == [dead]
    assert live.is_dir() and not dead.exists()
