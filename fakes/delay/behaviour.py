"""What the delay stand-in answers and how long it holds each request, with its record of both."""

from __future__ import annotations

from typing import Any

import numpy as np

from reporting.latency import LatencyBook

ENDPOINT = "infer"
CACHE_LIMIT = 50_000  # cached answers per transport (a miss only costs a parse)


class Answers:
    """Predictions per model: a table of the held-out rows, the oracle for anything else."""

    def __init__(self, wrong_every: int = 0, data_dir: str | None = None) -> None:
        from reference import datasets, oracle
        from reference.catalog import MODELS

        self.specs = MODELS
        self.wrong_every = wrong_every
        self._count = 0
        self._oracle = oracle
        self._table: dict[str, dict[bytes, Any]] = {}
        for name in MODELS:
            X, _ = datasets.heldout(name, data_dir)
            predictions = oracle.predict(name, X)
            self._table[name] = {row.tobytes(): value for row, value in zip(X, predictions, strict=True)}

    def predict(self, model: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The right prediction for ``rows`` and a wrong one (for ``--wrong-every``)."""
        spec = self.specs[model]
        rows = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        table = self._table[model]
        values = [table.get(row.tobytes()) for row in rows]
        if any(v is None for v in values):
            values = list(self._oracle.predict(model, rows))
        dtype = np.int64 if spec.output_datatype == "INT64" else np.float32
        right = np.asarray(values, dtype=dtype).reshape(-1, 1)
        wrong = (right + 1) % 10 if dtype == np.int64 else (1.0 - right).astype(np.float32)
        return right, wrong

    def choose(self, right: bytes, wrong: bytes) -> bytes:
        """This answer's bytes: every ``wrong_every``-th answer (of this process) is the wrong one."""
        if not self.wrong_every:
            return right
        self._count += 1
        return wrong if self._count % self.wrong_every == 0 else right


class Behaviour:
    """How long to hold each request, and the record of what was meant and what was done."""

    def __init__(self, delay_ms: float, slow_every: int = 0, slow_ms: float = 0.0) -> None:
        self.delay_s = delay_ms / 1000.0
        self.slow_every = slow_every
        self.slow_s = slow_ms / 1000.0
        self._counts: dict[str, int] = {}
        self.intended = LatencyBook()  # the delay each request was meant to get: the truth
        self.held = LatencyBook()  # how long the server really held it

    def next_delay(self, transport: str) -> float:
        """Seconds to hold the next request of ``transport`` (each transport has its own count)."""
        count = self._counts[transport] = self._counts.get(transport, 0) + 1
        if self.slow_every and count % self.slow_every == 0:
            return self.slow_s
        return self.delay_s

    def record(self, model: str, transport: str, intended_s: float, held_s: float) -> None:
        self.intended.record(model, transport, ENDPOINT, intended_s * 1e6)
        self.held.record(model, transport, ENDPOINT, held_s * 1e6)

    def clear(self) -> None:
        self.intended.clear()
        self.held.clear()
        self._counts.clear()

    def to_wire(self) -> dict[str, Any]:
        return {"intended": self.intended.to_wire(), "held": self.held.to_wire()}
