"""The delay stand-in (fakes/delay/): right answers, known delays, honest records, V2 errors.

The stand-in runs as child processes on free loopback ports; every request
here is sent one at a time, and timing assertions only check that nothing is
answered early (and that the stand-in's own record is not far off), so they
hold on a busy machine too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest

from fakes import delay_server
from fakes.delay_server import DelayServer, PreciseTimer
from loadtests._workload import GRPC_METHOD, REST_HEADERS, ModelLoad, build_model_load, check_grpc, check_rest
from oip import clock
from oip.names import GRPC_MODEL_METADATA, GRPC_MODEL_READY, GRPC_SERVER_LIVE, LOOPBACK
from reporting.latency import LatencyBook, LatencyHistogram

DELAY_MS = 2.0
SLOW_MS = 8.0
SLOW_EVERY = 5


@pytest.fixture(scope="module")
def server() -> Iterator[DelayServer]:
    with DelayServer(delay_ms=DELAY_MS, slow_every=SLOW_EVERY, slow_ms=SLOW_MS, max_seconds=300) as s:
        yield s


@pytest.fixture(scope="module")
def loads() -> dict[str, ModelLoad]:
    return {name: build_model_load(name, batch_size=1, versioned=True)
            for name in ("mnist-svm", "mushroom-xgboost")}


def by_transport(book: LatencyBook) -> dict[str, LatencyHistogram]:
    out: dict[str, LatencyHistogram] = {}
    for key in book:
        out.setdefault(key.transport, LatencyHistogram()).merge(book.histogram(key))
    return out


def raw_http(port: int, payload: bytes, *, expect_close: bool = False) -> bytes:
    """Send raw bytes, return everything read until the answer(s) stop coming (or the server closes)."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(payload)
        sock.settimeout(None if expect_close else 0.5)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return data
            if not chunk:
                return data
            data += chunk


