"""What a run leaves: ``latency.json`` (partial while running), Locust's CSVs, summary and report.md.

:func:`write_report` writes ``latency.json`` from the run's state: the HDR
figures per series (percentiles of the successful requests), failures by
kind with examples, the plan, the generator's CPU, the open-loop schedule,
stalls of the server, why an aborted run stopped, ``--slo`` results, warnings.
:func:`report_loop` rewrites it every few seconds while data comes in,
so a crashed run leaves a partial report; :func:`finish` writes the final one,
Locust's CSV files (through Locust's public ``StatsCSV`` writers), summary.json
and report.md, and prints the table.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from datetime import UTC, datetime
from typing import Any

import gevent

from ._abort import slo_results
from ._bad_traffic import section as bad_traffic_section
from ._bad_traffic import summary_lines as bad_traffic_lines
from ._cpu import cpu_figures
from ._health import stall_warning
from ._state import RunState

log = logging.getLogger("loadtests")

REPORT_FILE = "latency.json"
REPORT_SCHEMA = 1
PARTIAL_REPORT_EVERY_S = 10.0
LATE_FRACTION_WARN = 0.01
PERCENTILE_COLUMNS = ("p50", "p90", "p95", "p99", "p99.9", "max")


def behind_warning(state: RunState) -> str | None:
    """The generator itself started requests late (a free user woke late: its CPU, its timers)."""
    lag = state.lag
    if not lag.scheduled or lag.generator_late / lag.scheduled <= LATE_FRACTION_WARN:
        return None
    return (
        f"the generator fell behind its open-loop schedule: {lag.generator_late} of {lag.scheduled} requests "
        f"({100 * lag.generator_late / lag.scheduled:.1f}%) started more than "
        f"{lag.late_threshold_us / 1000:g} ms late although a user was free for them (their p99 lag "
        f"{lag.own.percentile(99) / 1000:.2f} ms, max {lag.own.max / 1000:.2f} ms): the generator's CPU or "
        "timers. "
        "Latencies count from the intended start, so they include that wait; use --processes, or lower "
        "--arrival-rate"
    )


def server_warnings(state: RunState, stalls: list[dict[str, Any]]) -> list[str]:
    """Why the run stopped early, when the server stopped answering, or could not keep up."""
    out = []
    if state.aborted is not None:
        out.append(f"the run was aborted {state.aborted['at_s']:.1f} s in: {state.aborted['reason']}; the "
                   "figures are those measured until then")
    lag = state.lag
    stalled = stall_warning(stalls, lag.queued)
    if stalled:
        out.append(stalled)
    elif lag.scheduled and lag.queued / lag.scheduled > LATE_FRACTION_WARN:
        users = getattr(state.environment.parsed_options, "num_users", "?")
        out.append(
            f"the server did not keep up with the open-loop schedule: {lag.queued} of {lag.scheduled} "
            "requests "
            f"({100 * lag.queued / lag.scheduled:.1f}%) waited for a free user, all -u {users} busy with "
            "requests in flight; the wait counts as latency. Raise -u to offer the whole --arrival-rate")
    return out


def warnings(state: RunState, cpu: dict[str, Any], stalls: list[dict[str, Any]]) -> list[str]:
    out = server_warnings(state, stalls)
    if cpu["saturated"]:
        out.append(
            f"the load generator's CPU was saturated (up to {cpu['max_percent']:.0f}% of a core"
            + ("; Locust warned too" if cpu["locust_cpu_warning"] else "")
            + "): the figures may measure the generator rather than the server; "
            "use --processes N, fewer users, or a lower --arrival-rate"
        )
    behind = behind_warning(state)
    if behind:
        out.append(behind)
    plan = state.plan
    precise = state.precise_timers and not state.worker_imprecise_timers
    if plan is not None and plan.open_loop and not precise:
        out.append("no timerfd on this platform: open-loop start times may lag up to ~1 ms (gevent timers)")
    if plan is not None and state.started_wall is not None and state.book.requests():
        active = state.active_transports()
        for model, transport in plan.combinations():
            if transport in active and not any(k.model == model and k.transport == transport
                                               for k in state.book):
                out.append(f"{model} over {transport} got no requests (too few users for the mix?)")
    return out


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def measured_seconds(state: RunState) -> float | None:
    """The time the run's throughput is over: start (or stats reset) to stop; with --turn, its own slots."""
    if state.started_wall is None:
        return None
    if state.turns is not None:
        return state.turns.own_seconds(state.stopped_wall)
    return (state.stopped_wall or time.time()) - state.started_wall


