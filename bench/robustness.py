"""``python -m bench run --scenario robustness``: the fixed load with 5% of it malformed, gated by thresholds.

Starts the reference deployment on free loopback ports, warms it up with good
traffic only (left out), then runs the ``robustness`` scenario
(:data:`bench.scenario.ROBUSTNESS_SCENARIO`: the fixed mixed load with
``--bad-share 5%`` in alternating 5 s windows) as one headless Locust run,
and writes ``reports/bench/<run-id>/`` (summary.json and report.md with the
bad kind x classification table, liveness, and the good traffic with and
without bad traffic). Thresholds are the scenario's defaults
(``liveness_lost==0``, ``bad_unclassified==0``, ``good_error_rate<=0``) plus
each ``--slo``, on the named metrics of :mod:`loadtests._robustness`
(``p99<50ms``, ``error_rate<0.1%``, ``bad_accepted<=0``,
``bad_server_error<=0``, ``liveness_lost==0``, ...); the Locust run checks
them and exits 1 when one is breached, as it does for a failed good request
or lost liveness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.deployment import describe
from bench.scenario import FIXED_SCENARIO, ROBUSTNESS_SCENARIO, bad_traffic_args, measure
from loadtests._bad_traffic import summary_lines
from loadtests._robustness import parse_threshold
from reference.server import ReferenceServer
from reporting.runs import Run, new_run
from reporting.summary import summary_from_loadtest
from reporting.writer import write_report

DEFAULT_SECONDS = 60.0
DEFAULT_WARMUP_S = 5.0
RUN_SLACK_S = 120.0


@dataclass
class RobustnessResult:
    run: Run
    report: Path
    summary: dict[str, Any]
    latency: dict[str, Any]  # the Locust run's latency.json
    returncode: int  # the Locust run's: 0, 1 (a failed good request, lost liveness, a threshold), 3 aborted

    @property
    def failed(self) -> bool:
        return self.returncode != 0


def run_robustness(seconds: float = DEFAULT_SECONDS, users: int = FIXED_SCENARIO["users"],
                   thresholds: list[str] | tuple[str, ...] = (), warmup_s: float = DEFAULT_WARMUP_S,
                   reports_root: Path | None = None, max_requests: int | None = None,
                   settings_file: Path | None = None, overrides: dict[str, Any] | None = None,
                   share: str | None = None) -> RobustnessResult:
    """One robustness run against a fresh reference deployment (see the module docstring)."""
    gates = [*ROBUSTNESS_SCENARIO["thresholds"], *thresholds]
    for text in gates:  # bad input: exit 2 before anything starts
        parse_threshold(text)
    scenario = {**ROBUSTNESS_SCENARIO, "users": users, **({"bad_share": share} if share else {})}
    run = new_run("bench", root=reports_root) if reports_root else new_run("bench")
    extra = bad_traffic_args(scenario, gates)
    if max_requests:
        extra += ["--max-requests", str(max_requests)]
    with ReferenceServer(ports="free", settings_file=settings_file, overrides=overrides or {}) as server:
        server_view = describe(server)
        e = server.endpoints
        scratch = run.path / "locust-runs"
        if warmup_s > 0:
            warmup = {**FIXED_SCENARIO, "users": users}
            measure(e.rest_url, e.grpc_target, warmup_s, scratch / "warmup", warmup)
        measured = measure(e.rest_url, e.grpc_target, seconds, scratch / "robustness", scenario, extra)
    summary = summary_from_loadtest(measured.latency, measured.run_dir)
    summary["run"].update(server_view)
    summary["run"].update(id=run.run_id, kind="bench", scenario=scenario["name"], warmup_s=warmup_s,
                          locust_exit_code=measured.returncode,
                          arguments={"seconds": seconds, "users": users, "thresholds": gates,
                                     "scenario": scenario, "max_requests": max_requests}, **run.meta)
    measured.copy_locust_files(run.path)
    report = write_report(run, summary)
    return RobustnessResult(run, report, summary, measured.latency, measured.returncode)


def print_result(result: RobustnessResult) -> None:
    """The verdict, the failed good requests with their causes, the bad traffic's figures and table."""
    doc = result.latency
    total = doc.get("total") or {}
    print(result.summary.get("verdict"))
    print(f"good requests: {total.get('requests', 0)}, failed {total.get('errors', 0)}; "
          f"Locust exit {result.returncode}")
    for series in doc.get("series") or []:  # every failed good request, by series and cause
        if series.get("errors"):
            print(f"failed good requests of {series['model']} over {series['transport']}: "
                  + ", ".join(f"{n} x {kind}" for kind, n in (series.get("errors_by_kind") or {}).items()))
    for kind, found in (doc.get("failures") or {}).items():
        print(f"failed good requests: {found['count']} x {kind}")
        for example in found.get("examples") or []:
            print(f"  {example.get('at_s')} s: {example.get('error')}: {example.get('detail')}")
    for line in summary_lines(doc.get("bad_traffic")):
        print(line)
    print(f"report: {result.report}")


def cmd_robustness(args: Any) -> int:
    """``python -m bench run --scenario robustness [--seconds S] [--users N] [--slo EXPR] ...``."""
    from bench.__main__ import _overrides

    result = run_robustness(seconds=args.seconds, users=args.users, thresholds=list(args.slo or []),
                            warmup_s=args.warmup, reports_root=args.reports_root,
                            settings_file=args.settings, overrides=_overrides(args.set))
    print_result(result)
    return 1 if result.failed else 0
