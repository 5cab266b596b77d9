"""Send a V2 request, valid or deliberately wrong, over REST or gRPC; read the reply.

A request is transport-neutral (:class:`InferCall`) or transport-specific bytes
(:class:`RestBody`, :class:`GrpcBytes`). Every reply carries ``repro``: the exact
request as a ``curl`` command or a protobuf text dump, so a failure can be
reproduced by hand. Only the oip codec encodes and decodes tensors.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import grpc
import httpx
import numpy as np

from conformance.envelope import strict_json_problems, witness
from oip import GrpcClient, RestClient, TargetUnreachable, build_infer_request, describe_request
from oip.codec import build_json_infer_request
from oip.datatypes import DATATYPES, datatype_of
from oip.errors import CodecError
from oip.names import GRPC_SERVICE
from oip.rest import model_path

TRANSPORTS = ("rest", "grpc")

REPRO_LIMIT = 20_000  # characters of a reproduction shown before eliding the middle
REPR_BODY_LIMIT = 300  # bytes of a raw body shown in hypothesis' example listing
PADDING_KEY = "padding"
CALL_TIMEOUT_S = 60.0


class TargetLost(BaseException):
    """The target stopped answering mid-run.

    A BaseException so that it escapes hypothesis (which would otherwise try to
    shrink a dead server) and stops the session with one message.
    """


@dataclass(frozen=True)
class InferCall:
    """An inference request; the override fields make it deliberately wrong."""

    model: str
    version: str | None
    inputs: tuple[tuple[str, np.ndarray], ...]
    datatype: str | None = None  # encode every input as this datatype (values are converted)
    id: str | None = None
    outputs: tuple[str, ...] | None = None
    nested: bool = False  # REST: nested `data` lists
    raw: bool = False  # gRPC: raw_input_contents instead of typed contents
    shape: tuple[int, ...] | None = None  # declared shape of the first input, whatever its data
    datatype_label: str | None = None  # datatype string of the first input, whatever its data
    padding: int = 0  # bytes of filler in parameters["padding"]

    def replace(self, **changes: Any) -> InferCall:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RestBody:
    """Bytes POSTed as they are (REST only); ``regenerate`` prints bodies too big to show."""

    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    regenerate: str | None = None

    def __repr__(self) -> str:
        shown = self.body if len(self.body) <= REPR_BODY_LIMIT else self.body[:REPR_BODY_LIMIT] + b"..."
        return (f"RestBody(path={self.path!r}, body={shown!r} ({len(self.body)} bytes), "
                f"headers={dict(self.headers)!r})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis' pretty-printer would otherwise print every byte


@dataclass(frozen=True)
class GrpcBytes:
    """Bytes sent as a gRPC message as they are (gRPC only)."""

    method: str
    payload: bytes


Probe = InferCall | RestBody | GrpcBytes


@dataclass
class Reply:
    transport: str
    ok: bool
    status: str  # "200", "404" ... for REST; "OK", "NOT_FOUND" ... for gRPC; "no-response"
    body: Any = None  # REST: the body parsed as JSON (None when it is not JSON)
    text: str = ""  # REST: the body; gRPC: the status details
    message: Any = None  # gRPC: the response message
    repro: str = ""
    problems: tuple[str, ...] = ()  # gRPC: where the answer is not the OIP proto's message
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # REST: the answer's (any case)
    raw: bytes = field(default=b"", repr=False)  # REST: the body's bytes (after any Content-Encoding)
    accept_encoding: str | None = None  # REST: the request's Accept-Encoding (None: not sent)

    @cached_property
    def json_problems(self) -> tuple[tuple[str, str], ...]:
        """REST: (kind, sentence) where the body is not strict JSON (:mod:`conformance.envelope`)."""
        return strict_json_problems(self.raw) if self.transport == "rest" else ()

    @property
    def signature(self) -> str:
        """Short form of what the server did, e.g. ``422 detail`` or ``INTERNAL``."""
        if self.transport == "grpc" or self.status == "no-response":
            return self.status
        return f"{self.status} {body_kind(self.body, self.text)}"

    def describe(self) -> str:
        shown = self.text if len(self.text) <= 300 else self.text[:300] + "..."
        return f"{self.transport} answered {self.status} {shown!r}\nrequest:\n{self.repro}"


def body_kind(body: Any, text: str) -> str:
    if not text:
        return "empty"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return "error"
    if isinstance(body, dict) and "detail" in body:
        return "detail"
    return "json" if body is not None else "text"


def _elide(text: str) -> str:
    if len(text) <= REPRO_LIMIT:
        return text
    half = REPRO_LIMIT // 2
    return f"{text[:half]}\n... ({len(text) - REPRO_LIMIT} characters elided) ...\n{text[-half:]}"


def _converted(array: np.ndarray, datatype: str | None) -> np.ndarray:
    """Values already in the datatype's numpy type (domain values convert exactly)."""
    info = DATATYPES.get(datatype or "")
    if info is None or info.name == "BYTES" or array.dtype == info.dtype:
        return array
    return np.asarray(array).astype(info.dtype)