def write_report(state: RunState, final: bool) -> dict[str, Any] | None:
    """Write ``latency.json`` into the run folder (``complete`` only at the end)."""
    run = state.run
    if run is None:
        return None
    options = state.environment.parsed_options
    runner = state.environment.runner
    started, stopped = state.started_wall, state.stopped_wall
    duration = measured_seconds(state)
    summary = state.book.summary(duration)
    cpu = cpu_figures(state.cpu if state.role == "local" else None, state.worker_cpu, runner)
    plan = state.plan
    workers = max(state.workers, len(runner.clients)) if state.role == "master" else 0
    ongoing = state.stalls.ongoing(time.monotonic(), runner.user_count) if state.role == "local" else None
    stalls = state.stalls.report(started, ongoing)
    document = {
        "schema": REPORT_SCHEMA,
        "kind": "loadtest",
        "run_id": run.run_id,
        "complete": final,
        "started_at": _iso(started),
        "stopped_at": _iso(stopped),
        "duration_s": round(duration, 3) if duration is not None else None,
        "stop_reason": state.stop_reason,
        "aborted": state.aborted,
        "partial": state.aborted is not None,
        "target": {"rest": plan.rest_url, "grpc": plan.grpc_target} if plan else None,
        "plan": {
            **(plan.describe() if plan else {}),
            "users": options.num_users,
            "spawn_rate": options.spawn_rate,
            "run_time_s": options.run_time,
            "transports_run": state.active_transports(),
            "worker_processes": workers,
        },
        "error": state.invalid,
        "warnings": warnings(state, cpu, stalls),
        "generator": {"cpu": cpu},
        "unit": "us",
        "series": summary["series"],
        "total": summary["total"],
        "failures": state.failures.report(state.book.kinds(), started),
        "stalls": stalls,
        "slo": state.slo_results,
        "bad_traffic": bad_traffic_section(state, summary["total"]),
        "schedule": state.lag.summary() if plan is not None and plan.open_loop else None,
        "checks": {name: getattr(load, "checked_by", "against the seed's oracle in-process")
                   for name, load in state.workload.items()},
        "locust": {"requests": runner.stats.total.num_requests, "failures": runner.stats.total.num_failures},
        "files": {"html": options.html_file, "csv_prefix": options.csv_prefix or state.csv_prefix},
        "revision": run.meta.get("revision"),
        "machine": run.meta.get("machine"),
        "hdr": state.book.to_wire(),
        "turns": state.turns.report(state.stopped_wall) if state.turns is not None else None,
    }
    run.write_json(REPORT_FILE, document)
    return document


def keep_previous_report(state: RunState) -> None:
    """A new test in the same Locust process (web UI): keep the last one's report beside it."""
    if state.run is None or state.started_wall is None:
        return
    state.tests += 1
    current = state.run.file(REPORT_FILE)
    if current.exists():
        current.replace(state.run.file(f"latency-test{state.tests}.json"))


def report_loop(state: RunState) -> None:
    """Rewrite the partial report while data comes in (workers report up to ~3 s after a stop)."""
    written = -1
    while True:
        gevent.sleep(PARTIAL_REPORT_EVERY_S)
        if state.turns is not None and not state.turns.over():
            continue  # --turn: encoding every histogram would take the CPU in the other run's turn
        requests = state.book.requests()
        if state.started_wall is not None and requests != written:
            with contextlib.suppress(OSError):
                write_report(state, final=False)
            written = requests
        if state.stopped_wall is None:
            behind = behind_warning(state)
            if behind and not state.warned_behind:
                state.warned_behind = True
                log.warning(behind)


def start_csv(state: RunState) -> None:
    """Locust's CSV files in the run folder, written while the test runs (Locust's public writer)."""
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

    # Locust made its own (non-writing) CSV writer before the init hook ran: ours goes beside it.
    # options.csv_prefix must stay unset, or Locust would also start its writer.
    assert state.run is not None
    state.csv_prefix = str(state.run.path / "locust")
    state.csv_writer = StatsCSVFileWriter(state.environment, PERCENTILES_TO_REPORT, state.csv_prefix,
                                          state.environment.parsed_options.stats_history_enabled)
    state.csv_greenlet = gevent.spawn(state.csv_writer.stats_writer)


