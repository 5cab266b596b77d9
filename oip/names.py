"""Names defined once: the loopback address and the V2 gRPC service and method paths.

The service name is the one of the Open Inference Protocol's gRPC proto
(``package inference; service GRPCInferenceService``), which MLServer, KServe
and Triton all serve.
"""

from __future__ import annotations

__all__ = [
    "GRPC_MODEL_INFER",
    "GRPC_MODEL_METADATA",
    "GRPC_MODEL_READY",
    "GRPC_SERVER_LIVE",
    "GRPC_SERVICE",
    "LOOPBACK",
    "grpc_method",
]

LOOPBACK = "127.0.0.1"
GRPC_SERVICE = "inference.GRPCInferenceService"


def grpc_method(name: str) -> str:
    """The HTTP/2 path of a V2 gRPC method, e.g. ``grpc_method("ModelInfer")``."""
    return f"/{GRPC_SERVICE}/{name}"


GRPC_MODEL_INFER = grpc_method("ModelInfer")
GRPC_SERVER_LIVE = grpc_method("ServerLive")
GRPC_MODEL_READY = grpc_method("ModelReady")
GRPC_MODEL_METADATA = grpc_method("ModelMetadata")
