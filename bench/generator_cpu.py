"""The load generator's CPU per request, this working tree against an earlier revision.

Both sides load the same server (started once, on free loopback ports) with the
same closed-loop mixed scenario: both models over REST and gRPC, ``-u USERS``,
one Locust process, every answer checked. The server is the delay stand-in
answering at once (``fakes/delay/``), so the generator is the bottleneck: against
MLServer (``--server reference``) the generator idles between answers and its
CPU per request swings with the server's pacing (how many answers one wake-up
reads), by +-25% from run to run on this machine. Each side runs twice per round, a
short run and a long run of a fixed request count (``--max-requests``), and its
CPU per request is

    (CPU of the long run - CPU of the short run) / (requests long - requests short)

so Locust's start-up, imports and report writing cancel out. CPU is the
Locust process's own user + system time (``RUSAGE_CHILDREN`` around each run).
Rounds alternate the order of the sides (AB, BA, ...), so drifting machine load
hits both alike. The figure is the ratio of the two sides' medians, with a 95%
bootstrap interval over the rounds (scipy.stats.bootstrap); the target is met
when the whole interval is at or below it, missed when it is all above, and
inconclusive otherwise. (Per-round ratios are not used: on a shared 2-core VM the
noise of one side's run is not shared by the other side's run of the same round.)

    python bench/generator_cpu.py --base 75407d9 [--after REV] [--rounds 5] [--short 2000] \
        [--long 60000] [--users 4] [--server stand-in|reference]

The earlier revision runs from a temporary ``git worktree`` of this repository
with this environment's packages and this tree's trained model artifacts (run
``python -m reference train`` first); the worktree is removed at the end.
Bounded: every run has a request cap and a time limit; everything is loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from fakes.delay_server import DelayServer
from loadtests._launch import run_locust
from reference.paths import REPO_ROOT
from reference.server import ReferenceServer

TARGET_RATIO = 1.05
RUN_LIMIT_S = 240


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of ``revision`` with this tree's model artifacts; removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="generator-cpu-"))
    folder = scratch / "base"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(folder), revision],
                       cwd=REPO_ROOT, check=True)
        for artifact in (REPO_ROOT / "models").glob("*/*"):
            if artifact.name != "model-settings.json" and (folder / "models" / artifact.parent.name).is_dir():
                shutil.copy2(artifact, folder / "models" / artifact.parent.name / artifact.name)
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO_ROOT, check=False,
                       capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Target:
    rest_url: str
    grpc_target: str


def one_run(root: Path, server: Target, users: int, requests: int) -> tuple[float, int, str]:
    """CPU seconds, requests counted by the run's own report, and the revision it reports."""
    args = ["-u", str(users), "-r", str(users), "-t", f"{RUN_LIMIT_S}s", "-H", server.rest_url,
            "--grpc-host", server.grpc_target, "--max-requests", str(requests), "--seed", "1"]
    before = children_cpu()
    with tempfile.TemporaryDirectory() as reports:
        run = run_locust(args, reports_root=Path(reports), timeout=RUN_LIMIT_S + 60, root=root)
    cpu = children_cpu() - before
    if run.report is None:
        raise SystemExit(f"the run in {root} left no report (exit {run.returncode}):\n{run.stderr[-2000:]}")
    total = run.report["total"]
    return cpu, int(total["requests"]), str(run.report.get("revision", "?"))


def per_request_us(root: Path, server: Target, users: int, short: int,
                   long: int) -> tuple[float, str]:
    cpu_short, n_short, _ = one_run(root, server, users, short)
    cpu_long, n_long, revision = one_run(root, server, users, long)
    return (cpu_long - cpu_short) / (n_long - n_short) * 1e6, revision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier revision (commit, tag or branch)")
    parser.add_argument("--after", default=None,
                        help="the later revision (default: this working tree as it is)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", type=int, default=2000, help="requests in the short run")
    parser.add_argument("--long", type=int, default=60000, help="requests in the long run")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--server", choices=("stand-in", "reference"), default="stand-in",
                        help="stand-in (default): the delay stand-in answering at once, so the generator "
                             "is the bottleneck and its CPU per request does not depend on the server's "
                             "pacing; reference: the MLServer deployment")
    args = parser.parse_args(argv)
    if not 0 < args.short < args.long:
        parser.error("--short must be positive and below --long")
    # Children write bytecode once and reuse it, so start-up costs the same run after run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sides: dict[str, list[float]] = {"before": [], "after": []}
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(worktree(args.base))
        after = stack.enter_context(worktree(args.after)) if args.after else REPO_ROOT
        if args.server == "reference":
            endpoints = stack.enter_context(ReferenceServer(ports="free")).endpoints
            server = Target(endpoints.rest_url, endpoints.grpc_target)
        else:
            stand_in = stack.enter_context(DelayServer(delay_ms=0, max_seconds=3600))
            server = Target(stand_in.rest_url, stand_in.grpc_target)
        roots = {"before": base, "after": after}
        for root in roots.values():  # not counted: the first run of a tree compiles its bytecode
            one_run(root, server, args.users, args.short)
        for number in range(args.rounds):
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for side in order:
                us, revision = per_request_us(roots[side], server, args.users, args.short, args.long)
                sides[side].append(us)
                print(f"round {number + 1} {side:6} ({revision}): {us:7.1f} us CPU per request", flush=True)
    before, after = np.array(sides["before"]), np.array(sides["after"])
    print(f"\nbefore ({args.base}): median {np.median(before):.1f} us/request "
          f"(rounds {before.min():.1f} .. {before.max():.1f})")
    print(f"after ({args.after or 'working tree'}): median {np.median(after):.1f} us/request "
          f"(rounds {after.min():.1f} .. {after.max():.1f})")
    ratio = float(np.median(after) / np.median(before))
    interval = stats.bootstrap((after, before), lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(
        b, axis=axis), vectorized=True, paired=False, n_resamples=5000, random_state=1).confidence_interval
    verdict = ("met" if interval.high <= TARGET_RATIO else "NOT met" if interval.low > TARGET_RATIO
               else "inconclusive (the interval straddles the target: add rounds)")
    print(f"after/before (ratio of medians): {ratio:.3f}, 95% bootstrap interval {interval.low:.3f} .. "
          f"{interval.high:.3f}; target <= {TARGET_RATIO}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
