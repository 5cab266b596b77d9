"""A second custom runtime: digits in low-precision datatypes.

Its module is not called ``runtime`` like iris-tagged's: MLServer 1.7.1 imports a
custom runtime by re-executing a module of the same name in place
(``importlib.reload``), so two ``runtime.py`` files share one module's globals and
the model loaded first runs the other's helpers (see tests/model_repo/README.md).

Input: ``pixels`` UINT8 [-1, 64] (an 8x8 image, values 0-16, row-major). Outputs:
``digit`` UINT8 [-1, 1], ``confidence`` FP16 [-1, 1] (probability of that digit)
and ``even`` BOOL [-1, 1]; ``outputs`` in the request selects a subset. Bad
names, datatypes or shapes answer 400 with what to fix.

An FP16 output is what no stock runtime of the seed returns: MLServer 1.7.1 sends
it fine over REST and in a raw gRPC answer, but fails a typed gRPC request with
INTERNAL ("expected bytes, float found": it maps FP16 to ``bytes_contents``).
"""

from __future__ import annotations

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

N_PIXELS = 64
OUTPUTS = ("digit", "confidence", "even")


def _pixels(payload: InferenceRequest) -> np.ndarray:
    if [i.name for i in payload.inputs] != ["pixels"]:
        raise InferenceError(
            f"digits-lowprec takes one input, 'pixels' (UINT8 [-1, 64]); the request has "
            f"{[i.name for i in payload.inputs]}"
        )
    tensor = payload.inputs[0]
    if tensor.datatype != "UINT8":
        raise InferenceError(f"input 'pixels' must be UINT8 (0-16), not {tensor.datatype}")
    shape = list(tensor.shape)
    if len(shape) != 2 or shape[1] != N_PIXELS:
        raise InferenceError(f"input 'pixels' must have shape [rows, {N_PIXELS}] (8x8 images), not {shape}")
    values = NumpyCodec.decode_input(tensor)
    if values.size != shape[0] * N_PIXELS:
        raise InferenceError(f"input 'pixels' has {values.size} values for shape {shape}")
    return values.reshape(shape[0], N_PIXELS)


class LowPrecisionDigits(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings, wellknown_filenames=["model.joblib"])
        self._model = joblib.load(path)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = _pixels(payload)
        wanted = [o.name for o in payload.outputs] if payload.outputs else list(OUTPUTS)
        unknown = [name for name in wanted if name not in OUTPUTS]
        if unknown:
            raise InferenceError(f"digits-lowprec has outputs {list(OUTPUTS)}, not {unknown}")
        proba = self._model.predict_proba(pixels.astype(np.float64))
        best = proba.argmax(axis=1)
        arrays = {
            "digit": self._model.classes_[best].astype(np.uint8).reshape(-1, 1),
            "confidence": proba[np.arange(len(best)), best].astype(np.float16).reshape(-1, 1),
            "even": (self._model.classes_[best] % 2 == 0).reshape(-1, 1),
        }
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, arrays[name]) for name in wanted],
        )
