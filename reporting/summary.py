"""``summary.json``: the machine-readable report of a run, with a versioned schema.

Layout (schema ``oip-harness/summary/v1``)::

    {"schema": ..., "run": {id, kind, scenario, arguments, started, ended, duration_s,
                            revision, machine, server, settings, models, warmup_s},
     "scopes": {"": overall, "mnist-svm": ..., "mnist-svm/rest": ..., ...},
     "server_side": {model: {requests, failures, inference_mean_us, client_mean_us,
                             overhead_us}},
     "warnings": [...], "slo": [...], "comparison": {...} | null, "verdict": "..."}

Each scope holds ``requests``, ``errors`` (by kind), ``error_rate``,
``throughput_rps`` and ``latency_us`` (``p50 p90 p95 p99 p99.9 max mean``).
"""

from __future__ import annotations

SCHEMA = "oip-harness/summary/v1"
