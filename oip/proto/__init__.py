"""The Open Inference Protocol's gRPC messages and service stub, generated from the vendored proto.

``open_inference_grpc.proto`` is the interface of the OIP specification; the two
``*_pb2*`` modules are generated from it (``python -m oip.proto.regenerate``) and
committed. Import them through :mod:`oip._pb`. ``triton_extensions.proto`` holds the
messages of two of Triton's protocol extensions (model repository, statistics), kept out
of the OIP proto; its modules are generated the same way (use :mod:`oip.extensions_grpc`).
"""
