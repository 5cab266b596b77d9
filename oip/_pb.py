"""The single import point of the generated V2 (KServe dataplane) protobuf code.

Everything in ``oip`` uses ``pb`` (messages) and ``pb_grpc`` (service stub)
from here, so swapping MLServer's copy for another generated copy of
``grpc_predict_v2.proto`` is a one-file change.

Note: importing ``mlserver.grpc`` imports the whole ``mlserver`` package
(about 1.5 s), once per process.
"""

from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc import dataplane_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
