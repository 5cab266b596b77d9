"""The delay stand-in: a minimal V2 server that answers after a known delay, with the oracle's predictions.

Used to check the load harness's own measurements: it serves ``mnist-svm`` and
``mushroom-xgboost`` over REST (HTTP/1.1 keep-alive) and gRPC on loopback,
holds each inference request for ``--delay-ms`` (every ``--slow-every``-th one
per transport for ``--slow-ms`` instead, to give the distribution a known
tail) and answers with the in-process oracle's prediction for the rows it
received. The delay each request was meant to get is the *truth* a client's
figures are compared with.

It is built to cost as little as possible on top of that delay, so that the
known delay can serve as the truth:

* REST is a bare protocol on uvloop: keep-alive,
  ``Content-Length`` bodies only, no per-request JSON work once a request
  body has been seen (the full HTTP answer, right and wrong, is
  cached per path and body; the harness sends the same pre-encoded bodies
  over and over).
* gRPC is a bare HTTP/2 protocol too (:mod:`oip.h2`; grpcio's
  server costs 0.5-1.5 ms a call on a small VM): pre-serialised
  ``ModelInferResponse`` bytes out, cached per request bytes.
* The hold runs from the moment the request's last bytes arrived, as the
  kernel stamped them (:class:`~fakes.delay.stamped.StampedTransport`: the
  loop may wake up to 0.6 ms later on a VM), so waking and answering work
  are hidden inside it, and ends on a Linux ``timerfd`` (asyncio's own
  timers fire up to 1 ms late) armed ``--spin-us`` early, after which the
  loop spins to the deadline: on a VM a sleeping CPU takes 0.1-0.6 ms to
  wake up (:class:`oip.clock.PreciseTimer`).
* :class:`~fakes.delay.launcher.DelayServer` runs REST and gRPC in two child
  processes, apart from the load generator and from each other (no shared
  GIL, no shared loop).

Per request it records, in microsecond HDR histograms: the delay it meant to
hold (``intended``, the truth) and the time it really held the request
(``held``: from the kernel's arrival stamp of the request's last bytes to
the moment the answer is handed to the socket). ``GET /_delay/stats`` on the
process's REST (control) port returns both; ``POST /_delay/reset`` clears them.

Deliberate faults for tests: ``--wrong-every N`` returns a wrong prediction in
every N-th answer; ``--serve rest`` (or ``--no-grpc``) serves REST only.

    python -m fakes.delay_server --delay-ms 5      # prints {"rest_port": ..., "grpc_port": ..., ...}

or from Python (child processes, stopped on exit)::

    with DelayServer(delay_ms=5) as server:
        server.rest_url, server.grpc_target, server.truth(), server.held()

It stops by itself after ``--max-seconds`` and when its stdin closes (the
parent ended), so it never outlives a test.

Modules, one job each:

* :mod:`.behaviour`: what to answer (:class:`Answers`) and how long to hold
  it, with the record of what was meant and done (:class:`Behaviour`);
* :mod:`.stamped`: sockets whose reads carry the kernel's arrival time
  (where a hold starts); the hold's end is :class:`oip.clock.PreciseTimer`;
* :mod:`.rest_app`: the bare HTTP/1.1 side (:class:`RestApp`, :class:`RestProtocol`);
* :mod:`.grpc_app`: the bare HTTP/2 gRPC side (:class:`GrpcApp`, :class:`GrpcProtocol`);
* :mod:`.cli`: one server process (``main``), what the launcher runs;
* :mod:`.launcher`: :class:`DelayServer`, the child processes for tests and bench.

This package imports none of them, so that ``python -m fakes.delay.cli``
starts with no more than it needs.
"""

from __future__ import annotations

#: A stand-in stops by itself after this long (seconds) unless told otherwise.
DEFAULT_MAX_SECONDS = 900.0
