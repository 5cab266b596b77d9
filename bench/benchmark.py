"""``python -m bench run`` (``tox -e bench``): the fixed mixed scenario against the reference deployment.

Starts the deployment on free loopback ports, warms it up (left out of the
figures), scrapes MLServer's Prometheus endpoint around the measured window,
runs the fixed scenario, and writes ``reports/bench/<run-id>/`` (summary.json,
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
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer
from reporting import compare, slo
from reporting.prometheus import Scraper
from reporting.runs import Run, new_run
from reporting.summary import server_side_view
from reporting.writer import write_report

DEFAULT_SECONDS = 30.0
DEFAULT_WARMUP_S = 5.0


@dataclass
class BenchOptions:
    seconds: float = DEFAULT_SECONDS
    warmup_s: float = DEFAULT_WARMUP_S
    users: int = FIXED_SCENARIO["users"]
    slos: list[slo.Slo] = field(default_factory=list)
    baseline: Path | None = None
    tolerance: float = compare.DEFAULT_TOLERANCE
    fail_on_regression: bool = False
    settings_file: Path | None = None  # None: the models dir's own settings.json, else the repository's
    overrides: dict[str, Any] = field(default_factory=dict)
    models_dir: Path = MODELS_DIR
    samples: Path | None = None
    mix: str | None = None
    reports_root: Path | None = None  # None: reports/ of the harness


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


def run_benchmark(options: BenchOptions) -> BenchResult:
    # Bad input first, before anything is started: a malformed baseline is one clear message.
    baseline = compare.load_baseline(options.baseline) if options.baseline else None
    run = new_run("bench", root=options.reports_root) if options.reports_root else new_run("bench")
    scenario = for_models({**FIXED_SCENARIO, "users": options.users}, options.models_dir, options.samples,
                          options.mix)
    summary: dict[str, Any] = {
        "run": {"id": run.run_id, "kind": "bench", "scenario": scenario["name"],
                "arguments": {"seconds": options.seconds, "warmup_s": options.warmup_s,
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
            result = measure(e.rest_url, e.grpc_target, options.seconds, scratch / "measured", scenario)
            prometheus_view = scraper.stop()
        result.copy_locust_files(run.path)
        summary["run"].update(ended=_now(), duration_s=result.duration_s,
                              locust_exit_code=result.returncode)
        summary["scopes"] = result.scopes
        summary["timeline"] = result.timeline
        summary["server_side"] = server_side_view(prometheus_view, result.scopes)
        if not prometheus_view:
            summary["warnings"].append(f"no Prometheus figures from {e.metrics_url}")
        summary["warnings"] += result.warnings
        summary["slo"] = slo.evaluate(options.slos, result.scopes)
        if baseline is not None:
            summary["comparison"] = compare.compare_to_baseline(summary, baseline,
                                                               tolerance=options.tolerance)
        summary["verdict"], failed = verdict_of(summary, options.fail_on_regression)
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the run stopped early: {exc}"
        summary["run"]["ended"] = _now()
        raise
    finally:
        report = write_report(run, summary)
    return BenchResult(run, report, summary, failed)
