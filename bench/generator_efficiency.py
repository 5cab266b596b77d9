"""How much load the harness drives compared with wrk, on the same server, payloads and connections.

Starts the reference deployment (``ReferenceServer(ports="free")``), then
alternates wrk and the harness (``locust -f loadtests/ --headless``) against
mnist-svm's REST infer endpoint at saturation: the same number of
connections (wrk ``-c N``, harness ``-u N``), the same held-out rows
pre-encoded the same way (wrk cycles through them in Lua), the same duration.
Prints each round's requests/s and the ratio harness/wrk of the medians
(target: >= 0.9), with CPU figures: on a small machine MLServer is usually the
bottleneck, and then both tools measure the server, not themselves.

    python bench/generator_efficiency.py [--connections 16] [--seconds 10] [--rounds 3] [--processes 0]

Bounded: every run has a duration; everything binds and targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench._harness import median, run_harness
from loadtests._workload import build_model_load
from reference.server import ReferenceServer

MODEL = "mnist-svm"
TARGET_RATIO = 0.9
_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def write_wrk_script(path: Path, bodies: list[bytes]) -> None:
    """A wrk Lua script that POSTs the given bodies in turn, like the harness does."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"',
             'wrk.headers["Accept-Encoding"] = "identity"', "local bodies = {"]
    for body in bodies:
        text = body.decode()
        if "]==]" in text:
            raise ValueError("a body contains the Lua long-string terminator")
        lines.append(f"[==[{text}]==],")
    lines += ["}", "local n = #bodies", "local i = 0",
              "request = function()",
              "  i = i % n + 1",
              "  return wrk.format(nil, nil, nil, bodies[i])",
              "end"]
    path.write_text("\n".join(lines) + "\n")


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (the reference load generator here)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {"rps": rps, "non2xx": float(errors.group(1)) if errors else 0.0,
              "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        result[f"p{pct}_us"] = float(value) * _UNITS_US[unit]
    return result


def run_locust(server: ReferenceServer, connections: int, seconds: int, processes: int) -> dict[str, float]:
    e = server.endpoints
    args = ["-u", str(connections), "-r", "100", "-t", f"{seconds}s", "-H", e.rest_url,
            "--grpc-host", e.grpc_target, "--transports", "rest", "--mix", f"{MODEL}=1"]
    if processes:
        args += ["--processes", str(processes)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = run_harness(args, timeout=seconds + 180)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = run.report["total"]
    return {"rps": run.throughput, "errors": float(total["errors"]),
            "p50_us": float(total["latency_us"]["p50"]), "p99_us": float(total["latency_us"]["p99"]),
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "window_s": float(run.report["duration_s"]),
            "gen_cpu_percent": float(run.report["generator"]["cpu"]["mean_percent_sum"]),
            "saturated": float(run.report["generator"]["cpu"]["saturated"])}


def server_cpu(server: ReferenceServer) -> float:
    """CPU seconds used so far by MLServer and its children."""
    try:
        root = psutil.Process(server.mlserver_pid)
        procs = [root, *root.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in procs)
    except (psutil.Error, TypeError, ValueError):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=0, help="Locust --processes (0: one process)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")

    load = build_model_load(MODEL, batch_size=1, versioned=True)
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, ReferenceServer(ports="free") as server:
        script = Path(tmp) / "post.lua"
        write_wrk_script(script, [item.rest_body for item in load.items])
        url = server.endpoints.rest_url + load.rest_path
        print(f"server {server.endpoints.rest_url} ({MODEL}, REST, {len(load.items)} held-out rows in turn); "
              f"{args.connections} connections, {args.seconds}s per run, {args.rounds} rounds, "
              f"harness processes: {args.processes or 1}", flush=True)
        run_wrk(url, script, args.connections, 2)  # warm-up, not counted
        for round_no in range(1, args.rounds + 1):
            for tool in ("wrk", "harness"):
                cpu0, t0 = server_cpu(server), time.monotonic()
                if tool == "wrk":
                    result = run_wrk(url, script, args.connections, args.seconds)
                else:
                    result = run_locust(server, args.connections, args.seconds, args.processes)
                # MLServer idles while Locust starts up: divide by the measured window only.
                window = result.get("window_s") or (time.monotonic() - t0)
                result["server_cpu_percent"] = 100 * (server_cpu(server) - cpu0) / window
                result.setdefault("gen_cpu_percent", 100 * result["cpu_s"] / window)
                result.update(round=round_no, tool=tool)  # type: ignore[arg-type]
                rows.append(result)
                print(f"round {round_no} {tool:<8} {result['rps']:8.1f} req/s"
                      f"  p50 {result.get('p50_us', 0):8.0f} us  p99 {result.get('p99_us', 0):8.0f} us"
                      f"  generator CPU ~{result['gen_cpu_percent']:4.0f}%"
                      f"  MLServer CPU ~{result['server_cpu_percent']:4.0f}%", flush=True)

    wrk_rps = median([r["rps"] for r in rows if r["tool"] == "wrk"])
    harness_rps = median([r["rps"] for r in rows if r["tool"] == "harness"])
    ratio = harness_rps / wrk_rps if wrk_rps else 0.0
    errors = sum(r.get("errors", 0) + r.get("non2xx", 0) for r in rows)
    print()
    print(f"wrk      median {wrk_rps:8.1f} req/s")
    print(f"harness  median {harness_rps:8.1f} req/s")
    print(f"ratio harness/wrk = {ratio:.3f} (target >= {TARGET_RATIO}); failed requests: {errors:.0f}")
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} "
          "(other processes share these cores: compare ratios, not absolute figures)")
    return 0 if ratio >= TARGET_RATIO and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
