"""How exactly the harness measures latency: its percentiles against a server whose delays are known.

Starts ``fakes.delay_server`` (holds each request 5 ms, every 25th one 20 ms,
so p50 ~ 5 ms and p99 ~ 20 ms; it records how long it held each request, the
*truth*), then:

1. a minimal reference client (blocking ``http.client`` / plain gRPC, one
   request at a time, no gevent, no Locust) measures the same server: what any
   client sees on top of the server's hold time (loopback, kernel wake-ups,
   the stand-in's own HTTP/gRPC stack) -- the *floor*;
2. the harness closed-loop (``-u 2``: one REST and one gRPC user);
3. the harness open-loop (``--arrival-rate``, Poisson arrivals).

For each run and transport it prints p50 and p99 as reported by the harness,
by Locust itself (whole milliseconds), by the server (truth) and the
differences. The check (target: within 5% + 0.2 ms):

* ``vs truth``: harness minus the server's hold time (includes the floor);
* ``own error``: harness minus (truth + floor), i.e. what the harness adds.

The exit status follows the own-error check; both are printed.

    python bench/latency_accuracy.py [--seconds 10] [--delay-ms 5] [--rate 80]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench._harness import run_harness  # noqa: E402
from fakes.delay_server import DelayServer  # noqa: E402
from loadtests._workload import GRPC_METHOD, REST_HEADERS, build_model_load  # noqa: E402
from reporting.latency import LatencyBook, LatencyHistogram  # noqa: E402

REL_TOLERANCE = 0.05
ABS_TOLERANCE_US = 200.0
POINTS = ("p50", "p99")


def allowed(truth_us: float) -> float:
    return REL_TOLERANCE * truth_us + ABS_TOLERANCE_US


def by_transport(book: LatencyBook) -> dict[str, LatencyHistogram]:
    out: dict[str, LatencyHistogram] = {}
    for key in book:
        out.setdefault(key.transport, LatencyHistogram()).merge(book.histogram(key))
    return out


def reference_client(server: DelayServer, requests: int) -> dict[str, LatencyHistogram]:
    """One blocking request at a time per transport, timed with perf_counter."""
    load = build_model_load("mnist-svm", batch_size=1, versioned=True)
    out = {"rest": LatencyHistogram(), "grpc": LatencyHistogram()}
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    channel = grpc.insecure_channel(server.grpc_target)
    infer = channel.unary_unary(GRPC_METHOD)
    try:
        for i in range(requests):
            item = load.items[i % len(load.items)]
            started = time.perf_counter()
            connection.request("POST", load.rest_path, body=item.rest_body, headers=REST_HEADERS)
            connection.getresponse().read()
            out["rest"].record((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            infer(item.grpc_body, timeout=30)
            out["grpc"].record((time.perf_counter() - started) * 1e6)
    finally:
        connection.close()
        channel.close()
    return out


def locust_percentiles(run_dir: Path) -> dict[str, dict[str, float]]:
    """Locust's own p50/p99 per transport (request-weighted over its rows), in microseconds."""
    rows = list(csv.DictReader((run_dir / "locust_stats.csv").open()))
    out: dict[str, dict[str, float]] = {}
    for transport, kind in (("rest", "POST"), ("grpc", "gRPC")):
        mine = [r for r in rows if r["Type"] == kind and int(r["Request Count"])]
        total = sum(int(r["Request Count"]) for r in mine)
        if total:
            out[transport] = {point: sum(float(r[f"{point[1:]}%"]) * int(r["Request Count"]) for r in mine)
                              / total * 1000.0 for point in POINTS}
    return out


