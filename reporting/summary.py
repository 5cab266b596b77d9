"""``summary.json``: the machine-readable report of a run, with a versioned schema.

Layout (schema ``oip-harness/summary/v1``)::

    {"schema": ..., "run": {id, kind, scenario, arguments, started, ended, duration_s,
                            revision, machine, target, server, settings, models, warmup_s},
     "scopes": {"": overall, "mnist-svm": ..., "mnist-svm/rest": ..., ...},
     "server_side": {model: {requests, failures, inference_mean_us, client_mean_us,
                             overhead_us}},
     "timeline": [{t, rps, failures_per_s, p50_ms, p95_ms, p99_ms}, ...],
     "warnings": [...], "slo": [...], "comparison": {...} | null, "verdict": "..."}

Each scope holds ``requests`` (successful and failed), ``successes``, ``errors``
(by kind: connection, timeout, http status, grpc status, malformed answer, wrong
prediction), ``error_rate``, ``throughput_rps``, ``latency_us`` (``min mean p50
p90 p95 p99 p99.9 max`` of the successful requests: a refused connection's
millisecond would make a dead server look fast), ``failed_latency_us`` when some
failed, and ``spectrum`` (``[percentile, µs]`` pairs for the distribution plot).
A load test's summary also has ``failures`` (examples per kind), ``stalls`` and
``run.aborted`` (why a run stopped early). Scopes are
computed from the load test's HDR histograms, merged exactly (a model's
percentiles are those of all its samples, not averages of percentiles).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reporting.latency import LatencyBook, LatencyHistogram

SCHEMA = "oip-harness/summary/v1"
SPECTRUM = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)
ERROR_KIND_CHARS = 90


def scope_stats(histogram: LatencyHistogram, errors: int, duration_s: float | None,
                error_kinds: Mapping[str, int] | None = None, failed: LatencyHistogram | None = None
                ) -> dict[str, Any]:
    """One scope's figures: ``histogram`` holds the successful requests (their percentiles are
    reported), ``failed`` the failed ones (counted in ``requests``, by kind in ``errors``)."""
    successes = histogram.count
    failures = failed.count if failed is not None else 0
    requests = successes + failures
    kinds = dict(error_kinds or {})
    if errors and not kinds:
        kinds = {"failed": errors}
    spectrum = histogram.percentiles(SPECTRUM) if successes else {}
    out = {
        "requests": requests,
        "successes": successes,
        "errors": kinds,
        "error_rate": (errors / requests) if requests else None,
        "throughput_rps": (requests / duration_s) if duration_s and requests else None,
        "latency_us": histogram.stats() if successes else {},
        "spectrum": [[p, v] for p, v in spectrum.items()],
    }
    if failures:
        out["failed_latency_us"] = failed.stats()  # type: ignore[union-attr]
    return out


def scopes_from_book(book: LatencyBook, duration_s: float | None,
                     error_kinds: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Overall (``""``), per model, and per ``model/transport`` statistics.

    Percentiles are those of the successful requests; failures are counted by
    the kind the book recorded (``error_kinds`` overrides the overall scope's).
    """
    groups: dict[str, list] = defaultdict(list)
    for key in book:
        groups[""].append(key)
        groups[key.model].append(key)
        groups[f"{key.model}/{key.transport}"].append(key)
    scopes: dict[str, dict[str, Any]] = {}
    for scope, keys in sorted(groups.items()):
        merged, failed = LatencyHistogram(), LatencyHistogram()
        kinds: Counter[str] = Counter()
        for key in keys:
            merged.merge(book.histogram(key))
            failed.merge(book.failed_histogram(key))
            kinds.update(book.kinds(key))
        if scope == "" and error_kinds and not kinds:
            kinds = Counter(error_kinds)
        scopes[scope] = scope_stats(merged, sum(kinds.values()), duration_s, dict(kinds), failed)
    return scopes


def error_kinds_from_locust(failures_csv: Path) -> dict[str, int]:
    """Locust's ``*_failures.csv`` folded into ``{message (shortened): occurrences}``."""
    kinds: Counter[str] = Counter()
    try:
        with failures_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                message = " ".join((row.get("Error") or "?").split())
                if len(message) > ERROR_KIND_CHARS:
                    message = message[: ERROR_KIND_CHARS - 3] + "..."
                kinds[message] += int(float(row.get("Occurrences") or 0))
    except OSError:
        return {}
    return dict(kinds)


