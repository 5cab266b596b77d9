"""Before any load: check the target serves every model of the mix on every transport asked for.

Control calls, off the timed path: REST through :class:`oip.rest.RestClient`
(httpx, the harness's client library for control calls), gRPC through
:class:`oip.grpc_client.GrpcClient`. A failure raises :class:`PlanError` with
one line saying what to change; the init hook turns it into exit status 2.
"""

from __future__ import annotations

import logging

import httpx

from ._plan import Plan, PlanError

PREFLIGHT_TIMEOUT_S = 3.0
logging.getLogger("httpx").setLevel(logging.WARNING)  # no INFO line per control call in the run's log


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or str(exc)
    return reason or type(exc).__name__


def check_rest(plan: Plan, versions: dict[str, str]) -> None:
    from oip.errors import TargetUnreachable
    from oip.rest import RestClient, model_path

    with RestClient(plan.rest_url, timeout=PREFLIGHT_TIMEOUT_S) as client:
        try:
            status = client.live().status
        except (TargetUnreachable, httpx.HTTPError) as exc:
            raise PlanError(
                f"cannot reach the REST endpoint {plan.rest_url} ({_reason(exc)}): start the deployment "
                "(python -m reference serve) or point --host at the server"
            ) from None
        if status != 200:
            raise PlanError(f"{plan.rest_url}/v2/health/live answered HTTP {status}, not 200: "
                            "is --host a V2 (Open Inference Protocol) server?")
        for model, version in versions.items():
            path = model_path(model, version or None, "/ready")
            try:
                status = client.model_ready(model, version or None).status
            except (TargetUnreachable, httpx.HTTPError) as exc:
                raise PlanError(f"{plan.rest_url}{path} failed ({_reason(exc)})") from None
            if status != 200:
                what = f"{model} version {version}" if version else model
                raise PlanError(
                    f"{plan.rest_url}{path} answered HTTP {status}: the server does not serve {what} "
                    "(or it is not ready); remove it from --mix or fix the deployment"
                    + ("" if not version else ", or try --path-style unversioned")
                )


def check_grpc(plan: Plan, versions: dict[str, str]) -> None:
    import grpc

    from oip.grpc_client import GrpcClient

    with GrpcClient(plan.grpc_target, timeout=PREFLIGHT_TIMEOUT_S) as client:
        try:
            client.live()
        except grpc.RpcError as exc:
            raise PlanError(
                f"no gRPC endpoint answers at {plan.grpc_target} ({exc.code().name}): pass "
                "--grpc-host HOST:PORT of the server's gRPC port, or --transports rest"
            ) from None
        for model, version in versions.items():
            what = f"{model} version {version}" if version else model
            try:
                ready = client.model_ready(model, version).ready
            except grpc.RpcError as exc:
                raise PlanError(
                    f"the gRPC endpoint {plan.grpc_target} does not serve {what} "
                    f"({exc.code().name}: {exc.details()}); remove it from --mix or fix the deployment"
                ) from None
            if not ready:
                raise PlanError(f"{what} is not ready on the gRPC endpoint {plan.grpc_target}")


def preflight(plan: Plan, transports: list[str]) -> None:
    """Check the target serves every model of the mix on every transport in ``transports``."""
    versions = {m: plan.version(m) for m in plan.mix}
    if "rest" in transports:
        check_rest(plan, versions)
    if "grpc" in transports:
        check_grpc(plan, versions)