def finish_csv(state: RunState) -> None:
    """Stop the CSV writer and write the final stats, failures and exceptions files.

    Locust's writer refreshes them once a second, so its last write can miss
    the end of the run: they are written once more with ``StatsCSV``'s public
    ``requests_csv`` / ``failures_csv`` / ``exceptions_csv`` (header and rows).
    """
    writer = state.csv_writer
    if writer is None or state.csv_prefix is None:
        return
    if state.csv_greenlet is not None:
        state.csv_greenlet.kill(block=True)
    from locust.stats import StatsCSV

    try:
        writer.close_files()
        final = StatsCSV(state.environment, writer.percentiles_to_report)
        for suffix, write in (("_stats.csv", final.requests_csv), ("_failures.csv", final.failures_csv),
                              ("_exceptions.csv", final.exceptions_csv)):
            with open(state.csv_prefix + suffix, "w", newline="") as handle:
                write(csv.writer(handle))
    except (AttributeError, OSError, ValueError) as exc:  # a Locust upgrade changed its writer
        log.warning("could not finish Locust's CSV files in %s: %s", state.csv_prefix, exc)


def write_summary(state: RunState, document: dict[str, Any] | None) -> None:
    """summary.json, report.md and plots beside latency.json, by the harness's one report writer."""
    if document is None or state.run is None or state.started_wall is None:
        return  # no test ran (the web UI was closed before one started): latency.json says so
    from reporting.summary import summary_from_loadtest
    from reporting.writer import write_report as write_summary_report  # imported at init (matplotlib)

    try:
        # An aborted run skips the plots (matplotlib costs seconds): it ends within 10 s of the target's end.
        write_summary_report(state.run, summary_from_loadtest(document, state.run.path),
                             draw_plots=state.aborted is None)
    except Exception as exc:  # latency.json and Locust's files are already written
        log.warning("could not write report.md/summary.json in %s: %s", state.run.path, exc)


def print_summary(state: RunState, document: dict[str, Any] | None) -> None:
    if document is None:
        return
    lines = [f"latency (microseconds) -> {state.run.file(REPORT_FILE) if state.run else '?'}"]
    lines.append(f"{'model':<18} {'transport':<9} {'requests':>9} {'errors':>7} {'req/s':>8} "
                 + " ".join(f"{name:>8}" for name in PERCENTILE_COLUMNS))
    for row in [*document["series"], {**document["total"], "model": "total", "transport": ""}]:
        lat = row["latency_us"]
        rps = row["throughput_rps"]
        lines.append(
            f"{row['model']:<18} {row['transport']:<9} {row['requests']:>9} {row['errors']:>7} "
            f"{(f'{rps:.1f}' if rps is not None else '-'):>8} "
            + " ".join(f"{lat[name]:>8}" for name in PERCENTILE_COLUMNS)
        )
    if document.get("schedule"):
        s = document["schedule"]
        lines.append(f"open loop: {s['scheduled']} scheduled, {s['late']} late "
                     f"(> {s['late_threshold_us']:g} us), start lag p50 {s['lag_us']['p50']} us, "
                     f"p99 {s['lag_us']['p99']} us, max {s['lag_us']['max']} us")
    for kind, found in document["failures"].items():
        example = found["examples"][0]["detail"] if found["examples"] else ""
        lines.append(f"failed: {found['count']} x {kind}" + (f" (e.g. {example})" if example else ""))
    for result in document["slo"]:
        verdict = "pass" if result["ok"] else "BREACHED"
        lines.append(f"slo {result['slo']}: {verdict} (measured {result['actual']})")
    lines += bad_traffic_lines(document.get("bad_traffic"))
    print("\n".join(lines), flush=True)
    for warning in document["warnings"]:
        log.warning("%s", warning)


def finish(state: RunState) -> None:
    """At quitting: the final latency.json, Locust's CSVs, summary.json/report.md, the table."""
    if state.report_greenlet is not None:
        state.report_greenlet.kill(block=False)
    if state.stopped_wall is None and state.started_wall is not None:
        state.stopped_wall = time.time()
    if state.started_wall is not None:
        state.slo_results = slo_results(state, measured_seconds(state))
    document = write_report(state, final=True)
    finish_csv(state)
    write_summary(state, document)
    print_summary(state, document)
