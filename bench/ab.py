"""``python -m bench ab``: two deployments side by side, measured in turns in one run.

Shared CI machines are noisy: a verdict built on one absolute number per side,
measured minutes apart, is a coin toss. Here A and B run at the same time on
free loopback ports, each with its own Locust run, and the two runs take turns
(:mod:`bench.turns`, ``--turn`` of :mod:`loadtests._turns`): A's users send for
0.1 s while B's wait, then B's, and so on, for one warm-up round and then
``rounds`` rounds of 2 s. Each round gives a ratio B/A per metric (a difference
in points for the error rate) from the same two seconds of the machine's life;
the verdict comes from a 95 % bootstrap interval over the rounds against the
tolerance (:mod:`reporting.stats`): B ``slower``, ``faster``, ``same``, or
``inconclusive`` with how many more rounds would likely decide.

Both servers are pinned to the same half of the CPUs and both load generators
to the other half (:mod:`reference.affinity`; ``pin=False`` / ``--no-pin``
leaves placement to the scheduler). On the 2-core build VM the CPUs' speed
drifts 9-11 % from one second to the next; measured one after the other in
rounds of 3 s (a Locust process per round, 7 s apart), identical deployments
gave per-round ratios B/A from 0.73 to 1.15 (sd of log B/A 0.10-0.12); in
turns of 0.1 s and pinned, 0.94 to 1.06 (sd 0.02-0.035).

``--base REV`` (:mod:`bench.pr_ab`) makes A the deployment of git revision
REV (its own code, lock, venv and models) and B the working tree's; exit 1
when B is slower.

Loading A and B at the same time (both sending at once) looks fairer but is
not: with two servers and two generators on two cores, identical deployments
came out at B/A = 1.09 .. 1.12, run after run. It is not offered.
"""


from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.deployment import describe
from bench.scenario import FIXED_SCENARIO, for_models
from bench.turns import METRICS, SLOT_S, Target, measure_in_turns, pin_deployments
from loadtests._turns import check_round
from reference.errors import HarnessError
from reference.paths import MODELS_DIR, SETTINGS_FILE
from reference.server import ReferenceServer
from reporting import stats
from reporting.compare import DEFAULT_ERROR_TOLERANCE_POINTS
from reporting.runs import Run, new_run
from reporting.writer import write_report

WARMUP_ROUNDS = 1  # the first round warms both deployments and is left out
HEADLINE = "throughput"  # the metric the run's verdict (and the exit code) follows
DEFAULT_TOLERANCE = 0.05


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


def take_turns(sides: dict[str, Any], scenarios: dict[str, dict[str, Any]], rounds: int, round_s: float,
               scratch: Path, ab: dict[str, Any], warnings: list[str], warmup_rounds: int = WARMUP_ROUNDS,
               slot_s: float = SLOT_S, cpus: set[int] | None = None) -> None:
    """``warmup_rounds + rounds`` rounds of A and B in turns; the measured ones into ``ab["a"]``, ``ab["b"]``.

    A round either side has no time of its own in (its run came up late) is left out, and said.
    """
    targets = [Target(sides[n].endpoints.rest_url, sides[n].endpoints.grpc_target, scenarios[n])
               for n in "AB"]
    a, b = measure_in_turns(targets, warmup_rounds + rounds, round_s, scratch, slot_s=slot_s, cpus=cpus,
                            late_allowance_s=warmup_rounds * round_s)
    warnings += [f"A: {w}" for w in a.warnings] + [f"B: {w}" for w in b.warnings]
    for name, side in (("A", a), ("B", b)):
        if side.late_s > warmup_rounds * round_s:
            warnings.append(f"{name}'s load generator was up {side.late_s:.1f} s after the start, past the "
                            f"warm-up: its first measured rounds are short or missing (a slow machine?)")
    for index, (x, y) in enumerate(zip(a.rounds, b.rounds, strict=False)):
        if index < warmup_rounds:
            continue
        if x is None or y is None:
            warnings.append(f"round {index - warmup_rounds + 1} left out: "
                            f"{'A' if x is None else 'B'} had no time of its own in it")
            continue
        ab["a"].append(x)
        ab["b"].append(y)


@dataclass
class AbOptions:
    rounds: int = 16
    round_s: float = 2.0  # both sides' slots: each side sends for half of it
    slot_s: float = SLOT_S
    pin: bool = True  # servers on half the CPUs, load generators on the other half (reference.affinity)
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
    check_round(options.slot_s, options.round_s, 2, ("--turn-seconds", "--round-seconds"))
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
               "slot_s": options.slot_s, "warmup_rounds": WARMUP_ROUNDS, "a": [], "b": [], "metrics": {}},
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
            pinned = pin_deployments([a.pid, b.pid]) if options.pin else None
            ab["pinned"] = pinned
            take_turns(sides, scenarios, options.rounds, options.round_s, run.path / "locust-runs", ab,
                       summary["warnings"], slot_s=options.slot_s,
                       cpus=set(pinned["generators"]) if pinned else None)
        ab["metrics"] = analyse(ab["a"], ab["b"], options.tolerance, options.error_tolerance)
        errors = sum(r["errors"] for r in ab["a"] + ab["b"])
        summary["verdict"] = headline(ab["metrics"], len(ab["a"]), options.tolerance, errors)
        summary["run"]["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    except BaseException as exc:
        summary["verdict"] = f"FAIL: the run stopped early: {exc}"
        raise
    finally:
        report = write_report(run, summary, draw_plots=False)
    return AbResult(run, report, summary)