def _datatype_of(array: np.ndarray, datatype: str | None) -> str:
    if datatype in DATATYPES:
        return datatype
    try:
        return datatype_of(array)
    except CodecError:
        return "FP32"  # not encodable anyway: the codec says why when the request is built


def _datatypes(call: InferCall) -> dict[str, str] | None:
    return {name: call.datatype for name, _ in call.inputs} if call.datatype else None


def _inputs(call: InferCall) -> list[tuple[str, np.ndarray]]:
    return [(name, _converted(array, call.datatype)) for name, array in call.inputs]


# ---------------------------------------------------------------------- REST


def json_body(call: InferCall) -> dict[str, Any]:
    """The JSON body of ``call`` (NaN/Infinity come out as Python's literals)."""
    body = build_json_infer_request(
        _inputs(call), id=call.id, outputs=call.outputs, nested=call.nested,
        datatypes=_datatypes(call), allow_nonfinite=True,
        parameters={PADDING_KEY: ""} if call.padding else None,
    )
    first = body["inputs"][0] if body["inputs"] else None
    if first is not None and call.shape is not None:
        first["shape"] = list(call.shape)
    if first is not None and call.datatype_label is not None:
        first["datatype"] = call.datatype_label
    return body


class RestTransport:
    """REST side of the target. Each request opens a fresh connection (``Connection: close``),
    like ``curl``: no request depends on what the server did with the previous one."""

    name = "rest"

    def __init__(self, url: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.url = url
        self.client = RestClient(url, timeout=timeout, headers={"Connection": "close"})

    def send(self, probe: Probe) -> Reply:
        if isinstance(probe, InferCall):
            body = json_body(probe)
            path = model_path(probe.model, probe.version, "/infer")
            if probe.padding:
                return self._padded(path, body, probe.padding)
            return self._post(path, json.dumps(body).encode(), {"Content-Type": "application/json"},
                              self.client.curl("POST", path, body))
        if isinstance(probe, RestBody):
            if probe.regenerate:
                repro = f"{probe.regenerate} | {self.client.curl('POST', probe.path, None, probe.headers)}"
                repro += " --data-binary @-"
            else:
                repro = self.client.curl("POST", probe.path, probe.body, probe.headers)
            return self._post(probe.path, probe.body, probe.headers, repro)
        raise TypeError(f"REST cannot send {type(probe).__name__}")

    def _padded(self, path: str, body: dict[str, Any], padding: int) -> Reply:
        small = json.dumps(body)
        body["parameters"][PADDING_KEY] = "x" * padding
        script = (f"import json,sys; b=json.loads(sys.argv[1]); "
                  f"b['parameters']['{PADDING_KEY}']='x'*{padding}; sys.stdout.write(json.dumps(b))")
        curl = self.client.curl("POST", path, None, {"Content-Type": "application/json"})
        repro = f"python3 -c {shlex.quote(script)} {shlex.quote(small)} | {curl} --data-binary @-"
        return self._post(path, json.dumps(body).encode(), {"Content-Type": "application/json"}, repro)

    def post_json(self, path: str, body: bytes) -> Reply:
        """POST ``body`` as it is, labelled JSON (requests outside the infer call's shape)."""
        headers = {"Content-Type": "application/json"}
        return self._post(path, body, headers, self.client.curl("POST", path, body, headers))

    def _post(self, path: str, content: bytes, headers: Mapping[str, str], repro: str) -> Reply:
        return self._reply(lambda: self.client.post_raw(path, content, headers), _elide(repro), headers)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        repro = self.client.curl("GET", path, None, headers)
        return self._reply(lambda: self.client.get(path, headers), repro, headers or {})

    def _reply(self, do: Any, repro: str, headers: Mapping[str, str] | None = None) -> Reply:
        sent = {k.lower(): v for k, v in {**self.client.headers, **(headers or {})}.items()}
        try:
            response = do()
        except TargetUnreachable as exc:
            raise TargetLost(f"{self.url} stopped accepting connections: {exc.reason}") from None
        except httpx.HTTPError as exc:
            return Reply(self.name, False, "no-response", text=f"{type(exc).__name__}: {exc}", repro=repro)
        reply = Reply(self.name, response.ok, str(response.status), response.json, response.text,
                      repro=repro, headers=response.headers, raw=response.body,
                      accept_encoding=sent.get("accept-encoding"))
        witness(reply)  # the envelope rules report what is wrong with it, whichever rule asked
        return reply

    def live(self) -> Reply:
        return self.get("/v2/health/live")

    def ready(self) -> Reply:
        return self.get("/v2/health/ready")

    def server_metadata(self) -> Reply:
        return self.get("/v2")

    def model_metadata(self, model: str, version: str | None) -> Reply:
        return self.get(model_path(model, version))

    def model_ready(self, model: str, version: str | None) -> Reply:
        return self.get(model_path(model, version, "/ready"))

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------- gRPC


def grpc_request(call: InferCall) -> Any:
    """The ``ModelInferRequest`` of ``call`` (FP16 always goes raw: it has no typed field)."""
    raw = call.raw or not all(DATATYPES[_datatype_of(array, call.datatype)].grpc_field
                              for _, array in call.inputs)
    request = build_infer_request(
        call.model, _inputs(call), model_version=call.version or "", id=call.id or "",
        outputs=call.outputs, raw=raw, datatypes=_datatypes(call),
    )
    if request.inputs and call.shape is not None:
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend(call.shape)
    if request.inputs and call.datatype_label is not None:
        request.inputs[0].datatype = call.datatype_label
    return request


class GrpcTransport:
    """gRPC side of the target (``inference.GRPCInferenceService``)."""

    name = "grpc"

    def __init__(self, target: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.target = target
        self.client = GrpcClient(target, timeout=timeout)
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)])

    def send(self, probe: Probe) -> Reply:
        if isinstance(probe, InferCall):
            request = grpc_request(probe)
            repro = self._repro("ModelInfer", describe_request(request))
            if probe.padding:
                request.parameters[PADDING_KEY].string_param = "x" * probe.padding
                repro += f'\n# plus parameters["{PADDING_KEY}"].string_param = "x" * {probe.padding}'
            return self._call(lambda: self.client.infer(request), repro)
        if isinstance(probe, GrpcBytes):
            method = self._channel.unary_unary(f"/{GRPC_SERVICE}/{probe.method}")
            script = (f"import grpc; print(grpc.insecure_channel({self.target!r}).unary_unary("
                      f"'/{GRPC_SERVICE}/{probe.method}')(bytes.fromhex({probe.payload.hex()!r})))")
            return self._call(lambda: method(probe.payload, timeout=self.client.timeout),
                              f"python3 -c {shlex.quote(script)}")
        raise TypeError(f"gRPC cannot send {type(probe).__name__}")

    def infer_message(self, message: Any) -> Reply:
        """Send a ``ModelInferRequest`` built (or edited) by the caller."""
        repro = self._repro("ModelInfer", describe_request(message))
        return self._call(lambda: self.client.infer(message), repro)

    def call(self, do: Any, repro: str) -> Reply:
        """Any other call on this target (``do()`` returns the answer), as a :class:`Reply`."""
        return self._call(do, repro)

    def _repro(self, method: str, text: str) -> str:
        return _elide(f"# gRPC {GRPC_SERVICE}/{method} to {self.target}\n{text}")

    def _call(self, do: Any, repro: str) -> Reply:
        try:
            message = do()
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE and not self._reachable():
                raise TargetLost(f"{self.target} stopped answering gRPC: {exc.details()}") from None
            return Reply(self.name, False, code.name, text=exc.details() or "", repro=repro)
        return Reply(self.name, True, "OK", message=message, repro=repro)

    def _reachable(self) -> bool:
        try:
            self.client.live()
        except grpc.RpcError:
            return False
        return True

    def live(self) -> Reply:
        return self._call(self.client.live, self._repro("ServerLive", ""))

    def ready(self) -> Reply:
        return self._call(self.client.ready, self._repro("ServerReady", ""))

    def server_metadata(self) -> Reply:
        return self._call(self.client.server_metadata, self._repro("ServerMetadata", ""))

    def model_metadata(self, model: str, version: str | None) -> Reply:
        reply = self._call(lambda: self.client.model_metadata_checked(model, version or ""),
                           self._repro("ModelMetadata", f"name: {model!r} version: {version or ''!r}"))
        if reply.ok:
            message, problems = reply.message
            reply = dataclasses.replace(reply, message=message, problems=tuple(problems))
        return reply

    def model_ready(self, model: str, version: str | None) -> Reply:
        return self._call(lambda: self.client.model_ready(model, version or ""),
                          self._repro("ModelReady", f"name: {model!r} version: {version or ''!r}"))

    def close(self) -> None:
        self.client.close()
        self._channel.close()


Transport = RestTransport | GrpcTransport
