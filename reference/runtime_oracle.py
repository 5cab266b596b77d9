"""The oracle for any model in a local models dir: its own MLServer runtime, run in-process.

:func:`load_oracle` reads ``<model>/model-settings.json`` with MLServer's own
loader (``mlserver.repository.load.load_model_settings``), resolves its
``implementation`` the way MLServer does (custom runtimes included: MLServer puts
the model folder on the import path while importing it), builds it with
``mlserver.registry.model_initialiser`` and awaits its ``load()``. One difference:
MLServer 1.7.1 re-imports a custom runtime module *in place* (``importlib.reload``),
so two models whose runtimes share a module name (two ``runtime.py``) share its
globals, and the first model runs the second's code. The oracle forgets a model's
own modules (``sys.modules`` entries whose file is in the model folder) once it is
loaded, so each oracle keeps its own. The oracle then
answers a V2 JSON request dict with the V2 JSON response dict, as MLServer's REST
endpoint would serialise it. MLServer is imported only here, only when used.

:func:`compare_outputs` lists how two responses' outputs differ: exact for
integers, BOOL and BYTES; for floats ``|actual - expected| <= atol + rtol * |expected|``
with (rtol, atol) = FP16 (1e-3, 1e-3), FP32 (1e-5, 1e-6), FP64 (1e-9, 1e-12): the
same runtime on the same input may differ by float rounding (summation order,
SIMD width), well under these; a NaN equals a NaN.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oip.codec import from_json_tensor
from oip.errors import CodecError

__all__ = [
    "TOLERANCES", "OracleError", "OracleUnavailable", "RuntimeOracle", "compare_outputs", "load_oracle",
]

# (rtol, atol) per float datatype.
TOLERANCES: dict[str, tuple[float, float]] = {
    "FP16": (1e-3, 1e-3),
    "FP32": (1e-5, 1e-6),
    "FP64": (1e-9, 1e-12),
}


class OracleError(Exception):
    """The runtime refused the request (what MLServer would answer with a 4xx/5xx)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OracleUnavailable:
    """Why no oracle could be loaded for a model; never raised, returned."""

    model_dir: Path
    reason: str

    def __bool__(self) -> bool:
        return False


