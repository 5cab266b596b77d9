"""Assertions shared by the rules; each failure says what the server did and how to repeat it.

A failed check raises :class:`RuleViolation` carrying ``observed``: a short
signature of what the server did (``422 detail``, ``500 text``, ``INTERNAL``...).
Known deviations name the signatures they expect, so a deviation that changes
shape is reported instead of silently staying "expected".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import grpc
import numpy as np
from hypothesis import currently_in_test_context, note

from conformance.calls import Reply, Transport
from oip import outputs_from_grpc_response, outputs_from_json_response
from oip.datatypes import DATATYPES
from oip.errors import CodecError

CLIENT_ERROR_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT.name, grpc.StatusCode.NOT_FOUND.name})
TOO_LARGE_CODES = CLIENT_ERROR_CODES | {grpc.StatusCode.RESOURCE_EXHAUSTED.name}


class RuleViolation(AssertionError):
    """The server broke the rule under test; ``observed`` is what it did, in short."""

    def __init__(self, message: str, observed: str, repro: str = "") -> None:
        super().__init__(f"{message}\n[observed: {observed}]")
        self.observed = observed
        self.why = message.split("\n", 1)[0]
        self.repro = repro  # the request that shows it, as a command or a protobuf dump


def violation(reply: Reply, why: str, observed: str | None = None) -> RuleViolation:
    return RuleViolation(f"{why}\n{reply.describe()}", observed or reply.signature, reply.repro)


def expect_ok(reply: Reply, what: str = "the request") -> None:
    """Success: gRPC OK; REST exactly 200, the spec's one success status (audit finding F2)."""
    if not reply.ok:
        raise violation(reply, f"{what} should succeed")
    if reply.transport == "rest" and reply.status != "200":
        raise violation(reply, f"{what} succeeded with {reply.status}: the spec's success status is 200")


def expect_client_error(reply: Reply, grpc_codes: Collection[str] = CLIENT_ERROR_CODES) -> None:
    """Non-2xx, 4xx (a client's mistake), body ``{"error": "<string>"}``; gRPC: one of ``grpc_codes``."""
    if reply.ok:
        raise violation(reply, "a bad request was accepted")
    if reply.transport == "grpc":
        if reply.status not in grpc_codes:
            raise violation(reply, f"a client mistake should be {' or '.join(sorted(grpc_codes))}")
        return
    if reply.status == "no-response":
        raise violation(reply, "the server closed the connection without an answer")
    if not 400 <= int(reply.status) < 500:
        raise violation(reply, "a client mistake should be a 4xx status")
    if not (isinstance(reply.body, dict) and isinstance(reply.body.get("error"), str)):
        raise violation(reply, 'an error answer should be {"error": "<string>"}')


def expect_live(transport: Transport, after: Reply | None = None) -> None:
    """The server still says it is live (TargetLost escapes if it no longer answers at all)."""
    reply = transport.live()
    alive = reply.ok and (transport.name == "rest" or reply.message.live)
    if not alive:
        cause = f"\nafter:\n{after.repro}" if after is not None else ""
        raise RuleViolation(f"the server is not live any more: {reply.signature}{cause}", "not live")


def expect_true(condition: bool, reply: Reply, why: str, observed: str) -> None:
    if not condition:
        raise violation(reply, why, observed)


# ------------------------------------------------------------ infer answers


def answer_fields(reply: Reply) -> dict[str, Any]:
    """``model_name``, ``model_version`` and ``id`` of a successful answer ("" when absent)."""
    if reply.transport == "grpc":
        m = reply.message
        return {"model_name": m.model_name, "model_version": m.model_version, "id": m.id}
    body = reply.body if isinstance(reply.body, dict) else {}
    return {key: body.get(key, "") for key in ("model_name", "model_version", "id")}


def output_arrays(reply: Reply) -> dict[str, np.ndarray]:
    """Every output decoded strictly by the oip codec (names, shapes, datatypes, counts checked)."""
    expect_ok(reply)
    try:
        if reply.transport == "grpc":
            return outputs_from_grpc_response(reply.message)
        return outputs_from_json_response(reply.body)
    except CodecError as exc:
        raise violation(reply, f"an output is malformed: {exc}", "malformed output") from None


def output_names(reply: Reply) -> list[str]:
    expect_ok(reply)
    if reply.transport == "grpc":
        return [t.name for t in reply.message.outputs]
    outputs = reply.body.get("outputs") if isinstance(reply.body, dict) else None
    if not isinstance(outputs, list):
        raise violation(reply, "the answer has no `outputs` list", "no outputs")
    return [o.get("name") for o in outputs if isinstance(o, dict)]


def expect_well_formed_outputs(reply: Reply) -> None:
    """Each output has name, shape, datatype and data, with count == product(shape)."""
    expect_ok(reply)
    if reply.transport == "rest":
        for output in reply.body.get("outputs") or []:
            missing = [k for k in ("name", "shape", "datatype", "data") if k not in output]
            if missing:
                raise violation(reply, f"output lacks {missing}", f"output without {','.join(missing)}")
    else:
        for output in reply.message.outputs:
            if not output.name or output.datatype not in DATATYPES:
                raise violation(reply, "output lacks a name or a V2 datatype", "output without name/datatype")
    if not output_names(reply):
        raise violation(reply, "the answer has no outputs", "no outputs")
    output_arrays(reply)


def prediction_rows(reply: Reply, name: str) -> np.ndarray:
    arrays = output_arrays(reply)
    if name not in arrays:
        raise violation(reply, f"no output named {name!r} (got {sorted(arrays)})", "missing output")
    return arrays[name]


def shape_fits(shape: Any, declared: Sequence[int]) -> bool:
    """``shape`` (a list or tuple of ints) has the declared rank and equals it wherever it is not -1."""
    return (isinstance(shape, (list, tuple)) and len(shape) == len(declared)
            and all(d in (-1, s) for s, d in zip(shape, declared, strict=True)))


def product(shape: Iterable[int]) -> int:
    return math.prod(shape)


def sent(transport: Transport, probe: Any) -> Reply:
    """Send ``probe`` and, inside a hypothesis example, ``note()`` the exact request."""
    reply = transport.send(probe)
    if currently_in_test_context():
        note(f"request:\n{reply.repro}")
    return reply
