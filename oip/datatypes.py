"""The 13 V2 tensor datatypes and how each maps to numpy and to gRPC.

``DATATYPES`` is the one table the codec consults: datatype name -> numpy
dtype, element size on the wire, and the ``InferTensorContents`` field that
carries it in typed (non-raw) gRPC form. Names are case-sensitive, as in the
protocol: ``"FP32"`` is a datatype, ``"fp32"`` is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import CodecError

__all__ = [
    "DATATYPES",
    "DatatypeInfo",
    "as_tensor_array",
    "datatype_info",
    "datatype_of",
]


@dataclass(frozen=True)
class DatatypeInfo:
    """How one V2 datatype is represented in numpy and on the wire.

    ``itemsize`` is the size of one element in raw contents, or ``None`` for
    BYTES (variable length). ``grpc_field`` is the ``InferTensorContents``
    field for typed contents, or ``None`` for FP16, which has no such field.
    """

    name: str
    dtype: np.dtype
    itemsize: int | None
    grpc_field: str | None

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"


def _row(name: str, dtype: Any, field: str | None) -> tuple[str, DatatypeInfo]:
    np_dtype = np.dtype(dtype)
    itemsize = None if np_dtype.kind == "O" else np_dtype.itemsize
    return name, DatatypeInfo(name, np_dtype, itemsize, field)


DATATYPES: Mapping[str, DatatypeInfo] = MappingProxyType(
    dict(
        [
            _row("BOOL", np.bool_, "bool_contents"),
            _row("UINT8", np.uint8, "uint_contents"),
            _row("UINT16", np.uint16, "uint_contents"),
            _row("UINT32", np.uint32, "uint_contents"),
            _row("UINT64", np.uint64, "uint64_contents"),
            _row("INT8", np.int8, "int_contents"),
            _row("INT16", np.int16, "int_contents"),
            _row("INT32", np.int32, "int_contents"),
            _row("INT64", np.int64, "int64_contents"),
            _row("FP16", np.float16, None),
            _row("FP32", np.float32, "fp32_contents"),
            _row("FP64", np.float64, "fp64_contents"),
            _row("BYTES", np.object_, "bytes_contents"),
        ]
    )
)

_BY_KIND_SIZE = {
    (info.dtype.kind, info.dtype.itemsize): info.name
    for info in DATATYPES.values()
    if info.itemsize is not None
}

# numpy dtype kinds a value may have to be converted to a datatype's dtype
# without losing information (checked before numpy's own range checks).
_LOSSLESS_KINDS = {"b": "b", "u": "biu", "i": "biu", "f": "biuf"}


def datatype_info(datatype: str) -> DatatypeInfo:
    """Look up a datatype name, raising ``CodecError`` with a hint if unknown."""
    info = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if info is not None:
        return info
    known = ", ".join(DATATYPES)
    hint = ""
    if isinstance(datatype, str) and datatype.upper() in DATATYPES:
        hint = f" (names are case-sensitive: did you mean {datatype.upper()!r}?)"
    raise CodecError(f"unknown datatype {datatype!r}{hint}; expected one of {known}")


def datatype_of(array: Any) -> str:
    """Return the V2 datatype name for a numpy array or dtype.

    Object, ``bytes_`` (``S``) and ``str_`` (``U``) arrays are BYTES. Python
    lists are first converted with ``np.asarray`` (so ints give INT64 and
    floats FP64).
    """
    if isinstance(array, np.dtype):
        dtype = array
    elif isinstance(array, np.ndarray):
        dtype = array.dtype
    else:
        dtype = np.asarray(array).dtype
    if dtype.kind in "OSU":
        return "BYTES"
    name = _BY_KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise CodecError(
            f"numpy dtype {dtype} has no V2 datatype; convert the array to one of "
            "bool, (u)int8/16/32/64, float16/32/64, or an object array of bytes"
        )
    return name


def as_tensor_array(value: Any, datatype: str | None = None) -> tuple[np.ndarray, DatatypeInfo]:
    """Convert ``value`` to a native-endian array of ``datatype``'s dtype.

    With ``datatype=None`` the datatype is inferred with ``datatype_of``.
    Arrays are converted only when lossless (numpy "safe" casting); Python
    scalars and lists are checked for range. BYTES become an object array of
    ``bytes`` (``str`` elements are UTF-8 encoded).
    """
    if datatype is None:
        datatype = datatype_of(_natural_array(value))
    info = datatype_info(datatype)
    if info.name == "BYTES":
        return _as_bytes_array(value), info
    return _as_numeric_array(value, info), info


def _natural_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        array = np.asarray(value)
    except UnicodeError:  # e.g. a list mixing str and non-ASCII bytes
        return np.array(value, dtype=object)
    except ValueError as exc:
        raise CodecError(f"cannot make a tensor from this value ({exc}); pass a numpy array") from None
    if array.dtype.kind == "S":
        # numpy's fixed-width bytes drop trailing NULs: keep the real objects.
        array = np.array(value, dtype=object)
    return array


def _as_numeric_array(value: Any, info: DatatypeInfo) -> np.ndarray:
    target = info.dtype
    if isinstance(value, np.ndarray):
        if value.dtype == target:
            return value
        if np.can_cast(value.dtype, target, casting="safe"):
            return value.astype(target)
        raise CodecError(
            f"cannot send a {value.dtype} array as {info.name} without losing data; "
            f"convert it yourself first, e.g. array.astype(np.{target.name})"
        )
    natural = np.asarray(value)
    if natural.dtype.kind not in _LOSSLESS_KINDS[target.kind]:
        raise CodecError(
            f"cannot send {natural.dtype} values as {info.name}; pass values of a "
            f"matching kind, or an array already converted to {target.name}"
        )
    try:
        return np.asarray(value, dtype=target)
    except (OverflowError, ValueError, TypeError) as exc:
        raise CodecError(f"value out of range for {info.name}: {exc}") from None


def _as_bytes_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        source = value if value.dtype.kind == "O" else value.astype(object)
    else:
        source = np.array(value, dtype=object)
    flat = []
    for index, element in enumerate(source.ravel()):
        if isinstance(element, bytes):
            flat.append(bytes(element))
        elif isinstance(element, str):
            flat.append(element.encode("utf-8"))
        elif isinstance(element, (bytearray, memoryview)):
            flat.append(bytes(element))
        else:
            raise CodecError(
                f"BYTES element {index} is a {type(element).__name__}; BYTES tensors "
                "hold bytes (or str, sent as UTF-8): encode the value first"
            )
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(source.shape)
