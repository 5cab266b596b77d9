"""A custom MLServer runtime: iris species from four measurements, with a tag echoed per row.

Inputs: ``features`` FP32 [-1, 4] (sepal length, sepal width, petal length,
petal width in cm) and ``tag`` BYTES [-1, 1] (any text the client attaches to a
row). Outputs: ``species`` BYTES [-1, 1] (setosa, versicolor or virginica),
``probability`` FP32 [-1, 1] (of that species) and ``tag`` BYTES [-1, 1] (the
row's tag, so a client can check rows were not reordered). ``outputs`` in the
request selects a subset. Unlike the stock sklearn runtime, it checks names,
datatypes and shapes and answers 400 with a message saying what to fix.
"""

from __future__ import annotations

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput
from mlserver.utils import get_model_uri

SPECIES = ("setosa", "versicolor", "virginica")
N_FEATURES = 4
OUTPUTS = ("species", "probability", "tag")


def _by_name(payload: InferenceRequest) -> dict[str, RequestInput]:
    names = [i.name for i in payload.inputs]
    if sorted(names) != ["features", "tag"]:
        raise InferenceError(
            f"iris-tagged takes exactly two inputs, 'features' (FP32 [-1, 4]) and 'tag' "
            f"(BYTES [-1, 1]); the request has {names}"
        )
    return {i.name: i for i in payload.inputs}


def _features(tensor: RequestInput) -> np.ndarray:
    if tensor.datatype != "FP32":
        raise InferenceError(f"input 'features' must be FP32, not {tensor.datatype}")
    shape = list(tensor.shape)
    if len(shape) != 2 or shape[1] != N_FEATURES:
        raise InferenceError(
            f"input 'features' must have shape [rows, {N_FEATURES}], not {shape}: "
            "one row of four measurements (cm) per flower"
        )
    values = NumpyCodec.decode_input(tensor)
    if values.size != shape[0] * N_FEATURES:
        raise InferenceError(f"input 'features' has {values.size} values for shape {shape}")
    return values.reshape(shape[0], N_FEATURES)


def _tags(tensor: RequestInput, rows: int) -> list[str]:
    if tensor.datatype != "BYTES":
        raise InferenceError(f"input 'tag' must be BYTES, not {tensor.datatype}")
    shape = list(tensor.shape)
    if shape not in ([rows, 1], [rows]):
        raise InferenceError(f"input 'tag' must have shape [{rows}, 1] (one tag per row), not {shape}")
    try:
        tags = StringCodec.decode_input(tensor)
    except UnicodeDecodeError as exc:
        raise InferenceError(f"input 'tag' must be UTF-8 text: {exc}") from None
    if len(tags) != rows:
        raise InferenceError(f"input 'tag' has {len(tags)} values for {rows} rows")
    return tags


class TaggedIrisClassifier(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings, wellknown_filenames=["model.joblib"])
        self._model = joblib.load(path)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = _by_name(payload)
        features = _features(inputs["features"])
        tags = _tags(inputs["tag"], features.shape[0])
        wanted = [o.name for o in payload.outputs] if payload.outputs else list(OUTPUTS)
        unknown = [name for name in wanted if name not in OUTPUTS]
        if unknown:
            raise InferenceError(f"iris-tagged has outputs {list(OUTPUTS)}, not {unknown}")
        proba = self._model.predict_proba(features.astype(np.float64))
        best = proba.argmax(axis=1)
        produced: dict[str, ResponseOutput] = {
            "species": StringCodec.encode_output("species", [SPECIES[i] for i in best]),
            "probability": NumpyCodec.encode_output(
                "probability", proba[np.arange(len(best)), best].astype(np.float32).reshape(-1, 1)
            ),
            "tag": StringCodec.encode_output("tag", tags),
        }
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[produced[name] for name in wanted],
        )