def post(load: ModelLoad, body: bytes, extra: str = "") -> bytes:
    return (f"POST {load.rest_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ------------------------------------------------------------------ answers


def test_answers_are_right_over_both_transports(server: DelayServer, loads: dict[str, ModelLoad]) -> None:
    connection = httpx.Client(base_url=server.rest_url, timeout=10)
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(GRPC_METHOD)
        for load in loads.values():
            for item in load.items[:3] + load.items[-2:]:
                response = connection.post(load.rest_path, content=item.rest_body, headers=REST_HEADERS)
                assert check_rest(load, item, response.status_code, response.content) is None
                assert check_grpc(load, item, infer(item.grpc_body, timeout=10)) is None
                # the same bytes again: now answered from the cache, still right
                response = connection.post(load.rest_path, content=item.rest_body, headers=REST_HEADERS)
                assert check_rest(load, item, response.status_code, response.content) is None
    connection.close()


def test_each_request_is_held_its_known_delay_and_recorded(server: DelayServer,
                                                           loads: dict[str, ModelLoad]) -> None:
    load = loads["mnist-svm"]
    server.reset()
    intended_s = [(SLOW_MS if (i + 1) % SLOW_EVERY == 0 else DELAY_MS) / 1000 for i in range(10)]
    connection = httpx.Client(base_url=server.rest_url, timeout=10)
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(GRPC_METHOD)
        for i, item in enumerate(load.items[:10]):
            started = time.perf_counter()
            connection.post(load.rest_path, content=item.rest_body, headers=REST_HEADERS)
            assert time.perf_counter() - started >= intended_s[i]  # never early
            started = time.perf_counter()
            infer(item.grpc_body, timeout=10)
            assert time.perf_counter() - started >= intended_s[i]
    connection.close()

    truth, held = (by_transport(book) for book in server.stats())
    assert server.truth().requests() == server.held().requests() == 20
    for transport in ("rest", "grpc"):
        t, h = truth[transport], held[transport]
        assert t.count == h.count == 10
        # every 5th request of each transport is slow: 8 at 2 ms, 2 at 8 ms
        assert t.percentile(80) == pytest.approx(DELAY_MS * 1000, rel=0.002)
        assert t.percentile(90) == t.max == pytest.approx(SLOW_MS * 1000, rel=0.002)
        # held from fully received to answered: never less than meant, and not much more
        assert h.min >= t.min * 0.999
        assert h.max >= t.max * 0.999
        assert h.percentile(50) - t.percentile(50) < 2000


def test_reset_clears_the_record(server: DelayServer, loads: dict[str, ModelLoad]) -> None:
    load = loads["mushroom-xgboost"]
    request = post(load, load.items[0].rest_body, "Connection: close\r\n")
    assert raw_http(server.rest_port, request, expect_close=True).startswith(b"HTTP/1.1 200 ")
    assert server.truth().requests() >= 1
    server.reset()
    assert server.truth().requests() == 0 and server.held().requests() == 0


def test_separate_processes_per_transport(server: DelayServer) -> None:
    pids = server.pids
    assert set(pids) == {"rest", "grpc"} and pids["rest"] != pids["grpc"]
    # the gRPC process's REST port is a control port: stats, reset, health, but no inference
    control = next(c for c in server.children if c.info["grpc_port"]).control_url
    port = int(control.rsplit(":", 1)[1])
    answer = raw_http(port, b"GET /v2/models/mnist-svm/ready HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    answer = raw_http(port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")


# ---------------------------------------------------------------------- HTTP


def test_keep_alive_pipelining_and_connection_close(server: DelayServer, loads: dict[str, ModelLoad]) -> None:
    mnist, mushroom = loads["mnist-svm"], loads["mushroom-xgboost"]
    two = post(mnist, mnist.items[0].rest_body) + post(mushroom, mushroom.items[0].rest_body,
                                                       "Connection: close\r\n")
    data = raw_http(server.rest_port, two, expect_close=True)  # answered in order, then closed
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        assert head.startswith(b"HTTP/1.1 200 ")
        answers.append(json.loads(rest[:length]))
        data = rest[length:]
    assert [a["model_name"] for a in answers] == ["mnist-svm", "mushroom-xgboost"]


def test_a_client_that_leaves_mid_hold_does_not_upset_the_server(server: DelayServer,
                                                                  loads: dict[str, ModelLoad]) -> None:
    load = loads["mnist-svm"]
    with socket.create_connection((LOOPBACK, server.rest_port), timeout=10) as sock:
        sock.sendall(post(load, load.items[1].rest_body))  # held 2 ms, but nobody is left to answer
    time.sleep(3 * SLOW_MS / 1000)
    answer = raw_http(server.rest_port, post(load, load.items[1].rest_body, "Connection: close\r\n"),
                      expect_close=True)
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /v2/health/live HTTP/1.1\r\n\r\n", 200),
    (b"GET /v2/models/mnist-svm/versions/v0.1.0/ready HTTP/1.1\r\n\r\n", 200),
    (b"GET /v2/models/resnet/ready HTTP/1.1\r\n\r\n", 404),
    (b"GET /v2/models/mnist-svm/versions/v9/ready HTTP/1.1\r\n\r\n", 404),
    (b"GET /v2/models/mnist-svm/infer HTTP/1.1\r\n\r\n", 404),
    (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
    (b"POST /v2/models/mnist-svm/infer HTTP/1.1\r\nContent-Length: 5\r\n\r\nnope!", 400),
    (b'POST /v2/models/mnist-svm/infer HTTP/1.1\r\nContent-Length: 13\r\n\r\n{"inputs": 1}', 400),
    (b"POST /v2/models/mnist-svm/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"POST /v2/models/mnist-svm/infer HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),  # a gRPC client on the REST port gets an HTTP/1.1 error
    (b"garbage\r\n\r\n", 400),
])
def test_bad_requests_get_http_errors(server: DelayServer, request_bytes: bytes, status: int) -> None:
    answer = raw_http(server.rest_port, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]


# ---------------------------------------------------------------------- gRPC


