"""The single import point of the V2 gRPC messages (``pb``) and service stub (``pb_grpc``).

They are generated from the Open Inference Protocol's own proto
(``oip/proto/open_inference_grpc.proto``), not taken from any server's package,
so a client process never imports the server it judges.
"""

from .proto import open_inference_grpc_pb2 as pb
from .proto import open_inference_grpc_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
