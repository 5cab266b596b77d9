"""Bad input to the conformance suite ends it with one clear message and a non-zero status."""

from __future__ import annotations

import socket

from oip.names import LOOPBACK

EXIT_BAD_TARGET = 4


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _assert_one_clear_message(run, message: str) -> None:
    assert run.returncode == EXIT_BAD_TARGET, run.output[-2000:]
    assert message in run.output, run.output[-2000:]
    for noise in ("Traceback", "Falsifying", "hypothesis"):
        assert noise not in run.output, run.output[-2000:]
    assert "The run stopped early" in run.report and message in run.report


def test_unreachable_target(run_suite) -> None:
    url = f"http://{LOOPBACK}:{closed_port()}"
    _assert_one_clear_message(run_suite("--target-url", url), f"cannot reach --target-url {url}")


def test_target_that_is_not_a_v2_server(reference, run_suite) -> None:
    metrics = f"http://{LOOPBACK}:{reference.endpoints.metrics_port}"  # Prometheus, not V2
    _assert_one_clear_message(run_suite("--target-url", metrics), "does not look like a V2 server")


def test_model_the_suite_cannot_call(reference, run_suite) -> None:
    run = run_suite("--target-url", reference.endpoints.rest_url, "--models", "mnist-svm,no-such-model")
    _assert_one_clear_message(run, "does not serve no-such-model (GET /v2/models/no-such-model/ready")


def test_unreachable_grpc_target(reference, run_suite) -> None:
    target = f"{LOOPBACK}:{closed_port()}"
    run = run_suite("--target-url", reference.endpoints.rest_url, "--grpc-target", target)
    _assert_one_clear_message(run, f"cannot call ServerLive on --grpc-target {target}")
