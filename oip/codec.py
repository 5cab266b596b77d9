"""Convert numpy arrays to and from V2 (Open Inference Protocol) tensors: the one codec.

The JSON half is here; the gRPC half is :mod:`oip.codec_grpc`, re-exported, so
``oip.codec`` stays the single import point.

Pure functions, no I/O. Two wire forms:

* JSON (REST): ``{"name", "shape", "datatype", "data"}`` with ``data`` flat
  (row-major) or nested; BYTES elements travel as UTF-8 strings. JSON has no
  NaN/Infinity, so float tensors holding them are refused unless
  ``allow_nonfinite=True`` (which emits Python's non-standard literals).
* gRPC: typed ``InferTensorContents`` fields, or raw little-endian bytes in
  ``raw_input_contents``/``raw_output_contents`` (one entry per tensor, in
  order). FP16 has no typed field in the proto, so it must be sent raw:
  asking for typed FP16 raises ``CodecError`` instead of silently mixing raw
  and typed inputs in one request (which the protocol forbids).

A 0-d (scalar) array is sent with shape ``[1]``. Decoding is strict, since
it is used to check servers: JSON elements must have the datatype's JSON type
(``true`` is not an INT32, ``1`` is not a BOOL), values must fit the datatype,
and raw entries must pair one-to-one with the tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._tensors import NamedArrays, _check_count, _check_shape, _info_for, _named, _prepare, _store
from .codec_grpc import (
    build_infer_request,
    build_infer_response,
    from_grpc_tensor,
    inputs_from_grpc_request,
    outputs_from_grpc_response,
    to_grpc_input,
    to_grpc_output,
)
from .datatypes import DATATYPES, datatype_of
from .errors import CodecError

__all__ = [
    "DATATYPES",
    "build_infer_request",
    "build_infer_response",
    "build_json_infer_request",
    "datatype_of",
    "from_grpc_tensor",
    "from_json_tensor",
    "inputs_from_grpc_request",
    "inputs_from_json_request",
    "outputs_from_grpc_response",
    "outputs_from_json_response",
    "to_grpc_input",
    "to_grpc_output",
    "to_json_tensor",
]


# Python types a decoded JSON element may have, per numpy dtype kind.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "b": (bool,),
    "u": (int,),
    "i": (int,),
    "f": (int, float),
    "O": (str,),
}


# --------------------------------------------------------------------- JSON


def to_json_tensor(
    name: str,
    array: Any,
    datatype: str | None = None,
    nested: bool = False,
    *,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Encode an array as a V2 JSON tensor dict.

    ``data`` is flat row-major by default, nested lists with ``nested=True``.
    BYTES elements must be valid UTF-8 (JSON can only carry text).
    """
    values, info = _prepare(array, datatype)
    if info.is_float and not allow_nonfinite and not np.isfinite(values).all():
        raise CodecError(
            f"tensor {name!r} contains NaN or Infinity, which JSON cannot represent; "
            "send it over gRPC, or pass allow_nonfinite=True to emit the non-standard "
            "NaN/Infinity literals (accepted by Python's json module, not by all servers)"
        )
    shape = list(values.shape)
    if info.name == "BYTES":
        text = np.empty(values.size, dtype=object)
        text[:] = [_utf8(name, i, b) for i, b in enumerate(values.ravel())]
        data = text.reshape(shape).tolist() if nested else text.tolist()
    else:
        data = values.tolist() if nested else values.ravel().tolist()
    return {"name": name, "shape": shape, "datatype": info.name, "data": data}


