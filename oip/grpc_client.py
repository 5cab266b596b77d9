"""A thin V2 gRPC client: one stub call per endpoint, errors left to the caller.

Responses are the protobuf messages themselves; a failed call raises
``grpc.RpcError`` so tests can check ``.code()`` (UNAVAILABLE when nothing
is listening). ``describe_request`` renders a request as protobuf text to
reproduce a failure by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from ._pb import pb, pb_grpc
from .metadata_wire import decode_model_metadata
from .names import GRPC_MODEL_METADATA

__all__ = ["GrpcClient", "describe_request"]

Metadata = Sequence[tuple[str, str]]


class GrpcClient:
    """V2 gRPC endpoints of one server, e.g. ``GrpcClient("127.0.0.1:8081")``.

    ``timeout`` (seconds) is the deadline of every call unless a call passes
    its own. ``max_message_bytes`` bounds messages in both directions; the
    default -1 means no client-side limit, so only the server's limit applies.
    """

    def __init__(
        self,
        target: str,
        timeout: float = 30.0,
        max_message_bytes: int = -1,
    ) -> None:
        self.target = target
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        self._metadata_raw = self._channel.unary_unary(
            GRPC_MODEL_METADATA,
            request_serializer=pb.ModelMetadataRequest.SerializeToString,
            response_deserializer=bytes,
        )

    def live(self, *, timeout: float | None = None) -> pb.ServerLiveResponse:
        return self._stub.ServerLive(pb.ServerLiveRequest(), timeout=self._deadline(timeout))

    def ready(self, *, timeout: float | None = None) -> pb.ServerReadyResponse:
        return self._stub.ServerReady(pb.ServerReadyRequest(), timeout=self._deadline(timeout))

    def server_metadata(self, *, timeout: float | None = None) -> pb.ServerMetadataResponse:
        return self._stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=self._deadline(timeout))

    def model_metadata(
        self, model: str, version: str = "", *, timeout: float | None = None
    ) -> pb.ModelMetadataResponse:
        """ModelMetadata, decoded leniently: see :meth:`model_metadata_checked`."""
        return self.model_metadata_checked(model, version, timeout=timeout)[0]

    def model_metadata_checked(
        self, model: str, version: str = "", *, timeout: float | None = None
    ) -> tuple[pb.ModelMetadataResponse, list[str]]:
        """ModelMetadata and what in it is not the OIP proto's message (field 6 of another type)."""
        raw = self._metadata_raw(
            pb.ModelMetadataRequest(name=model, version=version), timeout=self._deadline(timeout)
        )
        return decode_model_metadata(raw)

    def model_ready(
        self, model: str, version: str = "", *, timeout: float | None = None
    ) -> pb.ModelReadyResponse:
        return self._stub.ModelReady(
            pb.ModelReadyRequest(name=model, version=version),
            timeout=self._deadline(timeout),
        )

    def infer(
        self,
        request: pb.ModelInferRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> pb.ModelInferResponse:
        """Call ModelInfer; build ``request`` with ``oip.codec.build_infer_request``."""
        return self._stub.ModelInfer(request, timeout=self._deadline(timeout), metadata=metadata)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GrpcClient({self.target!r})"

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout


def describe_request(request: Message) -> str:
    """Render a protobuf message as text format, headed by its message type.

    The output parses back with
    ``text_format.Parse(text, pb.ModelInferRequest())`` (for a request).
    """
    body = text_format.MessageToString(request)
    return f"# proto-message: {request.DESCRIPTOR.full_name}\n{body}"
