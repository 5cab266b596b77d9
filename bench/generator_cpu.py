"""The load generator's CPU per request, this working tree against an earlier revision.

Both sides load the same reference deployment (started once, on free loopback
ports) with the same closed-loop mixed scenario: both models over REST and
gRPC, ``-u USERS``, one Locust process. Each side runs twice per round, a
short run and a long run of a fixed request count (``--max-requests``), and its
CPU per request is

    (CPU of the long run - CPU of the short run) / (requests long - requests short)

so Locust's start-up, imports and report writing cancel out. CPU is the
Locust process's own user + system time (``RUSAGE_CHILDREN`` around each run).
Rounds alternate the order of the sides (AB, BA, ...), so drifting machine load
hits both alike; the verdict is the median of the per-round ratios after/before
with their spread.

    python bench/generator_cpu.py --base 75407d9 [--rounds 5] [--short 1000] [--long 5000] [--users 4]

The earlier revision runs from a temporary ``git worktree`` of this repository
with this environment's packages; the worktree is removed at the end.
Bounded: every run has a request cap and a time limit; everything is loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadtests._launch import run_locust
from reference.paths import REPO_ROOT
from reference.server import ReferenceServer

TARGET_RATIO = 1.05
RUN_LIMIT_S = 240


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of ``revision`` beside this one, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="generator-cpu-")) / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(folder), revision],
                   cwd=REPO_ROOT, check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO_ROOT, check=False)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(root: Path, server: ReferenceServer, users: int, requests: int) -> tuple[float, int, str]:
    """CPU seconds, requests counted by the run's own report, and the revision it reports."""
    e = server.endpoints
    args = ["-u", str(users), "-r", str(users), "-t", f"{RUN_LIMIT_S}s", "-H", e.rest_url,
            "--grpc-host", e.grpc_target, "--max-requests", str(requests), "--seed", "1"]
    before = children_cpu()
    with tempfile.TemporaryDirectory() as reports:
        run = run_locust(args, reports_root=Path(reports), timeout=RUN_LIMIT_S + 60, root=root)
    cpu = children_cpu() - before
    if run.report is None:
        raise SystemExit(f"the run in {root} left no report (exit {run.returncode}):\n{run.stderr[-2000:]}")
    total = run.report["total"]
    return cpu, int(total["requests"]), str(run.report.get("revision", "?"))


def per_request_us(root: Path, server: ReferenceServer, users: int, short: int,
                   long: int) -> tuple[float, str]:
    cpu_short, n_short, _ = one_run(root, server, users, short)
    cpu_long, n_long, revision = one_run(root, server, users, long)
    return (cpu_long - cpu_short) / (n_long - n_short) * 1e6, revision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier revision (commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", type=int, default=1000, help="requests in the short run")
    parser.add_argument("--long", type=int, default=5000, help="requests in the long run")
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args(argv)
    if not 0 < args.short < args.long:
        parser.error("--short must be positive and below --long")
    sides: dict[str, list[float]] = {"before": [], "after": []}
    with worktree(args.base) as base, ReferenceServer(ports="free") as server:
        roots = {"before": base, "after": REPO_ROOT}
        for number in range(args.rounds):
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for side in order:
                us, revision = per_request_us(roots[side], server, args.users, args.short, args.long)
                sides[side].append(us)
                print(f"round {number + 1} {side:6} ({revision}): {us:7.1f} us CPU per request", flush=True)
    ratios = [a / b for a, b in zip(sides["after"], sides["before"], strict=True)]
    before, after = statistics.median(sides["before"]), statistics.median(sides["after"])
    print(f"\nbefore ({args.base}): median {before:.1f} us/request (rounds {min(sides['before']):.1f} .. "
          f"{max(sides['before']):.1f})")
    print(f"after (working tree): median {after:.1f} us/request (rounds {min(sides['after']):.1f} .. "
          f"{max(sides['after']):.1f})")
    ratio = statistics.median(ratios)
    print(f"after/before: median of per-round ratios {ratio:.3f} (spread {min(ratios):.3f} .. "
          f"{max(ratios):.3f}); target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
