"""``python -m bench {run,ab,sweep}``: benchmark, A/B in one run, saturation sweep.

``run`` (the default, what ``tox -e bench`` does) measures the fixed mixed
scenario against the reference deployment and writes ``reports/bench/<run-id>/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference.errors import HarnessError
from reference.paths import MODELS_DIR, SETTINGS_FILE
from reporting import compare, slo


def _overrides(pairs: list[str]) -> dict:
    import json

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HarnessError(f"--set takes KEY=VALUE (a settings.json key), not {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    if getattr(args, "scenario", "mixed") == "robustness":  # 5% malformed traffic: bench/robustness.py
        from bench.robustness import cmd_robustness

        return cmd_robustness(args)
    from bench.benchmark import BenchOptions, run_benchmark

    options = BenchOptions(
        seconds=args.seconds, warmup_s=args.warmup, users=args.users,
        slos=[slo.parse_slo(s) for s in args.slo], baseline=args.baseline,
        tolerance=_tolerance(args.tolerance), fail_on_regression=args.fail_on_regression,
        **_stats_options(args),
        settings_file=args.settings, overrides=_overrides(args.set),
        models_dir=args.models_dir or MODELS_DIR, samples=args.samples, mix=args.mix,
        reports_root=args.reports_root, abort=_abort_args(args),
    )
    result = run_benchmark(options)
    overall = result.summary["scopes"].get("", {})
    lat = overall.get("latency_us") or {}
    print(f"{result.summary['verdict']}")
    stability = result.summary.get("stability") or {}
    if stability:
        print(f"windows measured: {stability['measured_windows']} of {stability['windows']}; "
              + ("stabilised" if stability["stabilised"] else stability["note"]))
    for row in (result.summary.get("comparison") or {}).get("rows", []):
        if row["scope"] == "overall":
            print(f"  vs baseline {compare.describe_row(row)}")
    if lat:
        print(f"overall: {overall['requests']} requests, {overall['throughput_rps']:.1f} req/s, "
              f"p50 {lat['p50'] / 1000:.3f} ms, p99 {lat['p99'] / 1000:.3f} ms")
    for scope, figures in sorted(result.summary["scopes"].items()):
        lat = figures.get("latency_us") or {}
        if scope and "/" not in scope and lat:
            rps = figures.get("throughput_rps") or 0.0
            print(f"  {scope}: {figures['requests']} requests, {rps:.1f} req/s, "
                  f"p50 {lat['p50'] / 1000:.3f} ms, p99 {lat['p99'] / 1000:.3f} ms")
    print(f"report: {result.report}")
    return 1 if result.failed else 0


def _abort_args(args: argparse.Namespace) -> list[str]:
    """--abort-when / --no-abort for the Locust runs (a rule that does not parse: exit 2 before any run)."""
    from loadtests._abort import parse_rule

    if args.no_abort:
        return ["--no-abort"]
    return [arg for rule in args.abort_when for arg in ("--abort-when", parse_rule(rule).text)]


def _tolerance(value: float) -> float:
    from reporting import stats

    try:
        return stats.check_tolerance(value)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None


def _error_tolerance(points: float) -> float:
    from reporting import stats

    try:
        return stats.check_error_tolerance(points)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None


def _stats_options(args: argparse.Namespace) -> dict:
    """--window, --stability (%), --error-tolerance (points), --metrics of `run`, as BenchOptions."""
    from reporting import stats

    try:
        stability = stats.check_tolerance(args.stability / 100, "--stability")
        return {"window_s": args.window, "stability": stability,
                "error_tolerance": stats.check_error_tolerance(args.error_tolerance),
                "metrics": tuple(m.strip() for m in args.metrics.split(",") if m.strip())}
    except ValueError as exc:
        raise HarnessError(str(exc)) from None


def _cmd_ab(args: argparse.Namespace) -> int:
    from bench.ab import AbOptions, run_ab

    result = run_ab(AbOptions(
        rounds=args.rounds, round_s=args.round_seconds, slot_s=args.turn_seconds, pin=not args.no_pin,
        users=args.users,
        a_settings=args.a_settings, b_settings=args.b_settings,
        a_overrides=_overrides(args.a_set), b_overrides=_overrides(args.b_set),
        a_models=args.a_models, b_models=args.b_models, tolerance=_tolerance(args.tolerance),
        error_tolerance=_error_tolerance(args.error_tolerance),
        transports=args.transports, mix=args.mix, models_dir=args.models_dir, samples=args.samples,
        base=args.base, reports_root=args.reports_root,
    ))
    for metric, estimate in result.summary["ab"]["metrics"].items():
        print(estimate.get("line") or f"{metric}: {estimate['verdict']}")
    print(result.summary["verdict"])
    print(f"report: {result.report}")
    if args.step_summary:
        from bench.pr_ab import write_step_summary

        write_step_summary(result.summary)
    return 1 if result.slower and (args.base or args.fail_on_slower) else 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bench.sweep import SweepOptions, run_sweep

    result = run_sweep(SweepOptions(
        parallel_workers=[int(x) for x in args.parallel_workers.split(",")],
        users=[int(x) for x in args.users.split(",")], step_s=args.step_seconds,
        p99_limit_us=args.p99_limit_ms * 1000, transports=args.transports, mix=args.mix,
        models_dir=args.models_dir or MODELS_DIR, samples=args.samples,
        windows=args.windows, tolerance=_tolerance(args.tolerance),
    ))
    for step in result.summary["sweep"]["steps"]:
        change = step.get("vs_previous") or {}
        interval = (f" x{change['estimate']:.3f} (95% CI {change['low']:.3f} .. {change['high']:.3f})"
                    if "estimate" in change else "")
        print(f"pw={step['parallel_workers']} users={step['users']}: {step['throughput_rps'] or 0:.1f} req/s"
              f"{interval}: {change.get('verdict', '-')}")
    for row in result.summary["sweep"]["best"]:
        print(f"parallel_workers={row['parallel_workers']}: best {row['throughput_rps']:.1f} req/s "
              f"under p99 {args.p99_limit_ms} ms (at {row['users']} users, p99 {row['p99_us'] / 1000:.2f} ms)"
              if row["users"] else f"parallel_workers={row['parallel_workers']}: no step under the limit")
    print(f"report: {result.report}")
    return 0


def _models_options(p: argparse.ArgumentParser, which: str = "") -> None:
    """--models-dir, --samples and --mix, the same for run, ab and sweep."""
    p.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                   help="model repository to serve and load, every model reported on its own "
                        f"(default models/{'; ' + which if which else ''})")
    p.add_argument("--samples", type=Path, default=None, metavar="DIR",
                   help="sample requests per model, DIR/<model>/*.json, passed to the load generator")
    p.add_argument("--mix", default="", metavar="MODEL=W,...",
                   help="share of requests per model (default: mnist-svm=3,mushroom-xgboost=1 for models/, "
                        "else every served model alike)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="the fixed mixed scenario against the reference deployment")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="most measured time (default 60): windows stop once stable")
    p.add_argument("--window", type=float, default=10.0, metavar="SECONDS",
                   help="one measurement window (default 10; at most --seconds/3)")
    p.add_argument("--stability", type=float, default=10.0, metavar="PCT",
                   help="stable when the last 3 windows' throughput, p50 and p99 lie within PCT%% "
                        "of their mean (default 10)")
    p.add_argument("--error-tolerance", type=float, default=compare.DEFAULT_ERROR_TOLERANCE_POINTS,
                   metavar="POINTS", help="error-rate change counted as noise, in percentage points "
                                          "(default 0.5)")
    p.add_argument("--metrics", default=",".join(compare.DEFAULT_METRICS),
                   help="compared against the baseline (default throughput,p50,p99,error_rate; also "
                        "p90 p95 p99.9 max mean min)")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up, left out (default 5)")
    p.add_argument("--scenario", default="mixed", choices=("mixed", "robustness"),
                   help="mixed (default); robustness: the same load with 5%% of it malformed, one run of "
                        "--seconds, --slo also on bad_accepted, bad_server_error, liveness_lost, ...")
    p.add_argument("--users", type=int, default=8, help="concurrent users (default 8)")
    p.add_argument("--slo", action="append", default=[], metavar="EXPR",
                   help='threshold, repeatable: "p99<25ms", "error_rate<0.1%%", "mnist-svm/grpc:p50<5ms"')
    p.add_argument("--abort-when", action="append", default=[], metavar="RULE",
                   help="stop a Locust run early (exit 3, said in its report) when the target is dead or "
                        "sick, as locust -f loadtests/ does: no-success>5s (default), error-rate>50%%/10s")
    p.add_argument("--no-abort", action="store_true", help="never stop a run early because of the answers")
    p.add_argument("--baseline", type=Path, help="a summary.json to compare against")
    p.add_argument("--tolerance", type=float, default=compare.DEFAULT_TOLERANCE,
                   help="relative change counted as noise against the baseline, in (0, 1) "
                        "(default 0.10)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when slower than the baseline")
    p.add_argument("--settings", type=Path, default=None,
                   help="server settings file (default: the models dir's settings.json, else the "
                        "repository's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a server setting, e.g. --set parallel_workers=1")
    _models_options(p)
    p.add_argument("--reports-root", type=Path, default=None, metavar="DIR",
                   help="where the run folder goes (default: reports/ of the harness)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("ab", help="two deployments side by side, measured in turns")
    p.add_argument("--rounds", type=int, default=16,
                   help="measured rounds, after one warm-up round (default 16)")
    p.add_argument("--round-seconds", type=float, default=2.0,
                   help="length of a round; A and B each send for half of it, in turns (default 2)")
    p.add_argument("--turn-seconds", type=float, default=0.1,
                   help="length of one turn: A sends, then B, ... (default 0.1)")
    p.add_argument("--no-pin", action="store_true",
                   help="let the scheduler place servers and load generators (default: servers on half "
                        "the CPUs, generators on the other half); for changes about using more cores")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--a-settings", type=Path, default=SETTINGS_FILE)
    p.add_argument("--b-settings", type=Path, default=SETTINGS_FILE)
    p.add_argument("--a-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--b-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--a-models", type=Path, default=None, help="model repository of A (default models/)")
    p.add_argument("--b-models", type=Path, default=None, help="model repository of B (default models/)")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="relative change counted as no change, in (0, 1) (default 0.05)")
    p.add_argument("--error-tolerance", type=float, default=compare.DEFAULT_ERROR_TOLERANCE_POINTS,
                   metavar="POINTS", help="error-rate change counted as none, in percentage points "
                                          "(default 0.5)")
    p.add_argument("--base", metavar="REV",
                   help="A is git revision REV's deployment (its code, lock, venv, models; a work tree "
                        "under .harness/), B the working tree's; exit 1 when B is slower")
    p.add_argument("--fail-on-slower", action="store_true",
                   help="exit 1 when B's throughput interval says slower (always on with --base)")
    p.add_argument("--step-summary", action="store_true",
                   help="append the verdict and its intervals to $GITHUB_STEP_SUMMARY (CI: or run "
                        "`python -m bench.pr_ab reports/ab/latest/summary.json` after the run)")
    p.add_argument("--transports", default="rest",
                   help="default rest: MLServer's gRPC starvation under mixed load swamps the ratio")
    _models_options(p, "both sides, unless --a-models / --b-models say otherwise")
    p.add_argument("--reports-root", type=Path, default=None, metavar="DIR",
                   help="where the run folder goes (default: reports/ of the harness)")
    p.set_defaults(func=_cmd_ab)

    p = sub.add_parser("sweep", help="concurrency steps until a p99 limit or errors")
    p.add_argument("--parallel-workers", default="0", help="comma-separated settings to sweep, e.g. 0,1,2")
    p.add_argument("--users", default="1,2,4,8,16,32", help="concurrency steps")
    p.add_argument("--step-seconds", type=float, default=8.0)
    p.add_argument("--windows", type=int, default=3,
                   help="windows per step, for the interval on its change (default 3)")
    p.add_argument("--tolerance", type=float, default=0.10,
                   help="relative throughput change between steps counted as none (default 0.10)")
    p.add_argument("--p99-limit-ms", type=float, default=50.0)
    p.add_argument("--transports", default="rest,grpc")
    _models_options(p)
    p.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    from oip.errors import OipError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (HarnessError, OipError, slo.SloError, compare.BaselineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
