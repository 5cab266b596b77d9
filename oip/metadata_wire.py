"""Decode a ModelMetadataResponse even when a server puts another type at field 6.

The OIP proto declares field 6 as ``map<string, string> properties``; MLServer
1.7.1 sends ``map<string, InferParameter> parameters`` at the same number. A
strict decode of such an answer either fails (the value is not UTF-8) or yields
the parameter's encoding as if it were text. :func:`decode_model_metadata`
returns the message without the foreign entries and a list of what was wrong,
so the conformance suite can report it as a rule instead of crashing.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from ._pb import pb

__all__ = ["PROPERTIES_FIELD", "decode_model_metadata"]

PROPERTIES_FIELD = 6
_LENGTH_DELIMITED = 2


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise DecodeError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field."""
    out, offset = [], 0
    while offset < len(data):
        start = offset
        key, offset = _varint(data, offset)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, offset = _varint(data, offset)
        elif wire == 1:
            offset += 8
        elif wire == 5:
            offset += 4
        elif wire == _LENGTH_DELIMITED:
            length, offset = _varint(data, offset)
            offset += length
        else:
            raise DecodeError(f"unsupported wire type {wire} at offset {start}")
        if offset > len(data):
            raise DecodeError("truncated field")
        out.append((number, wire, start, offset))
    return out


def _as_parameter(entry: bytes) -> pb.InferParameter | None:
    """The entry's value parsed as an InferParameter, when it is exactly one."""
    try:
        parsed = pb.ModelInferResponse.ParametersEntry.FromString(entry)
    except DecodeError:
        return None
    value = parsed.value
    if value.WhichOneof("parameter_choice") is None or value.SerializeToString() != _value_bytes(entry):
        return None
    return value


def _value_bytes(entry: bytes) -> bytes | None:
    for number, wire, start, end in _fields(entry):
        if number == 2 and wire == _LENGTH_DELIMITED:
            _, offset = _varint(entry, start)
            _, offset = _varint(entry, offset)
            return entry[offset:end]
    return None


_PARAMETER_TAGS = frozenset({0x08, 0x10, 0x1A, 0x21, 0x28})  # fields 1-5 of InferParameter


def _looks_like_parameter(entry: bytes) -> pb.InferParameter | None:
    """The value as an InferParameter when it is exactly one (starts with one of its field tags).

    A text value could in principle also be a valid encoding (``"(*"`` is uint64_param=42);
    such short strings are not plausible model properties, so they are reported too.
    """
    value = _value_bytes(entry) or b""
    return _as_parameter(entry) if value[:1] and value[0] in _PARAMETER_TAGS else None


def decode_model_metadata(raw: bytes) -> tuple[pb.ModelMetadataResponse, list[str]]:
    """The message (without field-6 entries that are not text) and the problems found.

    An answer that is not a protobuf message at all decodes as an empty message with
    the problem named, so a caller reports it instead of crashing.
    """
    try:
        return _decode(raw)
    except DecodeError as exc:
        problem = f"the answer is not a ModelMetadataResponse ({exc}): {raw[:40]!r}"
        return pb.ModelMetadataResponse(), [problem]


def _decode(raw: bytes) -> tuple[pb.ModelMetadataResponse, list[str]]:
    problems: list[str] = []
    kept = bytearray()
    for number, wire, start, end in _fields(raw):
        field = raw[start:end]
        if number == PROPERTIES_FIELD and wire == _LENGTH_DELIMITED:
            _, offset = _varint(raw, start)
            _, offset = _varint(raw, offset)
            entry = raw[offset:end]
            parameter = _looks_like_parameter(entry)
            if parameter is not None:
                key = pb.ModelInferResponse.ParametersEntry.FromString(entry).key
                shown = str(parameter).strip().replace("\n", " ")
                problems.append(f"field 6 entry {key!r} holds an InferParameter ({shown}), not a string: "
                                "map<string, InferParameter> where the OIP proto has map<string, string> "
                                "properties")
                continue
            try:
                pb.ModelMetadataResponse.PropertiesEntry.FromString(entry)
            except DecodeError as exc:
                problems.append(f"field 6 entry is not a map<string, string> entry ({exc}): {entry[:40]!r}")
                continue
        kept += field
    return pb.ModelMetadataResponse.FromString(bytes(kept)), problems