def report(title: str, measured: dict[str, LatencyHistogram], truth: dict[str, LatencyHistogram],
           floor: dict[str, float] | None, locust: dict[str, dict[str, float]] | None) -> list[bool]:
    """Print one table; with ``floor`` None the rows are figures only (no verdicts)."""
    print(f"\n{title}")
    print(f"  {'transport':<9} {'pt':<4} {'truth':>8} {'harness':>8} {'vs truth':>9} {'own err':>8} "
          f"{'allowed':>8} {'locust':>8} {'n':>6}  result")
    verdicts = []
    for transport in sorted(measured):
        if transport not in truth:
            continue
        for point in POINTS:
            p = float(point[1:])
            t = truth[transport].percentile(p)
            m = measured[transport].percentile(p)
            strict = abs(m - t) <= allowed(t)
            loc = (locust or {}).get(transport, {}).get(point)
            head = (f"  {transport:<9} {point:<4} {t:>8} {m:>8} {m - t:>+9.0f} "
                    f"{{own}} {allowed(t):>8.0f} {(f'{loc:.0f}' if loc is not None else '-'):>8} "
                    f"{measured[transport].count:>6}  ")
            if floor is None:
                print(head.format(own=f"{'-':>8}") + ("within vs truth" if strict else "beyond vs truth"))
                continue
            own = m - t - floor.get(transport, 0.0)
            ok = abs(own) <= allowed(t)
            verdicts.append(ok)
            print(head.format(own=f"{own:>+8.0f}") + ("ok" if ok else "FAIL")
                  + ("" if strict else " (beyond vs truth)"))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=80.0, help="open-loop arrivals per second")
    parser.add_argument("--baseline-requests", type=int, default=400)
    args = parser.parse_args(argv)

    verdicts: list[bool] = []
    with DelayServer(delay_ms=args.delay_ms, slow_every=25, slow_ms=4 * args.delay_ms) as server:
        common = ["-t", f"{args.seconds}s", "-H", server.rest_url, "--grpc-host", server.grpc_target,
                  "--seed", "1"]
        print(f"delay server {server.rest_url} / {server.grpc_target}: holds {args.delay_ms:g} ms, "
              f"every 25th {4 * args.delay_ms:g} ms; units: microseconds")

        server.reset()
        baseline = reference_client(server, args.baseline_requests)
        truth = by_transport(server.truth())
        floor = {t: baseline[t].percentile(50) - truth[t].percentile(50) for t in baseline}
        report("reference client (blocking, one request at a time): what any client pays (the floor)",
               baseline, truth, None, None)
        print("  floor (client p50 - server p50): "
              + ", ".join(f"{t} {v:.0f} us" for t, v in sorted(floor.items())))

        runs: list[tuple[str, list[str]]] = [
            ("harness closed loop (-u 2: one REST user, one gRPC user)", ["-u", "2"]),
            (f"harness open loop ({args.rate:g} req/s Poisson, up to 16 in flight)",
             ["-u", "16", "--arrival-rate", str(args.rate), "--arrival", "poisson"]),
        ]
        for title, extra in runs:
            server.reset()
            run = run_harness([*common, *extra], timeout=args.seconds + 180)
            if run.returncode != 0:
                print(f"\n{title}: the harness exited {run.returncode}\n{run.stderr[-2000:]}")
                verdicts.append(False)
                continue
            measured = by_transport(LatencyBook.from_wire(run.report["hdr"]))
            verdicts += report(title, measured, by_transport(server.truth()), floor,
                               locust_percentiles(run.run_dir))
            schedule: dict[str, Any] | None = run.report.get("schedule")
            if schedule:
                lag = schedule["lag_us"]
                print(f"  open-loop start lag: p50 {lag['p50']} us, p99 {lag['p99']} us, "
                      f"max {lag['max']} us; "
                      f"{schedule['late']} of {schedule['scheduled']} later than "
                      f"{schedule['late_threshold_us']:g} us")
            for warning in run.report["warnings"]:
                print(f"  warning: {warning}")

    passed = all(verdicts) and bool(verdicts)
    print(f"\n{'PASS' if passed else 'FAIL'}: harness p50/p99 within {REL_TOLERANCE:.0%} + "
          f"{ABS_TOLERANCE_US / 1000:g} ms of truth + floor in {sum(verdicts)} of {len(verdicts)} checks")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
