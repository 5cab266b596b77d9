"""What the server did with each bad request: one classification per answer, counted per kind.

Every answer to a deliberately wrong request (:mod:`._bad_pool`) is one of
:data:`CLASSES`:

* ``client error``: REST 4xx whose body is ``{"error": "<string>"}`` (the V2
  error body); gRPC INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
  OUT_OF_RANGE (and RESOURCE_EXHAUSTED, the right answer to an oversized
  message, as conformance's ``TOO_LARGE_CODES`` says; and UNAUTHENTICATED,
  PERMISSION_DENIED, ALREADY_EXISTS, ABORTED, which gRPC maps to HTTP 4xx);
* ``client error, no error body``: REST 4xx with any other body;
* ``server error``: REST 5xx; gRPC INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS;
* ``connection closed``: no (whole) answer, the connection closed or reset;
  gRPC UNAVAILABLE, and CANCELLED (the server reset the stream);
* ``timeout``: no answer in time; gRPC DEADLINE_EXCEEDED;
* ``accepted``: an answer (2xx, OK) to a request the server should have refused;
* ``accepted, allowed``: the same, for a kind the catalogue lets a server
  accept (:func:`._bad_pool.may_accept`);
* ``unclassified``: anything else (an HTTP 1xx or 3xx, a gRPC code outside
  0-16); a run's count of these is reported, and 0 is expected.

:class:`Tally` counts (model, transport, kind, class), merges across
processes and renders the table.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

CLIENT_ERROR = "client error"
CLIENT_ERROR_BARE = "client error, no error body"
SERVER_ERROR = "server error"
CLOSED = "connection closed"
TIMEOUT = "timeout"
ACCEPTED = "accepted"
ACCEPTED_ALLOWED = "accepted, allowed"
UNCLASSIFIED = "unclassified"
CLASSES = (CLIENT_ERROR, CLIENT_ERROR_BARE, SERVER_ERROR, CLOSED, TIMEOUT, ACCEPTED, ACCEPTED_ALLOWED,
           UNCLASSIFIED)

GRPC_CLIENT = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "OUT_OF_RANGE",
                         "RESOURCE_EXHAUSTED",  # too large: the right answer to an oversized message
                         # the codes gRPC maps to HTTP 4xx (401, 403, 409): the request was refused
                         "UNAUTHENTICATED", "PERMISSION_DENIED", "ALREADY_EXISTS", "ABORTED"})
GRPC_SERVER = frozenset({"INTERNAL", "UNKNOWN", "UNIMPLEMENTED", "DATA_LOSS"})
GRPC_CLOSED = frozenset({"UNAVAILABLE", "CANCELLED"})
GRPC_TIMEOUT = frozenset({"DEADLINE_EXCEEDED"})


def has_error_body(body: bytes) -> bool:
    """The V2 error body: a JSON object whose ``error`` is a string."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("error"), str)


def accepted(allowed: bool) -> str:
    return ACCEPTED_ALLOWED if allowed else ACCEPTED


def classify_rest(status: int, body: bytes, allowed: bool = False) -> str:
    """An HTTP answer to a bad request."""
    if 200 <= status < 300:
        return accepted(allowed)
    if 400 <= status < 500:
        return CLIENT_ERROR if has_error_body(body) else CLIENT_ERROR_BARE
    if 500 <= status < 600:
        return SERVER_ERROR
    return UNCLASSIFIED


def classify_grpc(status: str, allowed: bool = False) -> str:
    """A gRPC status (its name, e.g. ``INVALID_ARGUMENT``) answering a bad request."""
    if status == "OK":
        return accepted(allowed)
    for codes, name in ((GRPC_CLIENT, CLIENT_ERROR), (GRPC_SERVER, SERVER_ERROR), (GRPC_CLOSED, CLOSED),
                        (GRPC_TIMEOUT, TIMEOUT)):
        if status in codes:
            return name
    return UNCLASSIFIED


def classify_no_answer(problem_kind: str) -> str:
    """No answer at all: the :mod:`._outcomes` kind of the exception (connection, timeout, ...)."""
    return TIMEOUT if problem_kind == "timeout" else CLOSED


class Tally:
    """Counts of (model, transport, kind, class), with an example of each class of each kind."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str, str]] = Counter()
        self.examples: dict[str, str] = {}  # "kind / class" -> what the server said, once
        self._new: Counter[tuple[str, str, str, str]] = Counter()

    def add(self, model: str, transport: str, kind: str, cls: str, said: str = "") -> None:
        key = (model, transport, kind, cls)
        self.counts[key] += 1
        self._new[key] += 1
        self.examples.setdefault(f"{kind} / {cls}", said[:200])

    def total(self, cls: str | None = None) -> int:
        return sum(n for key, n in self.counts.items() if cls is None or key[3] == cls)

    def take_new(self) -> dict[str, Any]:
        new, self._new = self._new, Counter()
        return {"counts": [[*key, n] for key, n in new.items()], "examples": dict(self.examples)}

    def merge(self, wire: dict[str, Any]) -> None:
        for *key, n in wire.get("counts") or []:
            self.counts[tuple(key)] += int(n)  # type: ignore[index]
        for name, said in (wire.get("examples") or {}).items():
            self.examples.setdefault(name, said)

    def clear(self) -> None:
        self.counts, self._new, self.examples = Counter(), Counter(), {}

    def report(self) -> dict[str, Any]:
        """For latency.json: rows, totals by class, the unclassified count."""
        rows = [{"model": m, "transport": t, "kind": k, "class": c, "count": n}
                for (m, t, k, c), n in sorted(self.counts.items())]
        by_class = {cls: self.total(cls) for cls in CLASSES if self.total(cls)}
        return {"requests": self.total(), "by_class": by_class, "unclassified": self.total(UNCLASSIFIED),
                "rows": rows, "table": pivot(rows), "examples": dict(sorted(self.examples.items()))}


def pivot(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The kind x class table: ``{"classes": [...], "rows": [[model, transport, kind, n, ...]]}``."""
    grouped: dict[tuple[str, str, str], Counter[str]] = {}
    for row in rows:
        grouped.setdefault((row["model"], row["transport"], row["kind"]), Counter())[row["class"]] += \
            row["count"]
    used = [c for c in CLASSES if any(c in counts for counts in grouped.values())]
    return {"classes": used,
            "rows": [[*key, *(counts.get(c, 0) for c in used)] for key, counts in sorted(grouped.items())]}


def table_lines(table: dict[str, Any]) -> list[str]:
    """The kind x class table as text (a blank for 0)."""
    used = table["classes"]
    width = max([len(r[2]) for r in table["rows"]] + [8])
    out = [f"{'model':<18} {'transport':<9} {'bad kind':<{width}}  " + " | ".join(used)]
    for m, t, k, *ns in table["rows"]:
        cells = (f"{n or '':>{len(c)}}" for c, n in zip(used, ns, strict=True))
        out.append(f"{m:<18} {t:<9} {k:<{width}}  " + " | ".join(cells))
    return out
