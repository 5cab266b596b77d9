"""Pure helpers for two of Triton's protocol extensions over REST.

Binary tensor data (``docs/protocol/extension_binary_data.md`` of triton-inference-server/server):
the HTTP body is the JSON request or response followed by the tensors' bytes, in the
order of the tensors in the JSON; each binary tensor carries ``parameters.binary_data_size``
and the ``Inference-Header-Content-Length`` header gives the length of the JSON part.
The bytes of a tensor are those of ``raw_input_contents`` (:mod:`oip._raw`).

Classification (``docs/protocol/extension_classification.md``): an output requested with
``parameters.classification: k`` comes back as BYTES ``"<value>:<index>[:<label>]"`` entries.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._raw import from_raw, to_raw
from .codec import from_json_tensor
from .datatypes import DATATYPES
from .errors import CodecError

__all__ = [
    "BINARY_DATA",
    "BINARY_DATA_OUTPUT",
    "BINARY_DATA_SIZE",
    "INFERENCE_HEADER",
    "ClassEntry",
    "binary_request",
    "binary_response_outputs",
    "parse_class_entry",
]

INFERENCE_HEADER = "Inference-Header-Content-Length"
BINARY_DATA_SIZE = "binary_data_size"  # input / output parameter: bytes of the tensor after the JSON
BINARY_DATA = "binary_data"  # requested-output parameter: send this output as binary
BINARY_DATA_OUTPUT = "binary_data_output"  # request parameter: every output as binary, unless overridden


def binary_request(body: Mapping[str, Any]) -> tuple[bytes, int]:
    """``body`` (a V2 JSON inference request) with every input's ``data`` sent as binary.

    Returns the HTTP body (compact JSON, then each input's bytes in input order) and the
    length of its JSON part, the value of ``Inference-Header-Content-Length``.
    """
    header = copy.deepcopy(dict(body))
    tail = []
    for tensor in header.get("inputs") or []:
        array = from_json_tensor(tensor)
        raw = to_raw(array, DATATYPES[tensor["datatype"]])
        del tensor["data"]
        tensor["parameters"] = {**(tensor.get("parameters") or {}), BINARY_DATA_SIZE: len(raw)}
        tail.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return head + b"".join(tail), len(head)


def binary_response_outputs(content: bytes,
                            header_length: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON part of a response and its outputs, binary or JSON, decoded strictly.

    ``header_length`` is the ``Inference-Header-Content-Length`` (None: the whole body is JSON).
    Raises :class:`CodecError` when the framing does not add up.
    """
    end = len(content) if header_length is None else header_length
    if not 0 <= end <= len(content):
        raise CodecError(f"{INFERENCE_HEADER} is {header_length} but the body has {len(content)} bytes")
    try:
        header = json.loads(content[:end])
    except ValueError as exc:
        raise CodecError(f"the JSON part of the body (first {end} bytes) does not parse: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("outputs"), list):
        raise CodecError("the JSON part of the body is not a response object with an `outputs` list")
    offset, arrays = end, {}
    for output in header["outputs"]:
        if not isinstance(output, dict):
            raise CodecError(f"an output is not an object: {output!r}")
        name = output.get("name", "<unnamed>")
        size = (output.get("parameters") or {}).get(BINARY_DATA_SIZE)
        if size is None:
            arrays[name] = from_json_tensor(output)
            continue
        info = DATATYPES.get(output.get("datatype"))
        shape = output.get("shape")
        if info is None or not isinstance(shape, list) or not isinstance(size, int) or size < 0:
            raise CodecError(f"output {name!r}: binary output needs a V2 datatype, a shape and a size >= 0")
        if offset + size > len(content):
            raise CodecError(f"output {name!r}: {size} bytes announced, "
                             f"{len(content) - offset} left in the body")
        raw = content[offset:offset + size]
        offset += size
        arrays[name] = from_raw(raw, info, math.prod(shape), name).reshape(shape)
    if offset != len(content):
        raise CodecError(f"{len(content) - offset} bytes after the last binary output")
    return header, arrays


@dataclass(frozen=True)
class ClassEntry:
    """One classification entry, ``"<value>:<index>[:<label>]"``."""

    value: float
    index: int
    label: str | None


def parse_class_entry(entry: bytes | str) -> ClassEntry:
    """Parse ``b"0.97:3"`` or ``"0.97:3:cat"``; :class:`CodecError` when it is not that form."""
    text = entry.decode("utf-8") if isinstance(entry, bytes) else entry
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise CodecError(f"classification entry {text!r} is not <value>:<index>[:<label>]")
    try:
        value, index = float(parts[0]), int(parts[1])
    except ValueError:
        raise CodecError(f"classification entry {text!r}: value or index is not a number") from None
    if index < 0:
        raise CodecError(f"classification entry {text!r}: negative index")
    return ClassEntry(value, index, parts[2] if len(parts) == 3 else None)
