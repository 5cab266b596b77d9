"""Figure: what a stream of malformed requests does to MLServer 1.7.1 and to the good traffic beside it.

``python bench/bad_traffic.py [--requests 84000] [--users 8]``: the reference
deployment on free loopback ports, the ``robustness`` scenario
(:mod:`bench.robustness`: both models 3:1 over REST and gRPC, 8 users, 5% of
the requests malformed, every kind of bad request the conformance suite knows,
in alternating 5 s windows with and without bad traffic) until ``--requests``
requests (about 4,000 of them malformed), bounded by ``--max-seconds``.
Prints whether the server stayed live (probed every second), the count of
unclassified bad requests (the target is 0), every failed good request with its
cause (the target is none), the good traffic's p50 and p99 in windows with and
without bad traffic with the interval of their ratio, and the bad kind x
classification table. Exit 0 when the server stayed live, nothing went
unclassified and no good request failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.robustness import print_result, run_robustness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=84_000, help="requests in all (default 84000)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=480.0, help="most measured time (default 480)")
    parser.add_argument("--reports-root", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run_robustness(seconds=args.max_seconds, users=args.users, max_requests=args.requests,
                            reports_root=args.reports_root)
    print_result(result)
    bad = result.latency.get("bad_traffic") or {}
    found = bad.get("classification") or {}
    live = bad.get("liveness") or {}
    good = result.latency.get("total") or {}
    sent = result.latency["locust"]["requests"]
    print(f"\nFIGURE: {found.get('requests', 0)} malformed requests of {sent} "
          f"({100 * found.get('requests', 0) / max(sent, 1):.1f}%); "
          f"server live throughout: {'yes' if not live.get('lost') else 'NO'} "
          f"({live.get('probes')} probes, {live.get('lost_probes')} lost); "
          f"unclassified: {found.get('unclassified')}; failed good requests: {good.get('errors')}")
    cost = bad.get("cost") or {}
    for side in ("without_bad", "with_bad"):
        s = cost.get(side) or {}
        if s.get("p50_us") is not None:
            print(f"good traffic {side.replace('_', ' ')}: p50 {s['p50_us'] / 1000:.3f} ms, "
                  f"p99 {s['p99_us'] / 1000:.3f} ms ({s['requests']} requests in {s['windows']} windows)")
    for metric in cost.get("metrics") or []:
        print(f"  with/without {metric['line']}")
    ok = not live.get("lost") and not found.get("unclassified") and not good.get("errors")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
