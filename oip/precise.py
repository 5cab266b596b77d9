"""Lean, precisely timed V2 clients for the load generator: HTTP/1.1 and unary gRPC.

Both send pre-encoded requests on one keep-alive connection over a plain
socket (gevent's, under Locust) and time each exchange from just before the
request is written to the moment the last bytes of the answer reached this
machine: the kernel stamps every received packet (``SO_TIMESTAMPNS``), so
the figure leaves out how long the generator took to wake up and parse the
answer. That wake-up is what makes Locust's and grpcio's own timings read
0.3-1 ms high on a busy or virtualised machine (``bench/latency_accuracy.py``
measures it). Where the kernel gives no stamp, the clock is read after the
last ``recv`` instead (``Reply.stamped`` says which).

* :class:`HttpConnection` (:mod:`oip.precise_http`): ``exchange(request_bytes)``;
  requests are built once with :func:`http_request`.
* :class:`GrpcConnection` (:mod:`oip.precise_grpc`): ``call(path, message)``
  for unary methods over HTTP/2 (:mod:`oip.h2`), one call at a time.
* the timed socket and :class:`Reply` live in :mod:`oip.precise_socket`.

Not general clients: no TLS, no compression, no streaming; conformance and
interop use grpcio and requests.
"""

from __future__ import annotations

from .precise_grpc import GrpcConnection
from .precise_http import HttpConnection, http_request
from .precise_socket import (
    SO_TIMESTAMPNS,
    Reply,
    TimedSocket,
    WireError,
    enable_stamps,
    monotonic_of,
    recv_stamped,
)

_TimedSocket = TimedSocket  # the name before the split

__all__ = ["SO_TIMESTAMPNS", "GrpcConnection", "HttpConnection", "Reply", "TimedSocket", "WireError",
           "enable_stamps", "http_request", "monotonic_of", "recv_stamped"]
