"""How often ``bench ab`` is right: false alarms on identical deployments, and its power.

``python -m bench.ab_power [--repetitions 20]`` repeats a short A/B at fixed
settings (``bench ab``'s defaults: a warm-up round and 16 rounds of 2 s, A and B
in turns of 0.1 s, pinned, 4 users, REST, the seed's 3:1 mix, tolerance 5 %)
for two pairs of deployments, alternating repetition by repetition so that
machine drift hits both:

* **identical**: two copies of the reference deployment. A verdict of ``slower``
  or ``faster`` is a false alarm; the target is at most 1 in 20;
* **slowdown**: the reference against the same models behind
  ``reference/runtimes/slow_runtime.py`` (model code MLServer runs, never imported by
  the harness), which busy-waits a fixed time per request, sized from a
  service time measured first (``1 / throughput`` of one deployment), for
  ``--slowdown`` (default 10 %) less throughput, then corrected by what short
  A/Bs measured (up to :data:`SIZING_ATTEMPTS` tries, interpolating: busy-waiting
  does not cost throughput one for one). The target is ``slower`` in at least
  16 of 20.

It prints each rate with its Clopper-Pearson 95 % interval
(``scipy.stats.binomtest(...).proportion_ci(method="exact")``), the slowdown
actually measured, and the smallest slowdown the settings would call
``slower``: "slower" needs the interval's upper end below ``1 - tolerance``, so
a true ratio ``r`` is called slower half the time when ``r * exp(h) = 1 -
tolerance`` and four times in five when ``r * exp(h + 0.84 s) = 1 - tolerance``,
with ``h`` the median half-width of the throughput intervals seen (log scale)
and ``s`` the spread (standard deviation) of the identical pairs' log
estimates. The reference and its twin are started once, the slow deployment
once per sizing try, and the last one is reused across repetitions; every
process is stopped at the end. Ctrl-C (or SIGINT from ``timeout -s
INT``) stops early and still prints the figures of the repetitions done.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ab import DEFAULT_TOLERANCE, HEADLINE, WARMUP_ROUNDS, AbOptions, analyse, take_turns
from bench.scenario import FIXED_SCENARIO
from bench.turns import SLOT_S, pin_deployments
from loadtests._turns import check_round
from reference.errors import HarnessError
from reference.paths import MODELS_DIR, SLOW_RUNTIME
from reference.server import ReferenceServer
from reporting.stats import check_tolerance

SEED_MIX = "mnist-svm=3,mushroom-xgboost=1"
# The slow runtime's delay: from the service time, then corrected by short A/Bs. Throughput lost is
# not proportional to the delay (one run: 0.122 ms cost 15.5 %, 0.076 ms 7.5 %), so the second
# correction interpolates between the two measured points.
SIZING_ATTEMPTS = 3
SIZING_SLACK = 0.015  # a measured B/A this close to 1 - --slowdown is taken as is
RUNTIMES = {"mlserver_sklearn.SKLearnModel": "SlowSKLearnModel",
            "mlserver_xgboost.XGBoostModel": "SlowXGBoostModel"}


def slow_models(source: Path, dest: Path, delay_s: float) -> Path:
    """A copy of ``source`` whose models run behind :data:`~reference.paths.SLOW_RUNTIME` with ``delay_s``."""
    for folder in sorted(p for p in source.iterdir() if (p / "model-settings.json").is_file()):
        target = dest / folder.name
        shutil.copytree(folder, target)
        settings = json.loads((target / "model-settings.json").read_text())
        cls = RUNTIMES.get(settings.get("implementation", ""))
        if cls is None:
            raise SystemExit(f"{folder.name}: no slow variant of runtime {settings.get('implementation')}")
        module = "slow_" + folder.name.replace("-", "_")  # one module name per model (MLServer reloads)
        shutil.copy2(SLOW_RUNTIME, target / f"{module}.py")
        settings["implementation"] = f"{module}.{cls}"
        parameters = settings.setdefault("parameters", {})
        parameters["extra"] = {**(parameters.get("extra") or {}), "delay_s": delay_s}
        (target / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return dest


def next_delay(tried: list[tuple[float, float]], target: float) -> float:
    """The next delay to try for ``target`` slowdown, from ``(delay, slowdown measured)`` so far.

    One point: scaled through the origin. Two or more: the line through the last two (a
    secant), kept positive.
    """
    (d1, s1) = tried[-1]
    if len(tried) == 1 or tried[-2][1] == s1:
        return d1 * target / max(s1, 1e-3)
    (d0, s0) = tried[-2]
    return max(d1 + (target - s1) * (d1 - d0) / (s1 - s0), d1 * 0.1)


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return ci.low, ci.high


def rate_line(label: str, k: int, n: int, target: str) -> str:
    low, high = clopper_pearson(k, n)
    return f"{label}: {k} of {n} ({k / n:.0%}, 95% CI {low:.0%} .. {high:.0%}); target {target}"


def smallest_called_slower(tolerance: float, half_widths: list[float],
                           estimates: list[float]) -> dict[str, float]:
    """Slowdowns called ``slower`` half the time and 4 times in 5 (see the module docstring)."""
    h = statistics.median(half_widths) if half_widths else math.nan
    s = statistics.stdev(estimates) if len(estimates) > 1 else math.nan
    return {"half_width": h, "sd": s, "p50": 1 - (1 - tolerance) * math.exp(-h),
            "p80": 1 - (1 - tolerance) * math.exp(-(h + 0.84 * s))}


def _half_width(m: dict[str, Any]) -> float:
    """Half the throughput interval's width, relative (on the log scale, as bootstrapped)."""
    return (math.log(m["high"]) - math.log(m["low"])) / 2