def from_json_tensor(tensor: Mapping[str, Any]) -> np.ndarray:
    """Decode a V2 JSON tensor dict (flat or nested ``data``) to an array of ``shape``.

    Nested ``data`` must nest exactly as ``shape`` (``[[1, 2], [3, 4]]`` for ``[2, 2]``, not
    ``[[1, 2, 3, 4]]``); flat data needs only the right count.
    """
    if not isinstance(tensor, Mapping):
        raise CodecError(f"a JSON tensor must be an object, got {type(tensor).__name__}")
    name = tensor.get("name", "<unnamed>")
    for key in ("shape", "datatype", "data"):
        if key not in tensor:
            raise CodecError(
                f"tensor {name!r} has no {key!r} field; V2 tensors need name, shape, datatype and data"
            )
    info = _info_for(name, tensor["datatype"])
    shape = _check_shape(name, tensor["shape"])
    data = tensor["data"]
    if not isinstance(data, (list, tuple)):
        raise CodecError(f"tensor {name!r}: 'data' must be a list, got {type(data).__name__}")
    flat = _flatten(data)
    _check_count(name, len(flat), shape, "data elements")
    _check_nesting(name, data, shape)
    allowed = _JSON_TYPES[info.dtype.kind]
    if not set(map(type, flat)) <= set(allowed):
        index, bad = next((i, x) for i, x in enumerate(flat) if type(x) not in allowed)
        wanted = " or ".join("string" if t is str else t.__name__ for t in allowed)
        raise CodecError(
            f"tensor {name!r}: data element {index} is {bad!r} ({type(bad).__name__}); "
            f"{info.name} data must be {wanted}"
        )
    if info.name == "BYTES":
        values = np.empty(len(flat), dtype=object)
        values[:] = [s.encode("utf-8") for s in flat]
    else:
        try:
            values = np.array(flat, dtype=info.dtype)
        except OverflowError as exc:
            raise CodecError(f"tensor {name!r}: value out of range for {info.name}: {exc}") from None
    return values.reshape(shape)


def build_json_infer_request(
    inputs: NamedArrays,
    *,
    id: str | None = None,
    outputs: Iterable[str] | None = None,
    nested: bool = False,
    datatypes: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Build a V2 JSON inference request body (a dict ready for ``json.dumps``).

    ``datatypes`` overrides the inferred datatype per input name; ``outputs``
    lists the output names to request.
    """
    pairs = _named(inputs, datatypes)
    body: dict[str, Any] = {}
    if id is not None:
        body["id"] = id
    if parameters is not None:
        body["parameters"] = dict(parameters)
    body["inputs"] = [
        to_json_tensor(name, value, dtype, nested, allow_nonfinite=allow_nonfinite)
        for name, value, dtype in pairs
    ]
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def outputs_from_json_response(body: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Decode every tensor of a V2 JSON inference response, keyed by name."""
    return _decode_json_tensors(body, "outputs", "response")


def inputs_from_json_request(body: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Decode every input of a V2 JSON inference request, keyed by name."""
    return _decode_json_tensors(body, "inputs", "request")


# ------------------------------------------------------------------ helpers


def _flatten(data: Sequence[Any]) -> list[Any]:
    if not any(isinstance(x, (list, tuple)) for x in data):
        return list(data)
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, (list, tuple)):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _check_nesting(name: str, data: Sequence[Any], shape: list[int]) -> None:
    """Nested ``data`` must nest as ``shape`` does: at depth d, lists of shape[d] items; scalars last.

    Flat data (no list inside) is the other valid form; anything in between is malformed.
    """
    if not any(isinstance(x, (list, tuple)) for x in data):
        return

    def walk(node: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if isinstance(node, (list, tuple)):
                raise CodecError(f"tensor {name!r}: data{where} is a list, but shape {shape} has only "
                                 f"{len(shape)} dimension(s); nested data must nest exactly as the shape")
            return
        if not isinstance(node, (list, tuple)):
            raise CodecError(f"tensor {name!r}: data{where} is {node!r:.40}, but shape {shape} wants a list "
                             f"of {shape[depth]} there; nested data must nest exactly as the shape")
        if len(node) != shape[depth]:
            raise CodecError(f"tensor {name!r}: data{where} has {len(node)} items, but dimension {depth} of "
                             f"shape {shape} is {shape[depth]}; nested data must nest exactly as the shape")
        for index, item in enumerate(node):
            walk(item, depth + 1, f"{where}[{index}]")

    walk(data, 0, "")


def _utf8(name: str, index: int, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError(
            f"tensor {name!r}: BYTES element {index} is not valid UTF-8, and JSON can "
            "only carry text; send binary data over gRPC (raw or typed bytes_contents)"
        ) from None


def _decode_json_tensors(body: Mapping[str, Any], key: str, what: str) -> dict[str, np.ndarray]:
    if not isinstance(body, Mapping):
        raise CodecError(f"a V2 {what} body must be a JSON object, got {type(body).__name__}")
    tensors = body.get(key)
    if not isinstance(tensors, list):
        said = f"; the server said: {body['error']!r}" if "error" in body else ""
        raise CodecError(f"the {what} has no {key!r} list (keys: {sorted(body)}){said}")
    result: dict[str, np.ndarray] = {}
    for tensor in tensors:
        array = from_json_tensor(tensor)
        _store(result, tensor.get("name"), array, what)
    return result


