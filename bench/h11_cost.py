"""What h11 would cost the precise HTTP/1.1 client: CPU per request, lean parser vs h11.

Both clients run on the same kernel-stamped socket (``oip.precise_socket.TimedSocket``)
against a raw-socket HTTP/1.1 server in another process (so its CPU is not
counted) that answers every request with the same ~200-byte JSON body:

* ``lean``: :class:`oip.precise.HttpConnection` (pre-built request bytes, its own parser);
* ``h11``: ``h11.Connection(h11.CLIENT)``: the request goes through ``send``
  (h11 must see it to expect the answer), the answer through
  ``receive_data``/``next_event`` until ``EndOfMessage``, then ``start_next_cycle``.

CPU is ``time.process_time()`` over ``--requests`` requests; the variants
alternate for ``--rounds`` rounds. The rule (docs/wire-figures.md): h11 goes
into HttpConnection if it costs less than 20 µs CPU per request over the lean parser.

    python bench/h11_cost.py [--requests 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import h11

from oip.names import LOOPBACK
from oip.precise import HttpConnection, TimedSocket, http_request

BODY = json.dumps({"model_name": "mnist-svm", "model_version": "v0.1.0", "id": "0" * 36, "outputs": [
    {"name": "predict", "shape": [1, 1], "datatype": "INT64", "parameters": {"content_type": "np"},
     "data": [7]}]}).encode()
ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n"
          b"server: uvicorn\r\ncontent-length: %d\r\n\r\n" % len(BODY)) + BODY
REQUEST_BODY = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}'


def serve(ready: Connection) -> None:
    """Answer every request on every connection with ANSWER (requests are read whole, by Content-Length)."""
    listener = socket.create_server((LOOPBACK, 0))
    ready.send(listener.getsockname()[1])
    listener.settimeout(60)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(600)
        threading.Thread(target=_answer, args=(conn,), daemon=True).start()


def _answer(conn: socket.socket) -> None:
    buffer = b""
    with conn:
        while data := conn.recv(65536):
            buffer += data
            while b"\r\n\r\n" in buffer:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) < length:
                    break
                buffer = rest[length:]
                conn.sendall(ANSWER)


def lean_client(port: int) -> Callable[[], bytes]:
    connection = HttpConnection(LOOPBACK, port, timeout=10)
    request = http_request("POST", f"{LOOPBACK}:{port}", "/v2/models/mnist-svm/infer", REQUEST_BODY,
                           {"Content-Type": "application/json"})
    return lambda: connection.exchange(request).body


def h11_client(port: int) -> Callable[[], bytes]:
    sock = TimedSocket(LOOPBACK, port, 10, 10)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{LOOPBACK}:{port}"), ("Content-Length", str(len(REQUEST_BODY))),
               ("Content-Type", "application/json")]
    # Built once, as the lean client pre-builds its request bytes: only h11's state machine,
    # its serialisation and its parsing are in the figure, not the building of the event.
    request = h11.Request(method="POST", target="/v2/models/mnist-svm/infer", headers=headers)
    data, end = h11.Data(data=REQUEST_BODY), h11.EndOfMessage()

    def exchange() -> bytes:
        sent, sent_ns = sock.send(conn.send(request) + conn.send(data) + conn.send(end))
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv())
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            elif type(event) is h11.ConnectionClosed:
                raise RuntimeError("the server closed the connection")
        sock.elapsed_since(sent, sent_ns)  # the same timing read as HttpConnection
        conn.start_next_cycle()
        return body

    return exchange


def cpu_us_per_request(exchange: Callable[[], bytes], requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        exchange()
    return (time.process_time() - started) / requests * 1e6


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} µs  (min {min(values):6.1f}, max {max(values):6.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(theirs,), daemon=True)
    server.start()
    try:
        port = ours.recv()
        clients = {"lean": lean_client(port), "h11": h11_client(port)}
        for name, exchange in clients.items():  # same answer both ways, and warm
            assert exchange() == BODY, name
            cpu_us_per_request(exchange, 200)
        figures: dict[str, list[float]] = {name: [] for name in clients}
        for round_ in range(args.rounds):
            order = list(clients) if round_ % 2 == 0 else list(clients)[::-1]
            for name in order:
                figures[name].append(cpu_us_per_request(clients[name], args.requests))
        extra = [h - lean for h, lean in zip(figures["h11"], figures["lean"], strict=True)]
    finally:
        server.terminate()
        server.join(10)
    print(f"CPU per request, {args.rounds} rounds of {args.requests} requests, "
          f"{len(ANSWER)}-byte answers ({len(BODY)}-byte JSON body):")
    for name, values in figures.items():
        print(f"  {name:5} {spread(values)}")
    print(f"  h11 - lean, per round: {spread(extra)}")
    verdict = "use h11" if statistics.median(extra) < 20 else "keep the lean parser"
    print(f"rule (h11 if < 20 µs over lean): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
