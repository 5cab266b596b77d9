"""The JSON codec reads nested ``data`` only when it nests exactly as ``shape`` (audit finding F10)."""

from __future__ import annotations

import numpy as np
import pytest

from oip.codec import from_json_tensor, outputs_from_json_response, to_json_tensor
from oip.errors import CodecError


def tensor(shape: list[int], data: list, datatype: str = "INT32") -> dict:
    return {"name": "t", "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize(("shape", "data"), [
    ([2, 2], [1, 2, 3, 4]),  # flat
    ([2, 2], [[1, 2], [3, 4]]),  # nested as the shape
    ([2, 1, 2], [[[1, 2]], [[3, 4]]]),
    ([2, 0], [[], []]),
    ([0], []),
    ([], [7]),  # a scalar, flat
])
def test_flat_or_exactly_nested_data_decodes(shape: list[int], data: list) -> None:
    array = from_json_tensor(tensor(shape, data))
    assert array.shape == tuple(shape)
    assert array.ravel().tolist() == np.asarray(data, dtype=np.int32).ravel().tolist()


@pytest.mark.parametrize(("shape", "data", "says"), [
    ([2, 2], [[1, 2, 3, 4]], "1 items"),  # right count, one row instead of two
    ([2, 2], [[1, 2], [3], [4]], "3 items"),
    ([3, 2], [[1, 2, 3], [4, 5, 6]], "2 items"),  # [2, 3] nesting under a [3, 2] shape
    ([2, 2], [[1, 2], 3, 4], "3 items"),  # half nested
    ([2, 2], [[1, 2], [3, [4]]], "only 2 dimension"),  # a list where an element belongs
    ([2, 2], [1, [2, 3, 4]], "wants a list"),
    ([4], [[1, 2], [3, 4]], "2 items"),  # nested deeper than the shape
    ([2, 2], [[[1], [2]], [[3], [4]]], "only 2 dimension"),
])
def test_nesting_other_than_the_shape_is_malformed(shape: list[int], data: list, says: str) -> None:
    with pytest.raises(CodecError, match="nest exactly as the shape") as caught:
        from_json_tensor(tensor(shape, data))
    assert says in str(caught.value)


def test_a_response_output_nested_against_its_shape_is_refused() -> None:
    body = {"model_name": "m", "outputs": [tensor([2, 1], [[1, 2]])]}
    with pytest.raises(CodecError, match="dimension 0"):
        outputs_from_json_response(body)


def test_nested_bytes_decode_and_the_encoder_nests_as_the_shape() -> None:
    array = np.array([[b"a", b"bc"], [b"d", b"e"]], dtype=object)
    encoded = to_json_tensor("t", array, nested=True)
    assert encoded["data"] == [["a", "bc"], ["d", "e"]]
    assert from_json_tensor(encoded).tolist() == array.tolist()
    with pytest.raises(CodecError, match="nest exactly"):
        from_json_tensor({**encoded, "shape": [4, 1]})
