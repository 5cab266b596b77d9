"""What the rules of Triton's protocol extensions share (conformance/test_extensions*.py).

An extension rule checks fully when ``GET /v2`` advertises the extension. When it does not,
the rule first tries the extension: not served at all (the server refuses the call as
unknown, or ignores the extension's parameter) skips with what the server answered; served
and right passes with the note "served but not advertised"; served and wrong fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import grpc
import httpx
import numpy as np
import pytest

from conformance.calls import GrpcTransport, Reply, RestTransport, TargetLost
from conformance.checks import expect_ok, violation
from conformance.rules import RULES, rule_of_test
from conformance.target import Target
from oip import TargetUnreachable
from oip.errors import CodecError
from oip.extensions import parse_class_entry
from oip.extensions_grpc import ExtensionsGrpcClient
from oip.rest import RestResponse

SERVED_NOT_ADVERTISED = "served but not advertised"
# REST answers that say "no such API here": any client error (the server does not read the
# call as the extension's) or 501; gRPC: the method is not there.
UNSERVED_GRPC = frozenset({grpc.StatusCode.UNIMPLEMENTED.name})
POLL_S = 0.2


def extension_of(request: pytest.FixtureRequest) -> str:
    return RULES[rule_of_test(request.node.originalname)].extension


def advertised(target: Target, request: pytest.FixtureRequest) -> bool:
    return extension_of(request) in target.identity.extensions


def unserved(reply: Reply, grpc_codes: frozenset[str] = UNSERVED_GRPC) -> bool:
    """The server refused the call as one it does not serve."""
    if reply.transport == "grpc":
        return reply.status in grpc_codes
    return reply.status.isdigit() and (400 <= int(reply.status) < 500 or reply.status == "501")


def skip_unserved(why: str) -> None:
    pytest.skip(f"not advertised and not served: {why}")


def answered(reply: Reply) -> str:
    shown = reply.text if len(reply.text) <= 160 else reply.text[:160] + "..."
    return f"{reply.transport} {reply.status} {shown!r}" if shown else f"{reply.transport} {reply.status}"


def expect_served(reply: Reply, is_advertised: bool, what: str) -> None:
    """``reply`` succeeded; for an extension the server does not advertise, a 5xx says it fails on the
    extension's request instead of refusing it as a client error (it would skip as not served)."""
    if reply.ok:
        return
    if not is_advertised and reply.status.isdigit() and int(reply.status) >= 500:
        raise violation(reply, f"{what}: the extension is not advertised, and the server fails on its "
                               "request instead of refusing it as a client error (4xx) or serving it")
    expect_ok(reply, what)


def note_served(request: pytest.FixtureRequest, detail: str = "") -> None:
    request.node.user_properties.append(("note", f"{SERVED_NOT_ADVERTISED}{': ' + detail if detail else ''}"))


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    """True as soon as ``condition()`` holds, False when it still does not after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


# ---------------------------------------------------------------- REST with the raw answer


def rest_raw(transport: RestTransport, path: str, content: bytes,
             headers: Mapping[str, str]) -> tuple[Reply, RestResponse | None]:
    """POST ``content`` as is; the reply and the raw response (headers, bytes), None when none came."""
    repro = transport.client.curl("POST", path, content, headers)
    try:
        response = transport.client.post_raw(path, content, headers)
    except TargetUnreachable as exc:
        raise TargetLost(f"{transport.url} stopped accepting connections: {exc.reason}") from None
    except httpx.HTTPError as exc:
        return Reply("rest", False, "no-response", text=f"{type(exc).__name__}: {exc}", repro=repro), None
    reply = Reply("rest", response.ok, str(response.status), response.json, response.text, repro=repro)
    return reply, response


def rest_json(transport: RestTransport, path: str, body: bytes) -> Reply:
    return transport.post_json(path, body)


# ---------------------------------------------------------------- gRPC calls outside the OIP proto


def grpc_ext(transport: GrpcTransport, client: ExtensionsGrpcClient, service: str, method: str,
             message: object) -> Reply:
    """One extension call as a :class:`Reply` (the response message in ``message``)."""
    repro = client.repro(service, method, message)
    return transport.call(lambda: client.call(service, method, message), repro)


# ---------------------------------------------------------------- pure checks of the answers

STAT_KEYS = ("last_inference", "inference_count", "execution_count")
DURATION_KEYS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _duration(value: object) -> bool:
    return isinstance(value, dict) and _count(value.get("count")) and _count(value.get("ns"))


def rest_stat_problems(entry: object) -> list[str]:
    """Where a REST $model_stat is not the documented shape (an empty list when it is)."""
    if not isinstance(entry, dict):
        return [f"{entry!r} is not an object"]
    problems = [] if isinstance(entry.get("name"), str) else ["`name` is not a string"]
    if "version" in entry and not isinstance(entry["version"], str):
        problems.append("`version` is not a string")
    problems += [f"`{k}` is not a count" for k in STAT_KEYS if not _count(entry.get(k))]
    stats = entry.get("inference_stats")
    if not isinstance(stats, dict):
        problems.append("`inference_stats` is not an object")
    else:
        problems += [f"`inference_stats.{k}` is not {{count, ns}}" for k in DURATION_KEYS
                     if not _duration(stats.get(k))]
    if not isinstance(entry.get("batch_stats"), list):
        problems.append("`batch_stats` is not a list")
    return problems


# A class value comes back as text: Triton prints floats with 6 decimals.
CLASS_VALUE_ATOL = 1e-5


def classification_problems(plain: np.ndarray, entries: np.ndarray, k: int) -> list[str]:
    """Where ``entries`` (rows of k BYTES) are not the top-k of ``plain`` (rows of values)."""
    problems = []
    for row, (values, got) in enumerate(zip(plain, entries, strict=True)):
        try:
            parsed = [parse_class_entry(e) for e in got]
        except CodecError as exc:
            return [f"row {row}: {exc}"]
        indices = [p.index for p in parsed]
        if len(set(indices)) != k or not all(i < len(values) for i in indices):
            problems.append(f"row {row}: indices {indices} are not {k} distinct indices below {len(values)}")
            continue
        at = values[indices].astype(np.float64)
        stated = np.array([p.value for p in parsed])
        top = np.sort(values.astype(np.float64))[::-1][:k]
        if not np.allclose(stated, at, rtol=1e-6, atol=CLASS_VALUE_ATOL):
            problems.append(f"row {row}: values {stated.tolist()} are not the output's {at.tolist()} "
                            f"at {indices}")
        elif not np.array_equal(at, top):
            problems.append(f"row {row}: {at.tolist()} at {indices} are not the {k} highest, {top.tolist()}")
    return problems
