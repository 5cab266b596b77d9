"""tritonclient in a process of its own, driven over stdin/stdout with JSON lines.

tritonclient's generated gRPC protobufs and MLServer's (used by ``oip``) define
the same ``inference.*`` symbols, and protobuf refuses both in one process. So
the interoperability rule calls tritonclient here: one request per line
``{"transport", "url", "model", "version", "input", "output", "rows"}``, one
answer per line ``{"predictions": [...]}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import numpy as np

TIMEOUT_S = 60.0
DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
          "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32,
          "FP64": np.float64}


def _http(request: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    import tritonclient.http as triton_http

    parts = urlsplit(request["url"])
    client = triton_http.InferenceServerClient(parts.netloc, ssl=parts.scheme == "https",
                                               connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)
    try:
        tensor = triton_http.InferInput(request["input"], list(rows.shape), request.get("datatype", "FP32"))
        tensor.set_data_from_numpy(rows, binary_data=False)
        wanted = triton_http.InferRequestedOutput(request["output"], binary_data=False)
        result = client.infer(request["model"], [tensor], model_version=request["version"], outputs=[wanted])
        return result.as_numpy(request["output"])
    finally:
        client.close()


def _grpc(request: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(request["url"])
    try:
        tensor = triton_grpc.InferInput(request["input"], list(rows.shape), request.get("datatype", "FP32"))
        tensor.set_data_from_numpy(rows)
        wanted = triton_grpc.InferRequestedOutput(request["output"])
        result = client.infer(request["model"], [tensor], model_version=request["version"], outputs=[wanted],
                              client_timeout=TIMEOUT_S)
        return result.as_numpy(request["output"])
    finally:
        client.close()


def answer(request: dict[str, Any]) -> dict[str, Any]:
    rows = np.asarray(request["rows"], dtype=DTYPES[request.get("datatype", "FP32")])
    call = _http if request["transport"] == "rest" else _grpc
    try:
        predictions = call(request, rows)
    except Exception as exc:  # noqa: BLE001 - every failure of the client is an answer
        return {"error": f"{type(exc).__name__}: {exc}"}
    if predictions is None:
        return {"error": f"no output named {request['output']!r} in the answer"}
    return {"predictions": np.asarray(predictions).tolist()}


def main() -> int:
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(json.loads(line))), flush=True)
    return 0


class TritonWorker:
    """The client side: ``infer(...)`` sends one request to the worker process."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "conformance.triton_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def infer(self, transport: str, url: str, model: str, version: str, input_name: str,
              output_name: str, rows: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        request = {"transport": transport, "url": url, "model": model, "version": version,
                   "input": input_name, "output": output_name, "rows": rows.tolist(), "datatype": datatype}
        self._process.stdin.write(json.dumps(request) + "\n")
        line = self._process.stdout.readline()
        if not line:
            return {"error": f"the tritonclient worker exited with code {self._process.wait()}"}
        return json.loads(line)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    sys.exit(main())
