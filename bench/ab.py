"""``python -m bench ab``: two deployments side by side, measured interleaved in one run.

Shared CI machines are noisy: a verdict built on one absolute number per side,
measured minutes apart, is a coin toss. Here A and B run at the same time on
free loopback ports and are measured in alternating short rounds (A B, B A,
A B, ...: each side has the whole machine while it is measured, and the order
flips so that neither always goes first), so drifting machine load hits both
sides alike. Each pair of rounds gives a ratio B/A per metric (a difference in
points for the error rate); the verdict comes from a 95 % bootstrap interval
over the rounds against the tolerance (:mod:`reporting.stats`): B ``slower``,
``faster``, ``same``, or ``inconclusive`` with how many more rounds would
likely decide. Identical deployments gave per-round throughput ratios from
0.73 to 1.15 (8 rounds of 5 s, 2-core build machine): a median without its
spread said nothing.

``--base REV`` (:mod:`bench.pr_ab`) makes A the deployment of git revision
REV (its own code, lock, venv and models) and B the working tree's; exit 1
when B is slower.

Loading A and B at the same time in each round looks fairer but is not: with
two servers and two generators on two cores, identical deployments came out
at B/A = 1.09 .. 1.12, run after run. It is not offered.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.deployment import describe
from bench.scenario import FIXED_SCENARIO, for_models, measure
from reference.errors import HarnessError
from reference.paths import MODELS_DIR, SETTINGS_FILE
from reference.server import ReferenceServer
from reporting import stats
from reporting.compare import DEFAULT_ERROR_TOLERANCE_POINTS
from reporting.runs import Run, new_run
from reporting.writer import write_report

METRICS = ("throughput", "p50", "p90", "p95", "p99", "p99.9", "max", "mean", "error_rate")
HEADLINE = "throughput"  # the metric the run's verdict (and the exit code) follows
DEFAULT_TOLERANCE = 0.05


def round_figures(overall: dict[str, Any]) -> dict[str, Any]:
    """One side's figures in one round: every metric of :data:`METRICS`, and its failed requests."""
    lat = overall.get("latency_us") or {}
    figures: dict[str, Any] = {m: lat.get(m) for m in METRICS}
    figures["throughput"] = overall.get("throughput_rps")
    figures["error_rate"] = overall.get("error_rate")
    figures["errors"] = sum((overall.get("errors") or {}).values())
    return figures


def analyse(a_rounds: list[dict[str, Any]], b_rounds: list[dict[str, Any]], tolerance: float,
            error_tolerance: float) -> dict[str, dict[str, Any]]:
    """Per metric: B against A, the estimate, its 95 % interval and the verdict."""
    out = {}
    for metric in METRICS:
        a, b = [r.get(metric) for r in a_rounds], [r.get(metric) for r in b_rounds]
        absolute = metric in stats.ABSOLUTE_METRICS
        try:
            interval = stats.paired_difference(a, b) if absolute else stats.paired_ratio(a, b)
        except ValueError as exc:
            out[metric] = {"verdict": f"inconclusive ({exc})", "word": "inconclusive"}
            continue
        tol = error_tolerance if absolute else tolerance
        verdict = stats.decide(metric, interval, tol)
        ratios = [y / x for x, y in zip(a, b, strict=True) if x and y is not None] if not absolute else []
        out[metric] = {**interval.to_dict(), "tolerance": tol, "verdict": str(verdict), "word": verdict.word,
                       "more_rounds": verdict.more_rounds,
                       "spread": [min(ratios), max(ratios)] if ratios else None,
                       "line": stats.describe(metric, interval, verdict)}
    return out


def headline(metrics: dict[str, dict[str, Any]], rounds: int, tolerance: float, errors: int) -> str:
    head = metrics.get(HEADLINE) or {}
    if "estimate" not in head:
        return f"inconclusive: no {HEADLINE} measured"
    return (f"B {head['verdict']}: {HEADLINE} B/A {head['estimate']:.3f} "
            f"(95% CI {head['low']:.3f} .. {head['high']:.3f}, {rounds} rounds, tolerance {tolerance:.0%})"
            + (f"; {errors} failed requests" if errors else ""))


def interleave(sides: dict[str, Any], scenarios: dict[str, dict[str, Any]], rounds: int, round_s: float,
               scratch: Path, ab: dict[str, Any], warnings: list[str], on_round=None) -> None:
    """``rounds`` rounds A B, B A, ... into ``ab["a"]``, ``ab["b"]`` and ``ab["order"]``."""
    for i in range(rounds):
        order = "AB" if i % 2 == 0 else "BA"
        ab["order"].append(order)
        results = {}
        for name in order:
            e = sides[name].endpoints
            results[name] = measure(e.rest_url, e.grpc_target, round_s, scratch / f"{i:02d}-{name}",
                                    scenarios[name])
        for name, m in sorted(results.items()):
            ab[name.lower()].append(round_figures(m.overall))
            warnings += [f"round {i} {name}: {w}" for w in m.warnings]
        if on_round:
            on_round()


