"""What went wrong with a request, by kind, with a few examples: failures that stay readable.

A failed request is a :class:`Problem`: its ``kind`` (one of :data:`KINDS`),
the kind-level ``error`` Locust groups it by (``"connection refused"``,
``"HTTP 503"``, ``"wrong prediction"``: Locust keys its failures table by
method, name and error, so a message naming the held-out row would give one
line per row), and the ``detail`` naming the model, the row and both values,
which goes into the harness's own bounded :class:`FailureLog` instead.

The answer checks (:mod:`._workload`, :mod:`._expected`) return one line per
wrong answer; :func:`as_problem` sorts it into its kind. A request that got
no answer at all (:class:`oip.precise.WireError`, an ``OSError`` of the stock
client) is sorted by :func:`problem_of_exception`.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Any

CONNECTION = "connection"  # refused, reset or closed before an answer
TIMEOUT = "timeout"
HTTP_STATUS = "http status"
GRPC_STATUS = "grpc status"
MALFORMED = "malformed answer"
WRONG = "wrong prediction"
KINDS = (CONNECTION, TIMEOUT, HTTP_STATUS, GRPC_STATUS, MALFORMED, WRONG)
MAX_EXAMPLES = 3  # per kind
DETAIL_CHARS = 300
WRONG_PREFIX = "wrong answer:"
_HTTP_STATUS = re.compile(r": HTTP (\d{3}) \(expected 200\)")


@dataclass(frozen=True)
class Problem:
    """One failed request: its kind, Locust's (kind-level) error text, and the full detail."""

    kind: str
    error: str
    detail: str

    def __str__(self) -> str:
        return self.error


def as_problem(found: str | Problem | None) -> Problem | None:
    """A check's verdict as a Problem (None: the answer was right)."""
    if found is None or isinstance(found, Problem):
        return found
    if found.startswith(WRONG_PREFIX):
        return Problem(WRONG, WRONG, found)
    status = _HTTP_STATUS.search(found)
    if status:
        return Problem(HTTP_STATUS, f"HTTP {status.group(1)}", found)
    return Problem(MALFORMED, MALFORMED, found)


def grpc_status_problem(status_name: str, detail: str) -> Problem:
    """A gRPC call answered with a status other than OK (DEADLINE_EXCEEDED is a timeout)."""
    kind = TIMEOUT if status_name == "DEADLINE_EXCEEDED" else GRPC_STATUS
    return Problem(kind, f"gRPC {status_name}", detail)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def problem_of_exception(exc: BaseException, where: str) -> Problem:
    """A request that got no (whole) answer: refused, reset, closed, timed out, or unparseable."""
    detail = f"{where}: {exc}"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return Problem(CONNECTION, "connection refused", detail)
        if isinstance(cause, (TimeoutError, socket.timeout)):
            return Problem(TIMEOUT, TIMEOUT, detail)
        if isinstance(cause, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return Problem(CONNECTION, "connection reset", detail)
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return Problem(TIMEOUT, TIMEOUT, detail)
    if "closed" in text or "eof" in text:  # "closed the connection", FastHttp's "connection closed."
        return Problem(CONNECTION, "connection closed", detail)
    if isinstance(exc, OSError) or any(isinstance(c, OSError) for c in _causes(exc)):
        return Problem(CONNECTION, "connection error", detail)
    return Problem(MALFORMED, MALFORMED, detail)


class FailureLog:
    """A few examples of each kind of failure (bounded), with when they happened."""

    def __init__(self, limit: int = MAX_EXAMPLES) -> None:
        self.limit = limit
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self._new: list[dict[str, Any]] = []  # worker: not yet sent to the master

    def full(self, kind: str) -> bool:
        return len(self.examples.get(kind, ())) >= self.limit

    def add(self, problem: Problem, series: str, wall: float | None = None) -> None:
        if self.full(problem.kind):
            return
        detail = problem.detail
        if len(detail) > DETAIL_CHARS:
            detail = detail[:DETAIL_CHARS] + "..."
        example = {"kind": problem.kind, "error": problem.error, "series": series, "detail": detail,
                   "at": round(wall if wall is not None else time.time(), 3)}
        self.examples.setdefault(problem.kind, []).append(example)
        self._new.append(example)

    def merge(self, examples: list[dict[str, Any]]) -> None:
        """Master: a worker's new examples (those beyond the limit are dropped)."""
        for example in examples:
            kind = str(example.get("kind"))
            if not self.full(kind):
                self.examples.setdefault(kind, []).append(dict(example))

    def take_new(self) -> list[dict[str, Any]]:
        new, self._new = self._new, []
        return new

    def clear(self) -> None:
        self.examples, self._new = {}, []

    def report(self, counts: dict[str, int], started_wall: float | None) -> dict[str, Any]:
        """``{kind: {"count", "examples": [{error, series, detail, at_s}]}}`` for latency.json."""
        out: dict[str, Any] = {}
        for kind in sorted(set(counts) | set(self.examples)):
            examples = [{**{k: v for k, v in e.items() if k not in ("kind", "at")},
                         "at_s": round(e["at"] - started_wall, 3) if started_wall else None}
                        for e in self.examples.get(kind, [])]
            out[kind] = {"count": counts.get(kind, 0), "examples": examples}
        return out
