"""Open Inference Protocol (KServe V2) client toolkit for this harness.

One codec (numpy <-> V2 JSON and gRPC tensors) and two transport clients
(REST over httpx, gRPC over grpcio), shared by the conformance suite, the
Locust load tests and the benchmark.
"""

from .codec import (
    build_infer_request,
    build_infer_response,
    build_json_infer_request,
    from_grpc_tensor,
    from_json_tensor,
    inputs_from_grpc_request,
    inputs_from_json_request,
    outputs_from_grpc_response,
    outputs_from_json_response,
    to_grpc_input,
    to_grpc_output,
    to_json_tensor,
)
from .datatypes import DATATYPES, DatatypeInfo, datatype_of
from .errors import CodecError, OipError, TargetUnreachable
from .grpc_client import GrpcClient, describe_request
from .rest import RestClient, RestResponse, model_path

__all__ = [
    "DATATYPES",
    "CodecError",
    "DatatypeInfo",
    "GrpcClient",
    "OipError",
    "RestClient",
    "RestResponse",
    "TargetUnreachable",
    "build_infer_request",
    "build_infer_response",
    "build_json_infer_request",
    "datatype_of",
    "describe_request",
    "from_grpc_tensor",
    "from_json_tensor",
    "inputs_from_grpc_request",
    "inputs_from_json_request",
    "model_path",
    "outputs_from_grpc_response",
    "outputs_from_json_response",
    "to_grpc_input",
    "to_grpc_output",
    "to_json_tensor",
]
