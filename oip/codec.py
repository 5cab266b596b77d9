"""Convert numpy arrays to and from V2 (Open Inference Protocol) tensors.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from . import _raw
from ._pb import pb
from .datatypes import DATATYPES, DatatypeInfo, as_tensor_array, datatype_info, datatype_of
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

InferInputTensor = pb.ModelInferRequest.InferInputTensor
InferOutputTensor = pb.ModelInferResponse.InferOutputTensor

#: Named tensors: a mapping name -> array, or (name, array) pairs (which keep
#: order and may repeat a name, e.g. to build a deliberately bad request).
NamedArrays: TypeAlias = Mapping[str, Any] | Sequence[tuple[str, Any]]
Parameters: TypeAlias = Mapping[str, bool | int | str]

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
    """Decode a V2 JSON tensor dict (flat or nested ``data``) to an array of ``shape``."""
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


# --------------------------------------------------------------------- gRPC


def to_grpc_input(
    name: str, array: Any, datatype: str | None = None, raw: bool = False
) -> tuple[pb.ModelInferRequest.InferInputTensor, bytes | None]:
    """Encode an array as an ``InferInputTensor``.

    Returns ``(tensor, None)`` with typed ``contents``, or with ``raw=True``
    ``(tensor, raw_bytes)`` where ``raw_bytes`` belongs in
    ``raw_input_contents`` at the same position as the tensor in ``inputs``.
    """
    tensor = InferInputTensor()
    return tensor, _fill_grpc_tensor(tensor, name, array, datatype, raw)


def to_grpc_output(
    name: str, array: Any, datatype: str | None = None, raw: bool = False
) -> tuple[pb.ModelInferResponse.InferOutputTensor, bytes | None]:
    """Like ``to_grpc_input`` for an ``InferOutputTensor`` (e.g. for fake servers)."""
    tensor = InferOutputTensor()
    return tensor, _fill_grpc_tensor(tensor, name, array, datatype, raw)


def build_infer_request(
    model_name: str,
    inputs: NamedArrays,
    *,
    model_version: str = "",
    id: str = "",
    outputs: Iterable[str] | None = None,
    raw: bool = False,
    datatypes: Mapping[str, str] | None = None,
    parameters: Parameters | None = None,
) -> pb.ModelInferRequest:
    """Build a gRPC ``ModelInferRequest``; with ``raw=True`` every input goes raw."""
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version, id=id)
    for name, value, dtype in _named(inputs, datatypes):
        blob = _fill_grpc_tensor(request.inputs.add(), name, value, dtype, raw)
        if blob is not None:
            request.raw_input_contents.append(blob)
    for name in outputs or ():
        request.outputs.add(name=name)
    _set_parameters(request.parameters, parameters)
    return request


def build_infer_response(
    model_name: str,
    outputs: NamedArrays,
    *,
    model_version: str = "",
    id: str = "",
    raw: bool = False,
    datatypes: Mapping[str, str] | None = None,
) -> pb.ModelInferResponse:
    """Build a gRPC ``ModelInferResponse`` (for fake servers and tests)."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=id)
    for name, value, dtype in _named(outputs, datatypes):
        blob = _fill_grpc_tensor(response.outputs.add(), name, value, dtype, raw)
        if blob is not None:
            response.raw_output_contents.append(blob)
    return response


def from_grpc_tensor(tensor: Any, raw: bytes | None = None) -> np.ndarray:
    """Decode one ``InferInputTensor``/``InferOutputTensor``.

    Pass the tensor's raw contents entry as ``raw`` if the message used
    ``raw_*_contents``; otherwise the typed ``contents`` are read.
    """
    name = tensor.name
    info = _info_for(name, tensor.datatype)
    shape = _check_shape(name, list(tensor.shape))
    count = math.prod(shape)
    populated = [field.name for field, _ in tensor.contents.ListFields()]
    if raw is not None:
        if populated:
            raise CodecError(
                f"tensor {name!r} has raw contents and also typed contents.{populated[0]}; "
                "a tensor's data must be in exactly one of the two"
            )
        return _raw.from_raw(raw, info, count, name).reshape(shape)
    if info.grpc_field is None:
        raise CodecError(
            f"tensor {name!r} is {info.name}, which has no typed contents field in the "
            "V2 proto; its data must come in raw_input_contents/raw_output_contents"
        )
    stray = [field for field in populated if field != info.grpc_field]
    if stray:
        raise CodecError(
            f"tensor {name!r}: {info.name} data belongs in contents.{info.grpc_field}, "
            f"but contents.{stray[0]} is set"
        )
    values = getattr(tensor.contents, info.grpc_field)
    _check_count(name, len(values), shape, f"values in contents.{info.grpc_field}")
    if info.name == "BYTES":
        flat = np.empty(count, dtype=object)
        flat[:] = list(values)
    else:
        try:
            flat = np.array(values, dtype=info.dtype)
        except OverflowError as exc:
            raise CodecError(f"tensor {name!r}: value out of range for {info.name}: {exc}") from None
    return flat.reshape(shape)


