"""What the JSON and gRPC tensor codecs share: named-tensor lists and strict shape and count checks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from .datatypes import DatatypeInfo, as_tensor_array, datatype_info
from .errors import CodecError

#: Named tensors: a mapping name -> array, or (name, array) pairs (which keep
#: order and may repeat a name, e.g. to build a deliberately bad request).
NamedArrays: TypeAlias = Mapping[str, Any] | Sequence[tuple[str, Any]]


def _prepare(array: Any, datatype: str | None) -> tuple[np.ndarray, DatatypeInfo]:
    values, info = as_tensor_array(array, datatype)
    if values.ndim == 0:
        values = values.reshape(1)
    return values, info


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


def _store(result: dict[str, np.ndarray], name: Any, array: np.ndarray, what: str) -> None:
    if not isinstance(name, str):
        raise CodecError(f"a tensor in the {what} has no string 'name' (got {name!r})")
    if name in result:
        raise CodecError(f"the {what} has two tensors named {name!r}; names must be unique")
    result[name] = array

