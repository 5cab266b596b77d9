"""``python -m bench sweep``: concurrency steps until a p99 limit or errors are hit.

For each ``parallel_workers`` setting, a fresh reference deployment is loaded
with 1, 2, 4, ... closed-loop users (a short warm-up first); a setting's sweep
stops at the first step whose p99 passes the limit or that has errors. Each
step is measured in ``windows`` equal windows (default 3), so that its change
of throughput against the step before has a 95 % bootstrap interval over the
windows and a verdict against the tolerance (:mod:`reporting.stats`): a step
whose throughput is ``same`` as the last one's (or lower) means the
deployment is saturated. The report gives, per setting, the highest
throughput measured under the limit, and plots latency against throughput.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.scenario import FIXED_SCENARIO, for_models, measure
from bench.windows import compact_scopes, merged_scopes
from reference.paths import MODELS_DIR
from reference.server import ReferenceServer
from reporting import stats
from reporting.runs import Run, new_run
from reporting.writer import write_report


@dataclass
class SweepOptions:
    parallel_workers: list[int] = field(default_factory=lambda: [0])
    users: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    step_s: float = 8.0
    warmup_s: float = 3.0
    p99_limit_us: float = 50_000.0
    transports: str = FIXED_SCENARIO["transports"]
    mix: str = ""  # "": the seed's 3:1, or every served model alike
    models_dir: Path = MODELS_DIR
    samples: Path | None = None
    windows: int = 3  # per step: the interval on a step's change is over these
    tolerance: float = 0.10


@dataclass
class SweepResult:
    run: Run
    report: Path
    summary: dict[str, Any]


def best_under_limit(steps: list[dict[str, Any]], limit_us: float) -> dict[str, Any]:
    ok = [s for s in steps if s["p99_us"] is not None and s["p99_us"] <= limit_us and not s["errors"]]
    if not ok:
        return {"users": None, "throughput_rps": None, "p99_us": None}
    best = max(ok, key=lambda s: s["throughput_rps"] or 0)
    return {"users": best["users"], "throughput_rps": best["throughput_rps"], "p99_us": best["p99_us"]}


def step_change(previous: dict[str, Any] | None, step: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """A step's throughput against the step before: ratio, 95 % interval over windows, verdict."""
    if previous is None:
        return {"verdict": "first step"}
    try:
        interval = stats.two_sample_ratio(previous["window_rps"], step["window_rps"])
    except (ValueError, KeyError) as exc:
        return {"verdict": f"inconclusive ({exc})"}
    verdict = stats.decide("throughput", interval, tolerance, unit="windows per step")
    word = {"faster": "more throughput", "slower": "less throughput",
            "same": "same throughput (saturated)"}.get(verdict.word, str(verdict))
    return {**interval.to_dict(), "verdict": word}


def run_sweep(options: SweepOptions) -> SweepResult:
    run = new_run("sweep")
    sweep: dict[str, Any] = {"p99_limit_us": options.p99_limit_us, "step_s": options.step_s,
                             "transports": options.transports, "mix": options.mix or "default",
                             "models_dir": str(options.models_dir), "steps": [], "best": []}
    summary: dict[str, Any] = {
        "run": {"id": run.run_id, "kind": "sweep", "scenario": f"closed loop, {options.transports}, "
                f"{options.mix or 'default mix'}, {options.models_dir}",
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "warmup_s": options.warmup_s, **run.meta},
        "scopes": {}, "warnings": [], "verdict": "incomplete: the sweep did not finish", "sweep": sweep,
    }
    write_report(run, summary, draw_plots=False)
    try:
        for workers in options.parallel_workers:
            steps: list[dict[str, Any]] = []
            with ReferenceServer(ports="free", overrides={"parallel_workers": workers},
                                 models_dir=options.models_dir) as server:
                e = server.endpoints
                summary["run"].setdefault("server", _identity(e.rest_url))
                base = for_models({**FIXED_SCENARIO, "transports": options.transports}, options.models_dir,
                                  options.samples, options.mix)
                scratch = run.path / "locust-runs" / f"pw{workers}"
                if options.warmup_s > 0:
                    measure(e.rest_url, e.grpc_target, options.warmup_s, scratch / "warmup",
                            {**base, "users": max(options.users)})
                for users in options.users:
                    windows = [measure(e.rest_url, e.grpc_target, options.step_s / max(1, options.windows),
                                       scratch / f"u{users}-w{k}", {**base, "users": users})
                               for k in range(max(1, options.windows))]
                    overall = merged_scopes(windows).get("", {})
                    lat = overall.get("latency_us") or {}
                    step = {"parallel_workers": workers, "users": users,
                            "throughput_rps": overall.get("throughput_rps"),
                            "p50_us": lat.get("p50"), "p99_us": lat.get("p99"),
                            "errors": sum((overall.get("errors") or {}).values()),
                            "window_rps": [compact_scopes(m.scopes).get("", {}).get("throughput")
                                           for m in windows]}
                    step["vs_previous"] = step_change(steps[-1] if steps else None, step, options.tolerance)
                    steps.append(step)
                    sweep["steps"].append(step)
                    summary["warnings"] += [f"pw={workers} u={users}: {w}"
                                            for m in windows for w in m.warnings]
                    write_report(run, summary, draw_plots=False)
                    if step["errors"] or (step["p99_us"] or 0) > options.p99_limit_us:
                        break
            sweep["best"].append({"parallel_workers": workers,
                                  **best_under_limit(steps, options.p99_limit_us)})
        ranked = sorted((b for b in sweep["best"] if b["throughput_rps"]),
                        key=lambda b: b["throughput_rps"], reverse=True)
        summary["verdict"] = (
            f"best: parallel_workers={ranked[0]['parallel_workers']} at {ranked[0]['throughput_rps']:.0f} "
            f"req/s under p99 {options.p99_limit_us / 1000:.0f} ms" if ranked
            else "no setting stayed under the p99 limit"
        )
        summary["run"]["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the sweep stopped early: {exc}"
        raise
    finally:
        report = write_report(run, summary)
    return SweepResult(run, report, summary)


def _identity(rest_url: str) -> dict[str, Any]:
    from bench.deployment import server_identity

    return server_identity(rest_url)
