"""The benchmark's fixed scenario and one measurement of it against a deployment.

A measurement is one headless Locust run of ``loadtests/`` (the same scenarios
users run), read back through its ``latency.json`` (HDR histograms, µs) and
Locust's CSV files. :func:`for_models` turns the fixed scenario into one for
another model repository (``--models-dir``, ``--samples``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._harness import run_harness
from reference.config import is_seed_dir
from reporting.summary import summary_from_loadtest

# Both models (3:1) over both transports, closed loop, 8 users: what `tox -e bench` measures
# (for another model repository, every served model alike: see for_models).
FIXED_SCENARIO: dict[str, Any] = {
    "name": "mixed-closed-8",
    "users": 8,
    "mix": "mnist-svm=3,mushroom-xgboost=1",
    "transports": "rest,grpc",
    "batch_size": 1,
}
# The same load with 5% of it malformed (every kind of bad request the conformance suite knows),
# in alternating 5 s windows: `python -m bench run --scenario robustness` (bench/robustness.py).
ROBUSTNESS_SCENARIO: dict[str, Any] = {
    **FIXED_SCENARIO,
    "name": "robustness-5pct",
    "bad_share": "5%",
    "bad_window_s": 5,
    "thresholds": ("liveness_lost==0", "bad_unclassified==0", "good_error_rate<=0"),  # default gates
}
SCENARIOS = {"mixed": FIXED_SCENARIO, "robustness": ROBUSTNESS_SCENARIO}
LOCUST_FILES = ("locust.html", "locust_stats.csv", "locust_stats_history.csv",
                "locust_failures.csv", "locust_exceptions.csv", "latency.json")


@dataclass
class Measurement:
    returncode: int
    latency: dict[str, Any]  # latency.json as written by loadtests/
    run_dir: Path  # the Locust run's own folder
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return float(self.latency.get("duration_s") or 0.0)

    @property
    def overall(self) -> dict[str, Any]:
        return self.scopes.get("", {})

    @property
    def warnings(self) -> list[str]:
        return list(self.latency.get("warnings") or [])

    def copy_locust_files(self, dest: Path) -> None:
        for name in LOCUST_FILES:
            src = self.run_dir / name
            if src.exists():
                shutil.copy2(src, dest / name)


def for_models(scenario: dict[str, Any], models_dir: Path | None, samples: Path | None = None,
               mix: str | None = None) -> dict[str, Any]:
    """``scenario`` for another model repository: every served model alike unless ``mix`` says otherwise."""
    if models_dir is None or is_seed_dir(models_dir):
        out = {**scenario, "mix": mix or scenario["mix"]}
    else:
        out = {**scenario, "mix": mix or "", "models_dir": str(Path(models_dir).resolve()),
               "name": scenario["name"].replace("mixed", "all-models")}
    if samples is not None:
        out["samples"] = str(Path(samples).resolve())
    return out


def locust_args(scenario: dict[str, Any], seconds: float, rest_url: str, grpc_target: str,
                extra: list[str] | None = None) -> list[str]:
    """Locust's command line for one measurement (no ``--mix``: every served model alike)."""
    users = int(scenario["users"])
    args = [
        "--host", rest_url, "--grpc-host", grpc_target,
        "-u", str(users), "-r", str(users), "-t", f"{max(1, round(seconds))}s",
        "--transports", scenario["transports"], "--batch-size", str(scenario.get("batch_size", 1)),
        # statistics (and the run's clock) restart once every user is spawned: throughput is
        # over the measured window only, not the spawn ramp
        "--reset-stats",
    ]
    for key, option in (("mix", "--mix"), ("models_dir", "--models-dir"), ("samples", "--samples")):
        if scenario.get(key):
            args += [option, str(scenario[key])]
    args += scenario.get("abort") or []  # --abort-when RULE / --no-abort (python -m bench run)
    return [*args, *(extra or [])]


def bad_traffic_args(scenario: dict[str, Any], thresholds: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Locust options of a scenario with bad traffic (none for one without), thresholds included."""
    if not scenario.get("bad_share"):
        return []
    args = ["--bad-share", str(scenario["bad_share"]), "--bad-window", str(scenario.get("bad_window_s", 5))]
    if scenario.get("bad_kinds"):
        args += ["--bad-kinds", str(scenario["bad_kinds"])]
    return args + [a for t in thresholds for a in ("--bad-threshold", t)]


def measure(rest_url: str, grpc_target: str, seconds: float, reports_root: Path,
            scenario: dict[str, Any] | None = None, extra: list[str] | None = None) -> Measurement:
    """One bounded Locust run against a deployment; its files land under ``reports_root``."""
    scenario = scenario or FIXED_SCENARIO
    args = locust_args(scenario, seconds, rest_url, grpc_target, extra)
    run = run_harness(args, timeout=seconds + 120, reports_root=reports_root)
    summary = summary_from_loadtest(run.report, run.run_dir)
    return Measurement(returncode=run.returncode, latency=run.report, run_dir=run.run_dir,
                       scopes=summary["scopes"], timeline=summary["timeline"])