class RuntimeOracle:
    """One model's MLServer runtime, loaded in-process; :meth:`infer` takes and returns V2 JSON dicts."""

    def __init__(self, model_dir: Path, model: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.model_dir = model_dir
        self._model = model
        self._loop = loop
        self._lock = threading.Lock()
        self.name: str = model.settings.name
        self.version: str | None = model.settings.version
        self.implementation: str = model.settings.implementation_

    def infer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The runtime's V2 response to ``request`` (a V2 JSON request body); raises :class:`OracleError`."""
        return _run(self._loop, self._lock, self._infer(dict(request)))

    async def _infer(self, request: dict[str, Any]) -> dict[str, Any]:
        import pydantic
        from mlserver.codecs.json import encode_to_json_bytes
        from mlserver.context import model_context
        from mlserver.errors import MLServerError
        from mlserver.types import InferenceRequest
        from mlserver.utils import generate_uuid

        try:
            payload = InferenceRequest.model_validate(request)
        except pydantic.ValidationError as exc:
            raise OracleError(f"{self.name}: not a valid V2 request for MLServer: {exc}", 422) from None
        if payload.id is None:
            payload.id = generate_uuid()
        with model_context(self._model.settings):
            try:
                response = await self._model.predict(payload)
            except MLServerError as exc:
                raise OracleError(f"{self.name}: {exc}", exc.status_code) from exc
            except Exception as exc:
                raise OracleError(f"{self.name}: {type(exc).__name__}: {exc}", 500) from exc
        response.id = payload.id
        return json.loads(encode_to_json_bytes(response.model_dump()))

    def __enter__(self) -> RuntimeOracle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unload the model and close the oracle's event loop (idempotent)."""
        if self._loop.is_closed():
            return
        try:
            _run(self._loop, self._lock, self._model.unload())
        finally:
            self._loop.close()


def _run(loop: asyncio.AbstractEventLoop, lock: threading.Lock, coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on the oracle's own loop, also when the caller is inside a running loop."""
    with lock:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return loop.run_until_complete(coroutine)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(loop.run_until_complete, coroutine).result()


def load_oracle(model_dir: Path) -> RuntimeOracle | OracleUnavailable:
    """The model in ``model_dir`` (holding ``model-settings.json``) loaded by its own runtime, or why not."""
    model_dir = Path(model_dir).resolve()
    settings_path = model_dir / "model-settings.json"
    if not settings_path.is_file():
        return OracleUnavailable(model_dir, f"{settings_path} does not exist")
    try:
        from mlserver.context import model_context
        from mlserver.registry import model_initialiser
        from mlserver.repository.load import load_model_settings
    except ImportError as exc:
        return OracleUnavailable(model_dir, f"MLServer is not installed here ({exc})")
    try:
        settings = load_model_settings(str(settings_path))
    except Exception as exc:
        return OracleUnavailable(model_dir, f"MLServer refuses {settings_path}: {_short(exc)}")
    try:
        model = model_initialiser(settings)  # imports `implementation` with the folder on sys.path
    except Exception as exc:
        return OracleUnavailable(
            model_dir, f"cannot import implementation {settings.implementation_!r}: {_short(exc)}"
        )
    finally:
        _forget_modules_in(model_dir)
    loop = asyncio.new_event_loop()
    try:
        with model_context(settings):
            ready = _run(loop, threading.Lock(), model.load())
    except Exception as exc:
        loop.close()
        return OracleUnavailable(model_dir, f"{settings.name}: load() failed: {_short(exc)}")
    if ready is False:
        loop.close()
        return OracleUnavailable(model_dir, f"{settings.name}: load() returned False")
    model.ready = True
    return RuntimeOracle(model_dir, model, loop)


def _forget_modules_in(folder: Path) -> None:
    """Drop the modules imported from ``folder`` so a later same-named module is a new module."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(folder):
            del sys.modules[name]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _outputs(body: Mapping[str, Any], what: str) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    outputs = body.get("outputs") if isinstance(body, Mapping) else None
    if not isinstance(outputs, list):
        return {}, [f"the {what} response has no 'outputs' list"]
    found: dict[str, Mapping[str, Any]] = {}
    for tensor in outputs:
        name = tensor.get("name") if isinstance(tensor, Mapping) else None
        if not isinstance(name, str):
            return {}, [f"the {what} response has an output without a string 'name'"]
        found[name] = tensor
    return found, []


def _compare_tensor(name: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    if expected.get("datatype") != actual.get("datatype"):
        return [f"output {name!r}: datatype {actual.get('datatype')}, expected {expected.get('datatype')}"]
    if list(expected.get("shape", [])) != list(actual.get("shape", [])):
        return [f"output {name!r}: shape {actual.get('shape')}, expected {expected.get('shape')}"]
    try:
        want, got = from_json_tensor(expected), from_json_tensor(actual)
    except CodecError as exc:
        return [f"output {name!r}: unreadable ({exc})"]
    datatype = expected["datatype"]
    if datatype in TOLERANCES:
        rtol, atol = TOLERANCES[datatype]
        close = np.isclose(got.astype(np.float64), want.astype(np.float64),
                           rtol=rtol, atol=atol, equal_nan=True)
        bad = np.flatnonzero(~close.reshape(-1))
    else:
        bad = np.flatnonzero(want.reshape(-1) != got.reshape(-1))
    if bad.size == 0:
        return []
    i = int(bad[0])
    return [f"output {name!r}: {bad.size} of {want.size} elements differ; first at flat index {i}: "
            f"{got.reshape(-1)[i]!r}, expected {want.reshape(-1)[i]!r}"]


def compare_outputs(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """How ``actual``'s outputs differ from ``expected``'s (V2 JSON responses); ``[]`` when they agree."""
    want, problems = _outputs(expected, "expected")
    got, more = _outputs(actual, "actual")
    problems += more
    if problems:
        return problems
    for name, tensor in want.items():
        if name not in got:
            problems.append(f"output {name!r} is missing (got {sorted(got)})")
        else:
            problems.extend(_compare_tensor(name, tensor, got[name]))
    problems.extend(f"output {name!r} was not expected (expected {sorted(want)})" for name in got
                    if name not in want)
    return problems
