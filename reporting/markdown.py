"""``report.md``: the summary as tables a person reads in a minute, verdict first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reporting.tables import markdown_table

LATENCY_COLUMNS = ("p50", "p90", "p95", "p99", "p99.9", "max")


def ms(us: float | None) -> str:
    """Microseconds as milliseconds with microsecond precision (``0.512``)."""
    return "-" if us is None else f"{us / 1000:.3f}"


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"




def _scope_name(scope: str) -> str:
    return "**all**" if scope == "" else scope


def render(summary: Mapping[str, Any], images: Sequence[str] = ()) -> str:
    run = summary.get("run", {})
    server = run.get("server") or {}
    lines = [
        f"# {run.get('kind', 'run').capitalize()} report `{run.get('id', '?')}`",
        "",
        f"**Verdict: {summary.get('verdict', 'n/a')}**",
        "",
        f"- server: {server.get('name', '?')} {server.get('version', '?')} at {run.get('target', '?')}",
        f"- harness revision: `{run.get('revision', '?')}`; scenario: {run.get('scenario', '?')}",
        f"- measured {run.get('duration_s', 0):.1f} s from {run.get('started', '?')}"
        f" (warm-up of {run.get('warmup_s', 0):.0f} s left out)",
    ]
    stability = summary.get("stability")
    if stability:
        lines.append(f"- windows: {stability.get('criterion')}; measured windows "
                     f"{stability.get('measured_windows')} of {stability.get('windows')}: "
                     + ("stabilised" if stability.get("stabilised") else "**never stabilised**"))
    settings = run.get("settings") or {}
    if settings:
        shown = ", ".join(f"{k}={settings[k]}" for k in ("parallel_workers", "debug", "gzip_enabled")
                          if k in settings)
        lines.append(f"- server settings: {shown}")
    for model in run.get("models") or []:
        acc = model.get("heldout_accuracy")
        lines.append(f"- model {model.get('name')} {model.get('version') or ''}"
                     + (f" (held-out accuracy {acc:.4f}, artifact {model.get('artifact_sha256', '')[:12]})"
                        if acc is not None else ""))
    for warning in summary.get("warnings") or []:
        lines += ["", f"> **Warning:** {warning}"]

    lines += ["", "## Client-side latency (ms, HDR histogram, µs resolution)", ""]
    rows = []
    for scope, s in summary.get("scopes", {}).items():
        lat = s.get("latency_us") or {}
        errors = s.get("errors") or {}
        rows.append([_scope_name(scope), s.get("requests", 0), sum(errors.values()) if errors else 0,
                     pct(s.get("error_rate")), f"{s.get('throughput_rps') or 0:.1f}",
                     *(ms(lat.get(c)) for c in LATENCY_COLUMNS)])
    lines += markdown_table(["scope", "requests", "errors", "error rate", "req/s", *LATENCY_COLUMNS], rows)
    error_kinds = {(scope, kind): n for scope, s in summary.get("scopes", {}).items() if "/" in scope
                   for kind, n in (s.get("errors") or {}).items()}
    if error_kinds:
        lines += ["", "Errors by kind:", ""]
        lines += markdown_table(["scope", "kind", "count"], [[s, k, n] for (s, k), n in error_kinds.items()])

    server_side = summary.get("server_side") or {}
    if server_side:
        lines += ["", "## Server-side view (MLServer's Prometheus metrics, same window)", ""]
        rows = [[m, v.get("requests"), v.get("failures"), ms(v.get("inference_mean_us")),
                 ms(v.get("client_mean_us")), ms(v.get("overhead_us"))] for m, v in server_side.items()]
        lines += markdown_table(["model", "server requests", "server failures", "inference mean",
                         "client mean", "overhead (protocol + queueing)"], rows)

    slos = summary.get("slo") or []
    if slos:
        lines += ["", "## Thresholds", ""]
        rows = [[f"`{r['slo']}`", r["scope"], _fmt_actual(r), "pass" if r["ok"] else "**FAIL**"]
                for r in slos]
        lines += markdown_table(["SLO", "scope", "measured", "result"], rows)

    lines += bad_traffic_lines(summary.get("bad_traffic"))

    comparison = summary.get("comparison")
    if comparison:
        lines += ["", f"## Against baseline `{comparison.get('baseline_run')}` "
                      f"(tolerance {pct(comparison.get('tolerance'), 0)})", ""]
        lines += [f"Verdict (overall scope): **{comparison.get('verdict')}**; "
                  f"{comparison.get('interval', 'no interval')}; error rate in points, tolerance "
                  f"{(comparison.get('error_tolerance') or 0) * 100:g}", ""]
        rows = [[r["scope"], r["metric"], _fmt_metric(r["metric"], r["baseline"]),
                 _fmt_metric(r["metric"], r["current"]), _fmt_change(r), _fmt_interval(r.get("interval")),
                 r["judgement"]]
                for r in comparison.get("rows", [])]
        lines += markdown_table(["scope", "metric", "baseline", "current", "change", "95% interval",
                                 "judgement"], rows)

    ab = summary.get("ab")
    if ab:
        lines += ["", "## A/B in one run (in turns, ratio B/A)", ""]
        pinned = ab.get("pinned")
        lines += [f"A: {ab.get('a_label')}; B: {ab.get('b_label')}; {len(ab.get('a') or [])} of "
                  f"{ab.get('rounds')} rounds of {ab.get('round_s')} s (after {ab.get('warmup_rounds', 0)} "
                  f"warm-up), A and B sending in turns of {ab.get('slot_s')} s; "
                  + (f"servers on CPUs {pinned['servers']}, load generators on {pinned['generators']}"
                     if pinned else "not pinned to CPUs"), ""]
        rows = [[m, _fmt_estimate(e), _fmt_interval(e), e["verdict"]]
                for m, e in ab.get("metrics", {}).items()]
        lines += markdown_table(["metric", "B/A (geometric mean)", "95% interval", "verdict"], rows)

    sweep = summary.get("sweep")
    if sweep:
        lines += ["", f"## Saturation sweep (p99 limit {ms(sweep.get('p99_limit_us'))} ms, "
                      f"{sweep.get('step_s')} s per step)", ""]
        rows = [[s["parallel_workers"], s["users"], f"{s['throughput_rps'] or 0:.1f}", ms(s["p50_us"]),
                 ms(s["p99_us"]), s["errors"], _fmt_estimate(s.get("vs_previous") or {}),
                 _fmt_interval(s.get("vs_previous")), (s.get("vs_previous") or {}).get("verdict", "-")]
                for s in sweep.get("steps", [])]
        lines += markdown_table(["parallel_workers", "users", "req/s", "p50", "p99", "errors",
                                 "req/s vs step before", "95% interval", "change"], rows)
        lines += ["", "Highest throughput under the limit:", ""]
        rows = [[b["parallel_workers"], "-" if b["users"] is None else b["users"],
                 "-" if b["throughput_rps"] is None else f"{b['throughput_rps']:.1f}", ms(b["p99_us"])]
                for b in sweep.get("best", [])]
        lines += markdown_table(["parallel_workers", "users", "req/s", "p99"], rows)

    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    schema = summary.get("schema", "?")
    lines += ["", f"Raw data: `summary.json` (schema `{schema}`); Locust's own CSV and HTML beside it.", ""]
    return "\n".join(lines)


def _fmt_actual(result: Mapping[str, Any]) -> str:
    return _fmt_metric(result["metric"], result["actual"])


def _fmt_metric(metric: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    if metric == "error_rate":
        return pct(value, 3)
    if metric == "throughput":
        return f"{value:.1f} req/s"
    return f"{ms(value)} ms"


def _fmt_estimate(e: Mapping[str, Any]) -> str:
    if "estimate" not in e:
        return "-"
    return f"{e['estimate'] * 100:+.3f} pt" if e.get("kind") == "difference" else f"{e['estimate']:.3f}"


def _fmt_interval(e: Mapping[str, Any] | None) -> str:
    if not e or "low" not in e:
        return "-"
    if e.get("kind") == "difference":
        return f"{e['low'] * 100:+.3f} .. {e['high'] * 100:+.3f} pt"
    return f"{e['low']:.3f} .. {e['high']:.3f}"


def _fmt_change(row: Mapping[str, Any]) -> str:
    change = row.get("change")
    if change is None:
        return "-"
    if row["metric"] == "error_rate":
        return f"{change * 100:+.3f} pt"
    return f"{change * 100:+.1f}%"


def bad_traffic_lines(bad: Mapping[str, Any] | None) -> list[str]:
    """``--bad-share``: the bad kind x classification table, liveness, and the good traffic's cost."""
    if not bad:
        return []
    found = bad.get("classification") or {}
    lines = ["", f"## Bad traffic ({pct(bad.get('share'))} of the requests)", "",
             f"{found.get('requests', 0)} malformed requests, {found.get('unclassified', 0)} unclassified; "
             "each answer classified (client error = 4xx with `{\"error\": \"...\"}`, or a gRPC client "
             "status):", ""]
    table = found.get("table") or {"classes": [], "rows": []}
    lines += markdown_table(["model", "transport", "bad kind", *table["classes"]],
                            [[m, t, f"`{k}`", *(n or "" for n in ns)] for m, t, k, *ns in table["rows"]])
    live = bad.get("liveness")
    if live:
        lines += ["", f"Liveness: {live.get('probes')} probes of the live endpoint, "
                      f"{live.get('lost_probes')} lost."]
        lines += [f"- down {o['duration_s']:.1f} s from {o['at']}: {o['why']}"
                  for o in live.get("outages", [])]
    cost = bad.get("cost")
    if cost:
        lines += ["", f"Good traffic in {cost['window_s']:g} s windows without and with bad traffic:", ""]
        rows = [[side.replace("_", " "), s["windows"], s["requests"], s["failed"], ms(s["p50_us"]),
                 ms(s["p99_us"])] for side, s in (("without_bad", cost["without_bad"]),
                                                  ("with_bad", cost["with_bad"]))]
        lines += markdown_table(["windows", "count", "good requests", "failed", "p50 ms", "p99 ms"], rows)
        lines += [""] + [f"- with/without {m['line']}" for m in cost.get("metrics", [])]
    results = bad.get("thresholds") or []
    if results:
        lines += ["", "Robustness thresholds:", ""]
        lines += markdown_table(["threshold", "measured", "result"],
                                [[f"`{r['threshold']}`", r["actual"], "pass" if r["ok"] else "**FAIL**"]
                                 for r in results])
    return lines
