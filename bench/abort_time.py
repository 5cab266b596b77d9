"""How fast a load run ends when its target dies: SIGKILL of the server mid-run, time to the run's end.

Each round starts the target on free loopback ports, starts a mixed headless
run (``locust -f loadtests/ --headless``, both models over REST and gRPC, the
default abort rule ``no-success>5s``, a long ``-t`` so that only the abort can
end it early), kills the server's whole process group with SIGKILL once the
run has loaded it for ``--kill-after`` seconds, and prints the time from the
kill to the load's stop (the report's ``stopped_at``) and to the Locust
process's exit (its reports written), its exit status (3: aborted) and the
reason its report gives. Target: within 10 s, exit 3. Prints figures, asserts nothing.

    python bench/abort_time.py [--server reference|stand-in] [--rounds 3] [--kill-after 12] [--users 8]

``reference`` is MLServer (``reference.server.ReferenceServer``, its pid file);
``stand-in`` the delay stand-in (``fakes/delay/``, both transports in one
process). Bounded: -t 120s per run, a subprocess timeout, loopback only.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from loadtests._launch import run_locust

RUN_TIME = "120s"
TIMEOUT_S = 200.0


def _target(kind: str) -> Any:
    if kind == "reference":
        from reference.server import ReferenceServer

        return ReferenceServer(ports="free")
    from fakes.delay_server import DelayServer

    return DelayServer(delay_ms=1, separate=False, max_seconds=TIMEOUT_S + 60)


def _endpoints(server: Any) -> tuple[str, str]:
    endpoints = getattr(server, "endpoints", None)
    return (endpoints.rest_url, endpoints.grpc_target) if endpoints else (server.rest_url, server.grpc_target)


def _kill(server: Any) -> None:
    """SIGKILL the server: MLServer's process group, or the stand-in's process."""
    pid = getattr(server, "mlserver_pid", None)
    if pid is not None:
        os.killpg(pid, signal.SIGKILL)
    else:
        os.kill(server.pids["rest"], signal.SIGKILL)


def one_round(kind: str, kill_after: float, users: int, reports: Path) -> dict[str, Any]:
    killed: dict[str, float] = {}
    with _target(kind) as server:
        rest_url, grpc_target = _endpoints(server)

        def kill_mid_run() -> None:
            time.sleep(kill_after)
            killed["at"], killed["wall"] = time.monotonic(), time.time()
            _kill(server)

        run = run_locust(["-H", rest_url, "--grpc-host", grpc_target, "-u", str(users), "-t", RUN_TIME],
                         reports_root=reports, timeout=TIMEOUT_S, during=kill_mid_run)
        ended = time.monotonic()  # the Locust process has exited (its report is written)
    report = run.report or {}
    total = report.get("total") or {}
    stopped = report.get("stopped_at")
    load_stopped = datetime.fromisoformat(stopped).timestamp() - killed["wall"] if stopped else float("nan")
    return {"seconds": ended - killed["at"], "load_stopped": load_stopped, "exit": run.returncode,
            "reason": report.get("stop_reason"), "aborted_at_s": (report.get("aborted") or {}).get("at_s"),
            "successes": total.get("successes"), "errors": total.get("errors"),
            "p50_us": (total.get("latency_us") or {}).get("p50"), "run_dir": str(run.run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("reference", "stand-in"), default="reference")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-after", type=float, default=12.0,
                        help="seconds after the Locust process starts (its start-up takes 3-5 s)")
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args(argv)
    results = []
    with TemporaryDirectory(prefix="abort-time-") as folder:
        for index in range(args.rounds):
            result = one_round(args.server, args.kill_after, args.users, Path(folder) / f"round-{index}")
            results.append(result)
            print(f"round {index + 1}: kill -> load stopped {result['load_stopped']:.2f} s, -> process exit "
                  f"{result['seconds']:.2f} s, exit {result['exit']}, "
                  f"{result['successes']} good / {result['errors']} failed requests, successes' p50 "
                  f"{(result['p50_us'] or 0) / 1000:.3f} ms; {result['reason']}", flush=True)
    seconds = [r["seconds"] for r in results]
    stopped = [r["load_stopped"] for r in results]
    print(f"kill -> load stopped: median {statistics.median(stopped):.2f} s, max {max(stopped):.2f} s")
    print(f"kill -> end of run (process exit, reports written): median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s over "
          f"{len(seconds)} rounds (target: within 10 s); exit statuses {[r['exit'] for r in results]} "
          "(target: 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
