"""The raw byte layout of a tensor in ``raw_input_contents``/``raw_output_contents``.

Fixed-size datatypes are the row-major elements in little-endian order (BOOL
is one byte, 0 or 1). BYTES is, per element, a 4-byte little-endian unsigned
length followed by that many bytes (the KServe/Triton convention).
"""

from __future__ import annotations

import struct

import numpy as np

from .datatypes import DatatypeInfo
from .errors import CodecError

__all__ = ["from_raw", "to_raw"]

_LENGTH = struct.Struct("<I")


def to_raw(array: np.ndarray, info: DatatypeInfo) -> bytes:
    """Serialise an array (already of ``info.dtype``) to raw contents."""
    if info.itemsize is None:
        parts = []
        for element in array.ravel():
            if len(element) > 0xFFFFFFFF:
                raise CodecError("a BYTES element longer than 4 GiB cannot be length-prefixed")
            parts.append(_LENGTH.pack(len(element)))
            parts.append(element)
        return b"".join(parts)
    little = info.dtype.newbyteorder("<")
    return np.ascontiguousarray(array, dtype=little).tobytes()


def from_raw(raw: bytes, info: DatatypeInfo, count: int, name: str) -> np.ndarray:
    """Parse raw contents holding ``count`` elements into a flat, writable array."""
    if info.itemsize is None:
        return _unpack_bytes(raw, count, name)
    expected = count * info.itemsize
    if len(raw) != expected:
        raise CodecError(
            f"tensor {name!r}: raw contents hold {len(raw)} bytes but {count} "
            f"{info.name} elements need {expected} ({info.itemsize} each); the "
            "shape, the datatype or the raw entry paired with this tensor is wrong"
        )
    if info.name == "BOOL":
        as_bytes = np.frombuffer(raw, dtype=np.uint8)
        if as_bytes.size and as_bytes.max() > 1:
            raise CodecError(f"tensor {name!r}: raw BOOL bytes must be 0 or 1")
        return as_bytes.astype(np.bool_)
    return np.frombuffer(raw, dtype=info.dtype.newbyteorder("<")).astype(info.dtype)


def _unpack_bytes(raw: bytes, count: int, name: str) -> np.ndarray:
    view = memoryview(raw)
    elements = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise CodecError(
                f"tensor {name!r}: raw BYTES contents end inside a 4-byte length "
                f"prefix at offset {offset}; each element must be <uint32 LE length><bytes>"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise CodecError(
                f"tensor {name!r}: raw BYTES element {len(elements)} declares "
                f"{length} bytes but only {len(view) - offset} remain"
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise CodecError(
            f"tensor {name!r}: raw BYTES contents hold {len(elements)} elements but the shape needs {count}"
        )
    out = np.empty(count, dtype=object)
    out[:] = elements
    return out
