"""``python -m bench run`` (``tox -e bench``): the fixed mixed scenario against the reference deployment.

Starts the deployment on free loopback ports, warms it up (left out of the
figures), scrapes MLServer's Prometheus endpoint around the measured window,
measures the fixed scenario in windows until it is stable (:mod:`bench.windows`:
the last three windows' throughput, p50 and p99 within ``--stability``, at most
``--seconds`` in all), and writes ``reports/bench/<run-id>/`` (summary.json,
report.md, plots, Locust's CSV and HTML). Thresholds (``--slo``) and a baseline
(``--baseline``) decide the verdict and the exit code. ``--models-dir DIR`` serves
and loads another model repository (every served model alike, each reported on
its own, answers checked against each model's own runtime in-process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.deployment import describe
from bench.scenario import FIXED_SCENARIO, for_models, measure
from bench.windows import measure_until_stable
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer
from reporting import compare, slo
from reporting.prometheus import Scraper
from reporting.runs import Run, new_run
from reporting.summary import server_side_view
from reporting.writer import write_report

DEFAULT_SECONDS = 60.0  # the most measured time: windows stop earlier once stable
DEFAULT_WARMUP_S = 5.0
DEFAULT_WINDOW_S = 10.0
DEFAULT_STABILITY = 0.10


@dataclass
class BenchOptions:
    seconds: float = DEFAULT_SECONDS
    warmup_s: float = DEFAULT_WARMUP_S
    users: int = FIXED_SCENARIO["users"]
    slos: list[slo.Slo] = field(default_factory=list)
    baseline: Path | None = None
    tolerance: float = compare.DEFAULT_TOLERANCE
    error_tolerance: float = compare.DEFAULT_ERROR_TOLERANCE_POINTS / 100  # a fraction: 0.005 = 0.5 points
    metrics: tuple[str, ...] = compare.DEFAULT_METRICS
    window_s: float = DEFAULT_WINDOW_S
    stability: float = DEFAULT_STABILITY
    fail_on_regression: bool = False
    settings_file: Path | None = None  # None: the models dir's own settings.json, else the repository's
    overrides: dict[str, Any] = field(default_factory=dict)
    models_dir: Path = MODELS_DIR
    samples: Path | None = None
    mix: str | None = None
    reports_root: Path | None = None  # None: reports/ of the harness
    abort: list[str] = field(default_factory=list)  # --abort-when RULE ... / --no-abort, for Locust


@dataclass
class BenchResult:
    run: Run
    report: Path
    summary: dict[str, Any]
    failed: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def verdict_of(summary: dict[str, Any], fail_on_regression: bool) -> tuple[str, bool]:
    """The one-line verdict and whether the run fails."""
    reasons = []
    overall = summary.get("scopes", {}).get("", {})
    errors = sum((overall.get("errors") or {}).values())
    if not overall.get("requests"):
        reasons.append("no requests measured")
    if errors:
        reasons.append(f"{errors} failed requests")
    breached = [r["slo"] for r in summary.get("slo") or [] if not r["ok"]]
    if breached:
        reasons.append(f"threshold(s) breached: {', '.join(breached)}")
    comparison = summary.get("comparison")
    if comparison and comparison["verdict"] == "slower" and fail_on_regression:
        reasons.append("slower than the baseline")
    suffix = f"; {comparison['verdict']} against the baseline" if comparison else ""
    if reasons:
        return "FAIL: " + "; ".join(reasons) + suffix, True
    return "PASS" + suffix, False


def window_plan(seconds: float, window_s: float) -> tuple[float, int]:
    """(window length, most windows) for at most ``seconds`` of measuring: 3 windows at least."""
    window = max(1.0, min(window_s, seconds / 3))
    return window, max(3, int(seconds // window))


def run_benchmark(options: BenchOptions) -> BenchResult:
    # Bad input first, before anything is started: a malformed baseline is one clear message.
    baseline = compare.load_baseline(options.baseline) if options.baseline else None
    try:
        compare.stats.check_tolerance(options.tolerance)
        compare.stats.check_tolerance(options.stability, "--stability")
    except ValueError as exc:
        raise compare.BaselineError(str(exc)) from None
    if baseline is not None:
        compare.check_baseline(baseline, options.metrics)
    window_s, max_windows = window_plan(options.seconds, options.window_s)
    run = new_run("bench", root=options.reports_root) if options.reports_root else new_run("bench")
    scenario = for_models({**FIXED_SCENARIO, "users": options.users, "abort": options.abort},
                          options.models_dir, options.samples, options.mix)
    summary: dict[str, Any] = {
        "run": {"id": run.run_id, "kind": "bench", "scenario": scenario["name"],
                "arguments": {"seconds": options.seconds, "warmup_s": options.warmup_s,
                              "window_s": window_s, "max_windows": max_windows,
                              "stability": options.stability,
                              "scenario": scenario, "slos": [s.text for s in options.slos],
                              "baseline": str(options.baseline) if options.baseline else None,
                              "overrides": options.overrides, "models_dir": str(options.models_dir)},
                "started": _now(), "warmup_s": options.warmup_s, **run.meta},
        "scopes": {}, "warnings": [], "verdict": "incomplete: the run did not finish",
    }
    write_report(run, summary, draw_plots=False)  # from here on, a failure leaves a report
    failed = True
    try:
        with ReferenceServer(ports="free", settings_file=options.settings_file, overrides=options.overrides,
                             models_dir=options.models_dir) as server:
            summary["run"].update(describe(server))
            e = server.endpoints
            scratch = run.path / "locust-runs"  # each Locust run's own folder, warm-up included
            if options.warmup_s > 0:
                measure(e.rest_url, e.grpc_target, options.warmup_s, scratch / "warmup", scenario)
            scraper = Scraper(e.metrics_url, interval_s=5.0).start()

            def progress(windowed) -> None:  # each window lands in the report as it is measured
                summary["windows"] = windowed.windows
                write_report(run, summary, draw_plots=False)

            windowed = measure_until_stable(e.rest_url, e.grpc_target, scenario, scratch,
                                            window_s=window_s, stability=options.stability,
                                            max_windows=max_windows, on_window=progress)
            prometheus_view = scraper.stop()
        measured = windowed.measured
        measured[-1].copy_locust_files(run.path)
        summary["run"].update(ended=_now(), duration_s=sum(m.duration_s for m in measured),
                              locust_exit_code=max((m.returncode for m in windowed.measurements), key=abs))
        summary["windows"] = windowed.windows
        summary["stability"] = windowed.describe()
        summary["scopes"] = windowed.scopes
        summary["timeline"] = [row for m in measured for row in m.timeline]
        summary["server_side"] = server_side_view(prometheus_view, windowed.scopes)
        if not prometheus_view:
            summary["warnings"].append(f"no Prometheus figures from {e.metrics_url}")
        if not windowed.stabilised:
            summary["warnings"].append(f"never stabilised in {len(windowed.windows)} windows of "
                                       f"{window_s:g} s: figures from the last 3")
        summary["warnings"] += [w for m in measured for w in m.warnings]
        summary["slo"] = slo.evaluate(options.slos, windowed.scopes)
        if baseline is not None:
            summary["comparison"] = compare.compare_to_baseline(
                summary, baseline, tolerance=options.tolerance, error_tolerance=options.error_tolerance,
                metrics=options.metrics)
        summary["verdict"], failed = verdict_of(summary, options.fail_on_regression)
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the run stopped early: {exc}"
        summary["run"]["ended"] = _now()
        raise
    finally:
        report = write_report(run, summary)
    return BenchResult(run, report, summary, failed)
