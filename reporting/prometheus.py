"""The server's own view: scrape MLServer's Prometheus endpoint and diff two scrapes.

MLServer 1.7.1 exports, per model and version, ``model_infer_request_success_total``,
``model_infer_request_failure_total`` and ``model_infer_request_duration`` (a
summary: ``_count`` and ``_sum`` in seconds). Diffing a scrape taken before a
run with one taken after gives the server's request count and mean inference
time for exactly that run; the client's mean latency minus the server's mean
inference time is the protocol, transport and queueing overhead.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SUCCESS = "model_infer_request_success_total"
FAILURE = "model_infer_request_failure_total"
DURATION_COUNT = "model_infer_request_duration_count"
DURATION_SUM = "model_infer_request_duration_sum"


def parse(text: str) -> Sample:
    """Prometheus text exposition to ``{(metric, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Sample = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return samples


def scrape(url: str, timeout: float = 5.0) -> Sample | None:
    """One scrape, or None when the endpoint does not answer (the report says so)."""
    try:
        response = httpx.get(url, timeout=timeout, trust_env=False)  # the target is on loopback
        response.raise_for_status()
        return parse(response.content.decode("utf-8", "replace"))
    except (httpx.HTTPError, ValueError):
        return None


def _per_model(sample: Sample, metric: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for (name, labels), value in sample.items():
        if name == metric:
            totals[dict(labels).get("model", "?")] += value  # summed over versions
    return totals


def model_view(before: Sample | None, after: Sample | None) -> dict[str, dict[str, float]]:
    """Per model: requests, failures and mean inference time (µs) between two scrapes."""
    if before is None or after is None:
        return {}
    view: dict[str, dict[str, float]] = {}
    deltas = {
        metric: {m: v - _per_model(before, metric).get(m, 0.0) for m, v in _per_model(after, metric).items()}
        for metric in (SUCCESS, FAILURE, DURATION_COUNT, DURATION_SUM)
    }
    for model in deltas[SUCCESS].keys() | deltas[DURATION_COUNT].keys():
        count = deltas[DURATION_COUNT].get(model, 0.0)
        seconds = deltas[DURATION_SUM].get(model, 0.0)
        view[model] = {
            "requests": int(round(deltas[SUCCESS].get(model, 0.0) + deltas[FAILURE].get(model, 0.0))),
            "failures": int(round(deltas[FAILURE].get(model, 0.0))),
            "inference_mean_us": (seconds / count * 1e6) if count else None,
        }
    return view


@dataclass
class Scraper:
    """Scrapes ``url`` before, every ``interval_s`` during, and after a run (in a thread)."""

    url: str
    interval_s: float = 5.0
    max_samples: int = 10_000
    before: Sample | None = None
    after: Sample | None = None
    timeline: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Scraper:
        self.before = scrape(self.url)
        self._thread = threading.Thread(target=self._loop, name="prometheus-scraper", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s) and len(self.timeline) < self.max_samples:
            sample = scrape(self.url)
            if sample is not None:
                self.timeline.append((time.time(), _per_model(sample, SUCCESS)))

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
        self.after = scrape(self.url)
        return model_view(self.before, self.after)
