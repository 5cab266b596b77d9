"""gRPC calls of Triton's model repository and statistics extensions.

The messages are those of ``oip/proto/triton_extensions.proto`` (written from Triton's
protocol documents), called by path, so the same messages can go to
``inference.GRPCInferenceService`` (where Triton's documents and MLServer put them) or to
MLServer's deprecated ``inference.model_repository.ModelRepositoryService``. Failed calls
raise ``grpc.RpcError``, as in :class:`oip.GrpcClient`.
"""

from __future__ import annotations

from typing import Any

import grpc

from .grpc_client import describe_request
from .names import GRPC_SERVICE
from .proto import triton_extensions_pb2 as ext_pb

__all__ = ["MLSERVER_REPOSITORY_SERVICE", "REPOSITORY_SERVICES", "ExtensionsGrpcClient", "ext_pb"]

MLSERVER_REPOSITORY_SERVICE = "inference.model_repository.ModelRepositoryService"
#: Where the repository calls may be served: Triton's documented place first.
REPOSITORY_SERVICES = (GRPC_SERVICE, MLSERVER_REPOSITORY_SERVICE)

_RESPONSES = {
    "RepositoryIndex": ext_pb.RepositoryIndexResponse,
    "RepositoryModelLoad": ext_pb.RepositoryModelLoadResponse,
    "RepositoryModelUnload": ext_pb.RepositoryModelUnloadResponse,
    "ModelStatistics": ext_pb.ModelStatisticsResponse,
}


class ExtensionsGrpcClient:
    """``ExtensionsGrpcClient("127.0.0.1:8081").call(GRPC_SERVICE, "RepositoryIndex", request)``."""

    def __init__(self, target: str, timeout: float = 60.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)

    def call(self, service: str, method: str, request: Any) -> Any:
        stub = self._channel.unary_unary(
            f"/{service}/{method}", request_serializer=type(request).SerializeToString,
            response_deserializer=_RESPONSES[method].FromString,
        )
        return stub(request, timeout=self.timeout)

    def repro(self, service: str, method: str, request: Any) -> str:
        """The call as text: its path and target, then the request in protobuf text format."""
        return f"# gRPC {service}/{method} to {self.target}\n{describe_request(request)}"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ExtensionsGrpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