def test_grpc_errors_and_health(server: DelayServer, loads: dict[str, ModelLoad]) -> None:
    from oip._pb import pb
    from oip.codec import build_infer_request

    load = loads["mnist-svm"]
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(GRPC_METHOD)
        unknown = build_infer_request("resnet", {"x": [[1.0]]}).SerializeToString()
        for raw, code in ((unknown, grpc.StatusCode.NOT_FOUND),
                          (b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as caught:
                infer(raw, timeout=10)
            assert caught.value.code() == code
        wrong_version = build_infer_request("mnist-svm", {"predict": [[0.0] * 64]}, model_version="v9")
        with pytest.raises(grpc.RpcError) as caught:
            infer(wrong_version.SerializeToString(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        # an empty version is any version; rows outside the held-out set go to the oracle
        unversioned = build_infer_request("mnist-svm", {"predict": np.zeros((1, 64), np.float32)},
                                          datatypes={"predict": "FP32"})
        assert pb.ModelInferResponse.FromString(infer(unversioned.SerializeToString(), timeout=10)).outputs
        item = load.items[0]
        assert check_grpc(load, item, infer(item.grpc_body, timeout=10)) is None

        live = channel.unary_unary(GRPC_SERVER_LIVE,
                                   request_serializer=pb.ServerLiveRequest.SerializeToString,
                                   response_deserializer=pb.ServerLiveResponse.FromString)
        assert live(pb.ServerLiveRequest(), timeout=10).live
        ready = channel.unary_unary(GRPC_MODEL_READY,
                                    request_serializer=pb.ModelReadyRequest.SerializeToString,
                                    response_deserializer=pb.ModelReadyResponse.FromString)
        assert ready(pb.ModelReadyRequest(name="mushroom-xgboost"), timeout=10).ready
        with pytest.raises(grpc.RpcError) as caught:
            ready(pb.ModelReadyRequest(name="resnet"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        metadata = channel.unary_unary(GRPC_MODEL_METADATA)
        with pytest.raises(grpc.RpcError) as caught:
            metadata(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ------------------------------------------------------------ wrong answers


def test_wrong_every_in_one_process(loads: dict[str, ModelLoad]) -> None:
    load = loads["mnist-svm"]
    with DelayServer(delay_ms=0, wrong_every=2, separate=False, max_seconds=120) as server:
        assert server.pids["rest"] == server.pids["grpc"]
        connection = httpx.Client(base_url=server.rest_url, timeout=10)
        problems = []
        for item in load.items[:4]:
            response = connection.post(load.rest_path, content=item.rest_body, headers=REST_HEADERS)
            problems.append(check_rest(load, item, response.status_code, response.content))
        connection.close()
        with grpc.insecure_channel(server.grpc_target) as channel:
            infer = channel.unary_unary(GRPC_METHOD)
            problems += [check_grpc(load, item, infer(item.grpc_body, timeout=10)) for item in load.items[:4]]
    assert [p is None for p in problems] == [True, False] * 4  # one count per process, both transports
    assert all(p.startswith("wrong answer: mnist-svm row") for p in problems if p)


# --------------------------------------------------------------- the timer


@pytest.mark.parametrize(("spin", "budget"), [(0.0, 0.2), (0.0005, 0.2), (0.0005, 0.0)])
@pytest.mark.parametrize("timerfd", [True, False])
def test_precise_timer_runs_callbacks_in_order_and_never_early(monkeypatch: pytest.MonkeyPatch, spin: float,
                                                              budget: float, timerfd: bool) -> None:
    if not timerfd:
        monkeypatch.setattr(delay_server.TimerFd, "available", staticmethod(lambda: False))
    monkeypatch.setattr(clock, "TIMER_SPIN_BUDGET", budget)  # 0: spinning used up, deadlines slept to

    async def run() -> list[tuple[str, float, float]]:
        timer = PreciseTimer(asyncio.get_running_loop(), spin)
        assert timer.precise == (timerfd and delay_server.TimerFd.available())
        fired: list[tuple[str, float, float]] = []
        start = time.monotonic()
        for name, offset in (("c", 0.006), ("a", 0.002), ("b", 0.004), ("a2", 0.002), ("past", -0.001)):
            due = start + offset
            timer.call_at(due, lambda n=name, d=due: fired.append((n, d, time.monotonic())))
        await timer.wait_until(start + 0.008)
        timer.close()
        return fired

    fired = asyncio.run(run())
    assert [name for name, _, _ in fired] == ["past", "a", "a2", "b", "c"]
    assert all(at >= due for _, due, at in fired)


def test_cli_refuses_negative_delays(capsys: pytest.CaptureFixture[str]) -> None:
    assert delay_server.main(["--delay-ms", "-1"]) == 2
    assert "--delay-ms must be 0 or more" in capsys.readouterr().err
