"""``python -m bench ab``: two deployments side by side, measured interleaved in one run.

Shared CI machines are noisy: a verdict built on one absolute number per side,
measured minutes apart, is a coin toss. Here A and B run at the same time on
free loopback ports and are measured in alternating short rounds (A B, B A,
A B, ...: each side has the whole machine while it is measured, and the order
flips so that neither always goes first), so drifting machine load hits both
sides alike. Each pair of rounds gives a ratio B/A; the verdict comes from the
median of those ratios and their spread. Two identical deployments came out at
1.025 (8 rounds of 5 s) on the 2-core build machine.

Loading A and B at the same time in each round looks fairer but is not: with
two servers and two generators on two cores, identical deployments came out
at B/A = 1.09 .. 1.12, run after run. It is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.deployment import describe
from bench.scenario import FIXED_SCENARIO, for_models, measure
from reference.errors import HarnessError
from reference.paths import MODELS_DIR, SETTINGS_FILE
from reference.server import ReferenceServer
from reporting.compare import ratio_estimate
from reporting.runs import Run, new_run
from reporting.writer import write_report

# metric -> (how to read it from a round's overall scope, higher is better)
METRICS = {
    "throughput": (lambda s: s.get("throughput_rps"), True),
    "p50": (lambda s: (s.get("latency_us") or {}).get("p50"), False),
    "p99": (lambda s: (s.get("latency_us") or {}).get("p99"), False),
}


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
    tolerance: float = 0.05
    transports: str = "rest"
    mix: str = ""  # "": the seed's 3:1, or every served model alike
    models_dir: Path | None = None  # both sides, unless a_models / b_models say otherwise
    samples: Path | None = None


@dataclass
class AbResult:
    run: Run
    report: Path
    summary: dict[str, Any]


def _label(settings: Path, overrides: dict[str, Any], models: Path | None) -> str:
    parts = [settings.name]
    parts += [f"{k}={v}" for k, v in overrides.items()]
    if models:
        parts.append(f"models={models}")
    return ", ".join(parts)


def run_ab(options: AbOptions) -> AbResult:
    if options.rounds < 2:
        raise HarnessError("A/B needs at least 2 rounds (--rounds 2 or more)")
    run = new_run("ab")
    base = {**FIXED_SCENARIO, "users": options.users, "transports": options.transports,
            "name": f"closed loop, {options.users} users, {options.transports}"}
    models = {"A": options.a_models or options.models_dir or MODELS_DIR,
              "B": options.b_models or options.models_dir or MODELS_DIR}
    scenarios = {side: for_models(base, folder, options.samples, options.mix)
                 for side, folder in models.items()}
    scenario = scenarios["A"]
    a_label = _label(options.a_settings, options.a_overrides, options.a_models or options.models_dir)
    b_label = _label(options.b_settings, options.b_overrides, options.b_models or options.models_dir)
    summary: dict[str, Any] = {
        "run": {"id": run.run_id, "kind": "ab", "scenario": scenario["name"],
                "started": datetime.now(UTC).isoformat(timespec="seconds"), "warmup_s": options.round_s,
                **run.meta},
        "scopes": {}, "warnings": [], "verdict": "incomplete: the run did not finish",
        "ab": {"a_label": a_label, "b_label": b_label, "rounds": options.rounds,
               "round_s": options.round_s, "order": [], "a": [], "b": [],
               "metrics": {}},
    }
    write_report(run, summary, draw_plots=False)
    ab = summary["ab"]
    try:
        with ReferenceServer(ports="free", settings_file=options.a_settings, overrides=options.a_overrides,
                             models_dir=models["A"]) as a, \
             ReferenceServer(ports="free", settings_file=options.b_settings, overrides=options.b_overrides,
                             models_dir=models["B"]) as b:
            sides = {"A": a, "B": b}
            summary["run"].update(target=f"A {a.endpoints.rest_url}, B {b.endpoints.rest_url}",
                                  server=describe(a)["server"], a=describe(a), b=describe(b))
            scratch = run.path / "locust-runs"
            for name, server in sides.items():  # warm-up, left out
                measure(server.endpoints.rest_url, server.endpoints.grpc_target, options.round_s,
                        scratch / f"warmup-{name}", scenarios[name])
            for i in range(options.rounds):
                order = "AB" if i % 2 == 0 else "BA"
                ab["order"].append(order)
                results = {}
                for name in order:
                    e = sides[name].endpoints
                    results[name] = measure(e.rest_url, e.grpc_target, options.round_s,
                                            scratch / f"{i:02d}-{name}", scenarios[name])
                for name, m in sorted(results.items()):
                    ab[name.lower()].append({k: read(m.overall) for k, (read, _) in METRICS.items()}
                                            | {"errors": sum((m.overall.get("errors") or {}).values())})
                    summary["warnings"] += [f"round {i} {name}: {w}" for w in m.warnings]
                write_report(run, summary, draw_plots=False)
        for metric, (_, higher_is_better) in METRICS.items():
            estimate = ratio_estimate([r[metric] for r in ab["a"]], [r[metric] for r in ab["b"]])
            ab["metrics"][metric] = {"median": estimate.median, "low": estimate.low, "high": estimate.high,
                                     "verdict": estimate.verdict(options.tolerance, higher_is_better)}
        errors = sum(r["errors"] for r in ab["a"] + ab["b"])
        head = ab["metrics"]["throughput"]
        summary["verdict"] = (
            f"{head['verdict']}: throughput B/A = {head['median']:.3f} "
            f"(spread {head['low']:.3f} .. {head['high']:.3f}, {options.rounds} rounds, "
            f"tolerance {options.tolerance:.0%})" + (f"; {errors} failed requests" if errors else "")
        )
        summary["run"]["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the run stopped early: {exc}"
        raise
    finally:
        report = write_report(run, summary, draw_plots=False)
    return AbResult(run, report, summary)
