"""numpy arrays to and from V2 gRPC tensors: typed ``InferTensorContents`` or raw little-endian contents.

FP16 has no typed field in the proto, so it must be sent raw: asking for typed
FP16 raises ``CodecError`` instead of silently mixing raw and typed inputs in
one request (which the protocol forbids). Raw entries must pair one-to-one with
the tensors. Import these through :mod:`oip.codec`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from . import _raw
from ._pb import pb
from ._tensors import NamedArrays, _check_count, _check_shape, _info_for, _named, _prepare, _store
from .errors import CodecError

InferInputTensor = pb.ModelInferRequest.InferInputTensor
InferOutputTensor = pb.ModelInferResponse.InferOutputTensor
Parameters: TypeAlias = Mapping[str, bool | int | str]


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