def _round_ratios(ab: dict[str, Any]) -> str:
    return " ".join(f"{y['throughput'] / x['throughput']:.2f}" for x, y in zip(ab["a"], ab["b"], strict=True)
                    if x["throughput"] and y["throughput"])


def run(args: argparse.Namespace) -> int:
    scenario = {**FIXED_SCENARIO, "users": args.users, "transports": "rest", "mix": SEED_MIX,
                "name": f"power, {args.users} users, rest"}
    scratch = Path(tempfile.mkdtemp(prefix="ab-power-"))
    results: dict[str, list[dict[str, Any]]] = {"identical": [], "slowdown": []}
    started = time.monotonic()
    interrupted = False
    try:
        with ReferenceServer(ports="free", models_dir=MODELS_DIR) as a, \
             ReferenceServer(ports="free", models_dir=MODELS_DIR) as twin:
            pinned = None if args.no_pin else pin_deployments([a.pid, twin.pid])
            cpus = set(pinned["generators"]) if pinned else None
            print(f"pinned: {pinned or 'no'}", flush=True)

            def ab_of(b: ReferenceServer, folder: str, rounds: int) -> dict[str, Any]:
                ab: dict[str, Any] = {"a": [], "b": []}
                take_turns({"A": a, "B": b}, {"A": scenario, "B": scenario}, rounds, args.round_seconds,
                           scratch / folder, ab, [], slot_s=args.turn_seconds, cpus=cpus)
                return ab

            ab_of(twin, "warm-up", 3)
            calibration = ab_of(twin, "calibrate", 6)["a"]  # A's throughput in its turns
            rps = statistics.mean(r["throughput"] for r in calibration) if calibration else 0.0
            if rps <= 0:
                print("calibration measured no throughput", file=sys.stderr)
                return 2
            delay = (1 / rps) * (1 / (1 - args.slowdown) - 1)

            def repeat(slow: ReferenceServer) -> None:
                pairs = {"identical": twin, "slowdown": slow}
                for rep in range(args.repetitions):
                    for kind, b in pairs.items():
                        ab = ab_of(b, f"{kind}-{rep:02d}", args.rounds)
                        head = analyse(ab["a"], ab["b"], args.tolerance, 0.005)[HEADLINE]
                        results[kind].append(head)
                        print(f"{kind} #{rep + 1}: {head.get('line', head['verdict'])} "
                              f"[rounds B/A: {_round_ratios(ab)}]", flush=True)
                    shutil.rmtree(scratch / f"identical-{rep:02d}", ignore_errors=True)
                    shutil.rmtree(scratch / f"slowdown-{rep:02d}", ignore_errors=True)

            tried: list[tuple[float, float]] = []  # (delay, slowdown measured)
            for attempt in range(SIZING_ATTEMPTS):  # sized from the service time, then corrected
                print(f"service time {1e3 / rps:.3f} ms ({rps:.0f} req/s); slow runtime busy-waits "
                      f"{delay * 1e3:.3f} ms per request, aiming at {args.slowdown:.0%} less throughput",
                      flush=True)
                slow_dir = slow_models(MODELS_DIR, scratch / f"slow-models-{attempt}", delay)
                with ReferenceServer(ports="free", models_dir=slow_dir) as slow:
                    if pinned:
                        pin_deployments([slow.pid])
                    check = ab_of(slow, f"size-{attempt}", 6)
                    pairs_ = zip(check["a"], check["b"], strict=True)
                    ratios = [y["throughput"] / x["throughput"] for x, y in pairs_
                              if x["throughput"] and y["throughput"]]
                    if not ratios:
                        print("the sizing A/B measured no throughput", file=sys.stderr)
                        return 2
                    ratio = statistics.geometric_mean(ratios)
                    print(f"  measured B/A {ratio:.3f}", flush=True)
                    if attempt + 1 == SIZING_ATTEMPTS or abs(ratio - (1 - args.slowdown)) <= SIZING_SLACK:
                        repeat(slow)
                        break
                tried.append((delay, 1 - ratio))
                delay = next_delay(tried, args.slowdown)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the figures below are of the repetitions done", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if results["identical"] and results["slowdown"]:
        report(results, args, time.monotonic() - started)
    return 130 if interrupted else 0


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, elapsed_s: float) -> None:
    same, slow = results["identical"], results["slowdown"]
    alarms = sum(1 for m in same if m.get("word") in ("slower", "faster"))
    called = sum(1 for m in slow if m.get("word") == "slower")
    n_same, n_slow = len(same), len(slow)
    print()
    print(f"settings: {WARMUP_ROUNDS} + {args.rounds} rounds of {args.round_seconds:g} s in turns of "
          f"{args.turn_seconds:g} s, {args.users} users, REST, tolerance {args.tolerance:.0%}, "
          f"{'not ' if args.no_pin else ''}pinned; {args.repetitions} repetitions each, "
          f"{elapsed_s / 60:.1f} min")
    print(rate_line("identical deployments called slower or faster", alarms, n_same, "at most 1 in 20"))
    print(rate_line(f"~{args.slowdown:.0%} slowdown called slower", called, n_slow, "at least 16 in 20"))
    measured = [m["estimate"] for m in slow if "estimate" in m]
    if measured:
        print(f"slowdown measured: throughput B/A {statistics.geometric_mean(measured):.3f} "
              f"(geometric mean of {len(measured)} estimates)")
    widths = [_half_width(m) for m in same + slow if "low" in m and m["low"] > 0]
    logs = [math.log(m["estimate"]) for m in same if "estimate" in m]
    smallest = smallest_called_slower(args.tolerance, widths, logs)
    print(f"smallest slowdown called slower: ~{smallest['p50']:.1%} half the time, ~{smallest['p80']:.1%} "
          f"four times in five (tolerance {args.tolerance:.0%}, median half-width of log B/A "
          f"{smallest['half_width']:.3f}, sd of identical log estimates {smallest['sd']:.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_power", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=20, help="A/B runs per pair (default 20)")
    parser.add_argument("--rounds", type=int, default=AbOptions.rounds)
    parser.add_argument("--round-seconds", type=float, default=AbOptions.round_s)
    parser.add_argument("--turn-seconds", type=float, default=SLOT_S)
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the scheduler")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--slowdown", type=float, default=0.10, help="throughput lost to the slow runtime")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.rounds < 2 or not 0 < args.slowdown < 1:
        parser.error("--repetitions >= 1, --rounds >= 2, --slowdown in (0, 1)")
    try:
        check_round(args.turn_seconds, args.round_seconds, 2, ("--turn-seconds", "--round-seconds"))
        check_tolerance(args.tolerance)
    except (ValueError, HarnessError) as exc:  # a tolerance / a round of turns that does not fit
        parser.error(str(exc))
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
