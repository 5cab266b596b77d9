"""The Open Inference Protocol's gRPC messages and service stub, generated from the vendored proto.

``open_inference_grpc.proto`` is the interface of the OIP specification; the two
``*_pb2*`` modules are generated from it (``python -m oip.proto.regenerate``) and
committed. Import them through :mod:`oip._pb`.
"""
