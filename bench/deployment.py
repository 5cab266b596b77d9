"""What the report says about the deployment under test: identity, settings, models."""

from __future__ import annotations

from typing import Any

from oip.rest import RestClient
from reference.catalog import MODELS
from reference.server import ReferenceServer
from reference.train import read_manifest


def server_identity(rest_url: str) -> dict[str, Any]:
    """``GET /v2`` (name, version, extensions), or what went wrong."""
    try:
        with RestClient(rest_url, timeout=5.0) as client:
            response = client.server_metadata()
    except Exception as exc:  # the report records it; it must not stop the run
        return {"error": str(exc)}
    return response.json if response.status == 200 and isinstance(response.json, dict) else {
        "error": f"GET /v2 answered {response.status}"}


def describe(server: ReferenceServer) -> dict[str, Any]:
    models = []
    for deployed in server.models:
        entry: dict[str, Any] = {"name": deployed.name, "version": deployed.version}
        spec = MODELS.get(deployed.name)
        manifest = read_manifest(spec, server.models_dir) if spec else None
        if manifest:
            entry["heldout_accuracy"] = manifest["heldout"]["accuracy"]
            entry["artifact_sha256"] = manifest["artifact"]["sha256"]
        models.append(entry)
    settings = {k: v for k, v in server.settings.items() if not k.endswith("_port")}
    return {
        "target": server.endpoints.rest_url,
        "grpc_target": server.endpoints.grpc_target,
        "server": server_identity(server.endpoints.rest_url),
        "settings": settings,
        "settings_file": str(server.settings_file),
        "models": models,
    }