def timeline_from_locust(history_csv: Path, max_rows: int = 3600) -> list[dict[str, Any]]:
    """Per-second rows of Locust's ``*_stats_history.csv`` (the ``Aggregated`` line)."""
    rows: list[dict[str, Any]] = []

    def number(value: str | None) -> float | None:
        try:
            return float(value) if value not in (None, "", "N/A") else None
        except ValueError:
            return None

    try:
        with history_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("Name") != "Aggregated" or len(rows) >= max_rows:
                    continue
                rows.append({"t": number(row.get("Timestamp")), "rps": number(row.get("Requests/s")),
                             "failures_per_s": number(row.get("Failures/s")),
                             "p50_ms": number(row.get("50%")), "p95_ms": number(row.get("95%")),
                             "p99_ms": number(row.get("99%"))})
    except OSError:
        return []
    return [r for r in rows if r["t"] is not None]


def server_side_view(prometheus_view: Mapping[str, Mapping[str, Any]],
                     scopes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The server's counts and inference time beside the client's mean latency per model."""
    out: dict[str, dict[str, Any]] = {}
    for model, view in sorted(prometheus_view.items()):
        client = (scopes.get(model) or {}).get("latency_us", {}).get("mean")
        inference = view.get("inference_mean_us")
        out[model] = {
            **view,
            "client_requests": (scopes.get(model) or {}).get("requests"),
            "client_mean_us": client,
            "overhead_us": (client - inference) if client is not None and inference is not None else None,
        }
    return out


def summary_from_loadtest(document: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """A ``summary.json`` body from a load test's ``latency.json`` and Locust's CSV files beside it."""
    duration = document.get("duration_s")
    book = LatencyBook.from_wire(document["hdr"])
    kinds = {} if book.kinds() else error_kinds_from_locust(run_dir / "locust_failures.csv")
    plan = document.get("plan") or {}
    failures = book.errors() or sum(kinds.values()) or (document.get("total") or {}).get("errors") or 0
    breached = [r["slo"] for r in document.get("slo") or [] if not r.get("ok")]
    aborted = document.get("aborted")
    return {
        "run": {
            "id": document.get("run_id"), "kind": document.get("kind", "loadtest"),
            "scenario": (f"{plan.get('mode', '?')}, mix {plan.get('mix')}, "
                         f"transports {plan.get('transports')}"),
            "arguments": plan, "started": document.get("started_at"), "ended": document.get("stopped_at"),
            "duration_s": duration, "target": (document.get("target") or {}).get("rest"),
            "revision": document.get("revision"), "machine": document.get("machine"),
            "stop_reason": document.get("stop_reason"), "aborted": aborted,
        },
        "scopes": scopes_from_book(book, duration, kinds),
        "failures": document.get("failures") or {},
        "stalls": document.get("stalls") or [],
        "slo": list(document.get("slo") or []),
        "timeline": timeline_from_locust(run_dir / "locust_stats_history.csv"),
        "warnings": list(document.get("warnings") or []),
        "verdict": _verdict(document.get("error"), aborted, failures, breached + _bad_breaches(document)),
        "bad_traffic": document.get("bad_traffic"),  # --bad-share: classification, liveness, cost
    }


def _bad_breaches(document: Mapping[str, Any]) -> list[str]:
    """Lost liveness and breached --bad-threshold of a run with bad traffic, as verdict reasons."""
    bad = document.get("bad_traffic") or {}
    out = [r["threshold"] for r in bad.get("thresholds") or [] if not r.get("ok")]
    if (bad.get("liveness") or {}).get("lost"):
        out.append("liveness lost")
    return out


def _verdict(error: Any, aborted: Mapping[str, Any] | None, failures: int, breached: list[str]) -> str:
    if error:
        return f"FAIL: {error}"
    reasons = [f"aborted: {aborted['reason']}"] if aborted else []
    if failures:
        reasons.append(f"{failures} failed requests")
    if breached:
        reasons.append(f"threshold(s) breached: {', '.join(breached)}")
    return "FAIL: " + "; ".join(reasons) if reasons else "PASS: no failed requests"