@dataclass
class AbOptions:
    rounds: int = 8
    round_s: float = 5.0
    # REST only by default: under mixed REST + gRPC load MLServer 1.7.1 starves gRPC,
    # and how much it does varies from round to round, which would swamp the ratio.
    users: int = 4
    a_settings: Path = SETTINGS_FILE
    b_settings: Path = SETTINGS_FILE
    a_overrides: dict[str, Any] = field(default_factory=dict)
    b_overrides: dict[str, Any] = field(default_factory=dict)
    a_models: Path | None = None  # None: models_dir
    b_models: Path | None = None
    tolerance: float = DEFAULT_TOLERANCE
    error_tolerance: float = DEFAULT_ERROR_TOLERANCE_POINTS / 100  # a fraction of requests
    transports: str = "rest"
    mix: str = ""  # "": the seed's 3:1, or every served model alike
    models_dir: Path | None = None  # both sides, unless a_models / b_models say otherwise
    samples: Path | None = None
    base: str | None = None  # a git revision: A is its deployment (bench.pr_ab)
    b_load_as_a: bool = False  # B's models are A's behind another runtime: load B exactly like A
    reports_root: Path | None = None


@dataclass
class AbResult:
    run: Run
    report: Path
    summary: dict[str, Any]

    @property
    def slower(self) -> bool:
        return (self.summary["ab"]["metrics"].get(HEADLINE) or {}).get("word") == "slower"


def _label(settings: Path, overrides: dict[str, Any], models: Path | None) -> str:
    parts = [settings.name]
    parts += [f"{k}={v}" for k, v in overrides.items()]
    if models:
        parts.append(f"models={models}")
    return ", ".join(parts)


def _start_a(options: AbOptions, models: Path, stack: contextlib.ExitStack) -> Any:
    if options.base:
        from bench.pr_ab import BaseDeployment

        return stack.enter_context(BaseDeployment(options.base))
    return stack.enter_context(ReferenceServer(ports="free", settings_file=options.a_settings,
                                               overrides=options.a_overrides, models_dir=models))


def run_ab(options: AbOptions) -> AbResult:
    if options.rounds < 2:
        raise HarnessError("A/B needs at least 2 rounds (--rounds 2 or more)")
    try:
        stats.check_tolerance(options.tolerance)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    run = new_run("ab", root=options.reports_root) if options.reports_root else new_run("ab")
    base = {**FIXED_SCENARIO, "users": options.users, "transports": options.transports,
            "name": f"closed loop, {options.users} users, {options.transports}"}
    models = {"A": options.a_models or options.models_dir or MODELS_DIR,
              "B": options.b_models or options.models_dir or MODELS_DIR}
    scenarios = {side: for_models(base, folder, options.samples, options.mix)
                 for side, folder in models.items()}
    if options.b_load_as_a:
        scenarios["B"] = scenarios["A"]
    a_label = (f"revision {options.base}" if options.base else
               _label(options.a_settings, options.a_overrides, options.a_models or options.models_dir))
    b_label = "working tree" if options.base else _label(
        options.b_settings, options.b_overrides, options.b_models or options.models_dir)
    summary: dict[str, Any] = {
        "run": {"id": run.run_id, "kind": "ab", "scenario": scenarios["A"]["name"],
                "started": datetime.now(UTC).isoformat(timespec="seconds"), "warmup_s": options.round_s,
                **run.meta},
        "scopes": {}, "warnings": [], "verdict": "incomplete: the run did not finish",
        "ab": {"a_label": a_label, "b_label": b_label, "base": options.base, "rounds": options.rounds,
               "round_s": options.round_s, "tolerance": options.tolerance,
               "error_tolerance": options.error_tolerance,
               "interval": f"{stats.CONFIDENCE:.0%} expanded percentile bootstrap over rounds (paired)",
               "order": [], "a": [], "b": [], "metrics": {}},
    }
    write_report(run, summary, draw_plots=False)
    ab = summary["ab"]
    try:
        with contextlib.ExitStack() as stack:
            a = _start_a(options, models["A"], stack)
            b = stack.enter_context(ReferenceServer(ports="free", settings_file=options.b_settings,
                                                    overrides=options.b_overrides, models_dir=models["B"]))
            sides = {"A": a, "B": b}
            a_desc = a.describe() if options.base else describe(a)
            if options.base:
                ab["a_label"] = f"revision {options.base} ({a.sha[:12]})"
            summary["run"].update(target=f"A {a.endpoints.rest_url}, B {b.endpoints.rest_url}",
                                  server=describe(b)["server"], a=a_desc, b=describe(b))
            scratch = run.path / "locust-runs"
            for name, server in sides.items():  # warm-up, left out
                measure(server.endpoints.rest_url, server.endpoints.grpc_target, options.round_s,
                        scratch / f"warmup-{name}", scenarios[name])
            interleave(sides, scenarios, options.rounds, options.round_s, scratch, ab, summary["warnings"],
                       on_round=lambda: write_report(run, summary, draw_plots=False))
        ab["metrics"] = analyse(ab["a"], ab["b"], options.tolerance, options.error_tolerance)
        errors = sum(r["errors"] for r in ab["a"] + ab["b"])
        summary["verdict"] = headline(ab["metrics"], options.rounds, options.tolerance, errors)
        summary["run"]["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the run stopped early: {exc}"
        raise
    finally:
        report = write_report(run, summary, draw_plots=False)
    return AbResult(run, report, summary)