def outputs_from_grpc_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Decode every output of a ``ModelInferResponse`` (typed or raw), keyed by name."""
    return _decode_grpc_tensors(response.outputs, response.raw_output_contents, "output")


def inputs_from_grpc_request(request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """Decode every input of a ``ModelInferRequest`` (typed or raw), keyed by name."""
    return _decode_grpc_tensors(request.inputs, request.raw_input_contents, "input")


# ------------------------------------------------------------------ helpers


def _prepare(array: Any, datatype: str | None) -> tuple[np.ndarray, DatatypeInfo]:
    values, info = as_tensor_array(array, datatype)
    if values.ndim == 0:
        values = values.reshape(1)
    return values, info


def _fill_grpc_tensor(tensor: Any, name: str, array: Any, datatype: str | None, raw: bool) -> bytes | None:
    values, info = _prepare(array, datatype)
    if not raw and info.grpc_field is None:
        raise CodecError(
            f"tensor {name!r} is {info.name}, which has no typed contents field in the V2 "
            "proto; pass raw=True to send it as raw contents (raw_input_contents)"
        )
    tensor.name = name
    tensor.datatype = info.name
    tensor.shape.extend(values.shape)
    if raw:
        return _raw.to_raw(values, info)
    getattr(tensor.contents, info.grpc_field).extend(values.ravel().tolist())
    return None


def _named(tensors: NamedArrays, datatypes: Mapping[str, str] | None) -> list[tuple[str, Any, str | None]]:
    pairs = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise CodecError(
                "tensors must be a mapping of name -> array or a list of "
                f"(name, array) pairs; got an item {pair!r:.60}"
            )
    datatypes = datatypes or {}
    unknown = set(datatypes) - {name for name, _ in pairs}
    if unknown:
        raise CodecError(
            f"datatypes names {sorted(unknown)} which are not among the tensors "
            f"{[name for name, _ in pairs]}; check the spelling"
        )
    return [(name, value, datatypes.get(name)) for name, value in pairs]


def _set_parameters(target: Any, parameters: Parameters | None) -> None:
    for key, value in (parameters or {}).items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            raise CodecError(
                f"parameter {key!r} is a {type(value).__name__}; gRPC parameters must be bool, int or str"
            )


def _info_for(name: str, datatype: Any) -> DatatypeInfo:
    try:
        return datatype_info(datatype)
    except CodecError as exc:
        raise CodecError(f"tensor {name!r}: {exc}") from None


def _check_shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise CodecError(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    return list(shape)


def _check_count(name: str, found: int, shape: list[int], what: str) -> None:
    expected = math.prod(shape)
    if found != expected:
        raise CodecError(
            f"tensor {name!r}: shape {shape} needs {expected} elements but there are "
            f"{found} {what}; fix the shape or the data so they agree"
        )


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


def _decode_grpc_tensors(tensors: Sequence[Any], raws: Sequence[bytes], kind: str) -> dict[str, np.ndarray]:
    if raws and len(raws) != len(tensors):
        raise CodecError(
            f"{len(raws)} raw_{kind}_contents entries for {len(tensors)} {kind}s; when raw "
            f"contents are used there must be exactly one per {kind}, in the same order"
        )
    result: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(tensors):
        array = from_grpc_tensor(tensor, raws[index] if raws else None)
        _store(result, tensor.name, array, kind)
    return result


def _store(result: dict[str, np.ndarray], name: Any, array: np.ndarray, what: str) -> None:
    if not isinstance(name, str):
        raise CodecError(f"a tensor in the {what} has no string 'name' (got {name!r})")
    if name in result:
        raise CodecError(f"the {what} has two tensors named {name!r}; names must be unique")
    result[name] = array
