"""Mixed V2 inference load: every served model, over REST and gRPC, every answer checked.

Run from the repository root (the reference deployment up: ``python -m reference serve``)::

    locust -f loadtests/                                   # web UI on http://127.0.0.1:8089
    locust -f loadtests/ --headless -u 8 -t 20s            # headless, 20 s
    locust -f loadtests/ --headless --mix mnist-svm=1 --transports grpc --batch-size 4
    locust -f loadtests/ --headless --models-dir tests/model_repo      # any model repository
    locust -f loadtests/ --headless --arrival-rate 200 --arrival poisson -u 16   # open loop
    locust -f loadtests/ --headless --processes -1         # one worker per core

Two User classes, one per transport (``RestInferUser``, ``GrpcInferUser``);
both send through the harness's precise clients unless ``--client stock``.
Their tasks are made at init from the workload (every served model of
``--models-dir``): one per model, tagged with the model, the transport and
``infer`` (``--tags grpc``, ``--exclude-tags mushroom-xgboost``); ``--mix``
weighs them, ``--transports`` the users. ``LoadShape`` is the only shape
class (``--shape``). Options, histograms and the report: ``_runtime`` and the
modules it names; the run's state is ``self.environment.oip_run`` (a ``RunState``).
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from locust import FastHttpUser, LoadTestShape, User, constant

from loadtests import _runtime as runtime
from loadtests._expected import AnyModelLoad
from loadtests._workload import REST_HEADERS, ModelLoad
from oip import h2
from oip.names import GRPC_MODEL_INFER
from oip.precise import Reply

GRPC_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


class RestInferUser(FastHttpUser):
    """V2 REST: POSTs pre-encoded JSON bodies to /v2/models/<model>[/versions/<v>]/infer.

    With ``--client precise`` (the default) each user sends the pre-built
    HTTP/1.1 requests on its own keep-alive connection (:mod:`oip.precise`)
    and times them to the kernel's receive stamp; ``--client stock`` sends
    them through FastHttpUser's ``self.client``.
    """

    transport = "rest"
    model_tasks: dict = {}  # model -> its task, made at init from the workload (_options.task_for)
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = CONNECT_TIMEOUT_S

    def on_start(self) -> None:
        self.oip_run = self.environment.oip_run  # this run's RunState
        self.lane = runtime.Lane(self.oip_run, self.transport)
        self.wire = runtime.http_connection(self.oip_run.plan, self.network_timeout, self.connection_timeout)

    def on_stop(self) -> None:
        if self.wire is not None:
            self.wire.close()
        self.lane.close()

    def infer(self, model: str) -> None:
        bad = runtime.bad_request(self, model)  # --bad-share: this one malformed instead
        if bad is not None:
            runtime.send_bad(self, bad)
            return
        load, item, due = self.lane.next(model)
        if self.wire is None:
            self.infer_stock(load, item, due)
            return
        runtime.send_precise(
            self, "POST", load.rest_path, load.rest_key, due, f"{model} {item.label} over REST",
            lambda: self.wire.exchange(item.rest_request),
            lambda reply: load.check_rest(item, reply.status, reply.body),
        )

    def infer_stock(self, load: ModelLoad | AnyModelLoad, item: Any, due: float | None) -> None:
        lag = runtime.since_intended(due, time.monotonic())
        where = f"{load.name} {item.label} over REST"
        with self.client.request(
            "POST", load.rest_path, data=item.rest_body, headers=REST_HEADERS, name=load.rest_path,
            catch_response=True, context={runtime.CONTEXT_KEY: load.rest_key},
        ) as response:
            if response.status_code == 0:  # no HTTP answer at all
                problem = runtime.problem_of_exception(response.request_meta["exception"], where)
            else:
                answer = response.content or b""
                problem = runtime.as_problem(load.check_rest(item, response.status_code, answer))
            if problem:
                response.request_meta["context"][runtime.PROBLEM_KEY] = problem  # the detail: examples
                response.failure(problem.error)  # Locust groups by it: kind-level, no row
            else:
                response.success()
            if lag:  # open loop: measure from the intended start
                response.request_meta["response_time"] += lag * 1000.0


class GrpcInferUser(User):
    """V2 gRPC: ModelInfer with pre-serialised requests, one connection per user.

    ``--client precise`` (the default) calls over the harness's own HTTP/2
    connection (:mod:`oip.precise`), timed to the kernel's receive stamp;
    ``--client stock`` over a grpcio channel.
    """

    transport = "grpc"
    model_tasks: dict = {}  # model -> its task, made at init from the workload (_options.task_for)
    wait_time = constant(0)

    def on_start(self) -> None:
        self.oip_run = self.environment.oip_run  # this run's RunState
        self.lane = runtime.Lane(self.oip_run, self.transport)
        self.wire = runtime.grpc_connection(self.oip_run.plan, GRPC_TIMEOUT_S, CONNECT_TIMEOUT_S)
        self.channel = None
        if self.wire is None and self.oip_run.plan is not None:  # no plan: the test is not starting
            target = self.oip_run.plan.grpc_target
            self.channel = grpc.insecure_channel(target, options=[
                ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, like a real client
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ])
            # Bytes in, bytes out: the request is already serialised, the answer is parsed by the check.
            self.model_infer = self.channel.unary_unary(GRPC_MODEL_INFER)

    def on_stop(self) -> None:
        if self.wire is not None:
            self.wire.close()
        if self.channel is not None:
            self.channel.close()
        self.lane.close()

    def infer(self, model: str) -> None:
        bad = runtime.bad_request(self, model)  # --bad-share: this one malformed instead
        if bad is not None:
            runtime.send_bad(self, bad)
            return
        load, item, due = self.lane.next(model)
        if self.wire is None:
            self.infer_stock(load, item, due)
            return
        runtime.send_precise(
            self, "gRPC", load.grpc_name, load.grpc_key, due, f"{model} {item.label} over gRPC",
            lambda: self.wire.call(GRPC_MODEL_INFER, item.grpc_body),
            lambda reply: self.check(load, item, reply),
        )

    @staticmethod
    def check(load: ModelLoad | AnyModelLoad, item: Any, reply: Reply) -> str | runtime.Problem | None:
        if reply.status != h2.GRPC_OK:
            status = h2.STATUS_NAMES.get(reply.status, str(reply.status))
            return runtime.grpc_status_problem(status, f"{load.name} {item.label} over gRPC: {status}: "
                                                       f"{reply.details}")
        return load.check_grpc(item, reply.body)

    def infer_stock(self, load: ModelLoad | AnyModelLoad, item: Any, due: float | None) -> None:
        raw = b""
        started = time.perf_counter()
        lag = runtime.since_intended(due, time.monotonic())
        try:
            raw = self.model_infer(item.grpc_body, timeout=GRPC_TIMEOUT_S)
        except grpc.RpcError as exc:
            elapsed = time.perf_counter() - started
            problem = runtime.grpc_status_problem(
                exc.code().name, f"{load.name} {item.label} over gRPC: {exc.code().name}: {exc.details()}")
        else:
            elapsed = time.perf_counter() - started
            problem = load.check_grpc(item, raw)
        runtime.report(self, "gRPC", load.grpc_name, load.grpc_key, elapsed + lag, len(raw), problem)


class LoadShape(LoadTestShape):
    """Users (or the open-loop in-flight limit) over time per --shape; stops at -t or --max-requests."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment if self.runner is not None else None
        return runtime.shape_tick(runtime.run_state(environment), self.get_run_time())
