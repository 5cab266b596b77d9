"""Unit tests of the REST and gRPC clients, against loopback only."""

from __future__ import annotations

import dataclasses
import json
import shlex
import socket
import subprocess
from collections.abc import Iterator
from concurrent import futures

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import text_format

from oip import (
    GrpcClient,
    RestClient,
    RestResponse,
    TargetUnreachable,
    build_infer_request,
    build_infer_response,
    describe_request,
    inputs_from_grpc_request,
    model_path,
    outputs_from_grpc_response,
)
from oip._pb import pb, pb_grpc
from oip.names import LOOPBACK


def closed_port() -> int:
    """A loopback port that was just free and now has nothing listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------- REST


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("m",), "/v2/models/m"),
        (("m", None, "/ready"), "/v2/models/m/ready"),
        (("m", "", "/infer"), "/v2/models/m/infer"),
        (("m", "3", "/infer"), "/v2/models/m/versions/3/infer"),
        (("a/b c", "v 1"), "/v2/models/a%2Fb%20c/versions/v%201"),
    ],
)
def test_model_path(args: tuple, path: str) -> None:
    assert model_path(*args) == path


def test_curl_renders_a_json_request() -> None:
    client = RestClient("http://127.0.0.1:8080/")
    body = {"inputs": [{"name": "it's", "shape": [1], "datatype": "BYTES", "data": ["a b"]}]}
    command = client.curl("post", model_path("m", "1", "/infer"), body)
    words = shlex.split(command)
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://127.0.0.1:8080/v2/models/m/versions/1/infer"]
    assert "Content-Type: application/json" in words
    assert "Accept-Encoding: identity" in words
    assert json.loads(words[words.index("--data-binary") + 1]) == body


def test_curl_without_body() -> None:
    command = RestClient("http://127.0.0.1:8080").curl("GET", "/v2/health/ready")
    assert command == ("curl -sS -X GET http://127.0.0.1:8080/v2/health/ready -H 'Accept-Encoding: identity'")


@pytest.mark.parametrize("body", [b"\x00\x01%\\'ab\n\xff", b"@/etc/passwd"])
def test_curl_pipes_binary_or_at_bodies_through_printf(body: bytes) -> None:
    command = RestClient("http://127.0.0.1:8080").curl("POST", "/v2", body, {"X-Test": "1"})
    printf, _, curl = command.partition(" | ")
    assert shlex.split(curl)[-2:] == ["--data-binary", "@-"]
    assert "X-Test: 1" in shlex.split(curl)
    assert subprocess.run(["sh", "-c", printf], capture_output=True, check=True).stdout == body


def test_unreachable_server_raises_target_unreachable() -> None:
    url = f"http://{LOOPBACK}:{closed_port()}"
    with RestClient(url, timeout=5) as client, pytest.raises(TargetUnreachable) as caught:
        client.ready()
    assert caught.value.url == url + "/v2/health/ready"
    assert url in str(caught.value) and "running" in str(caught.value)
    assert isinstance(caught.value, ConnectionError)


def mock_client(status: int, content: bytes, seen: list[httpx.Request]) -> RestClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=content)

    return RestClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))


def test_non_2xx_is_returned_not_raised() -> None:
    seen: list[httpx.Request] = []
    client = mock_client(400, b'{"error": "bad"}', seen)
    response = client.infer("m", {"inputs": []}, version="2")
    assert response.status == 400 and not response.ok
    assert response.json == {"error": "bad"}
    request = seen[0]
    assert request.url.path == "/v2/models/m/versions/2/infer"
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"inputs": []}


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda c: c.live(), "GET", "/v2/health/live"),
        (lambda c: c.ready(), "GET", "/v2/health/ready"),
        (lambda c: c.server_metadata(), "GET", "/v2"),
        (lambda c: c.model_metadata("m"), "GET", "/v2/models/m"),
        (lambda c: c.model_ready("m", "1"), "GET", "/v2/models/m/versions/1/ready"),
        (lambda c: c.post_raw("/v2/models/m/infer", b"{"), "POST", "/v2/models/m/infer"),
        (lambda c: c.get("/v2/nope"), "GET", "/v2/nope"),
    ],
)
def test_endpoint_paths(call, method: str, path: str) -> None:
    seen: list[httpx.Request] = []
    response = call(mock_client(200, b"not json", seen))
    assert (seen[0].method, seen[0].url.path) == (method, path)
    assert response.ok and response.body == b"not json" and response.json is None


def test_post_raw_sends_bytes_verbatim_without_content_type() -> None:
    seen: list[httpx.Request] = []
    mock_client(200, b"", seen).post_raw("/v2/models/m/infer", b"\x00{")
    assert seen[0].content == b"\x00{"
    assert "Content-Type" not in seen[0].headers


def test_rest_response_is_frozen_and_parses_json_lazily() -> None:
    response = RestResponse(200, {}, b"[1, NaN]")
    assert response.json[0] == 1
    assert RestResponse(204, {}, b"").json is None
    assert RestResponse(500, {}, b"\xff").text == "\ufffd"
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = 500  # type: ignore[misc]


# ------------------------------------------------------------- gRPC


class EchoServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Answers ModelInfer with its inputs as outputs, raw if the request was raw."""

    def ServerLive(self, request, context):  # noqa: N802 (gRPC method name)
        return pb.ServerLiveResponse(live=True)

    def ModelInfer(self, request, context):  # noqa: N802
        raw = bool(request.raw_input_contents)
        inputs = inputs_from_grpc_request(request)
        return build_infer_response(request.model_name, inputs, id=request.id, raw=raw)


@pytest.fixture(scope="module")
def echo_target() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port(f"{LOOPBACK}:0")
    server.start()
    yield f"{LOOPBACK}:{port}"
    server.stop(grace=None)


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_client_infer_round_trip(echo_target: str, raw: bool) -> None:
    arrays = {"x": np.arange(4, dtype=np.int32).reshape(2, 2), "s": np.array([b"\x00a"], dtype=object)}
    with GrpcClient(echo_target, timeout=5) as client:
        assert client.live().live is True
        response = client.infer(build_infer_request("m", arrays, id="r1", raw=raw))
    assert response.id == "r1"
    outputs = outputs_from_grpc_response(response)
    assert outputs["x"].tolist() == arrays["x"].tolist()
    assert outputs["s"].tolist() == [b"\x00a"]


def test_grpc_errors_propagate_with_their_code(echo_target: str) -> None:
    with GrpcClient(echo_target, timeout=5) as client, pytest.raises(grpc.RpcError) as caught:
        client.ready()  # not implemented by the echo servicer
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_unreachable_is_unavailable() -> None:
    with (
        GrpcClient(f"{LOOPBACK}:{closed_port()}", timeout=5) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.live()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_describe_request_is_parseable_text_format() -> None:
    request = build_infer_request("m", {"x": np.array([1.5], np.float32)}, id="r1", raw=True)
    text = describe_request(request)
    assert text.startswith("# proto-message: inference.ModelInferRequest\n")
    assert 'model_name: "m"' in text
    assert text_format.Parse(text, pb.ModelInferRequest()) == request
