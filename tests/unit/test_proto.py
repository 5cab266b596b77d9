"""The OIP proto: generated modules in step with it, and no client code that imports MLServer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pool

from oip._pb import pb
from oip.proto import regenerate

REPO = Path(__file__).resolve().parents[2]
PROJECT_DIRS = ("bench", "conformance", "fakes", "loadtests", "oip", "peers", "reporting", "tests")
# Model code that MLServer itself runs (custom runtimes of test model repositories; the A/B power
# script's slow runtime is in reference/runtimes/, with the deployment).
MODEL_CODE = ("tests/model_repo", "tests/runtimes")


def test_generated_modules_are_in_step_with_the_proto() -> None:
    expected = regenerate.proto_digest()
    for name in regenerate.MODULES:
        stamped = regenerate.stamped_digest(regenerate.HERE / name)
        assert stamped == expected, (
            f"oip/proto/{name} was generated from another open_inference_grpc.proto "
            f"(sha256 {stamped}, the proto now has {expected}): run python -m oip.proto.regenerate"
        )


def test_messages_live_in_a_private_descriptor_pool() -> None:
    # MLServer registers the same ``inference.*`` names in the default pool.
    assert pb.DESCRIPTOR.pool is not descriptor_pool.Default()


def test_messages_have_the_specs_fields() -> None:
    metadata = pb.ModelMetadataResponse.DESCRIPTOR.fields_by_name["properties"]
    assert metadata.number == 6 and metadata.message_type.GetOptions().map_entry
    entry = metadata.message_type.fields_by_name
    assert entry["value"].type == entry["key"].type  # map<string, string>
    parameter = pb.InferParameter.DESCRIPTOR.fields_by_name
    assert (parameter["double_param"].number, parameter["uint64_param"].number) == (4, 5)
    assert pb.DESCRIPTOR.package == "inference"
    assert [m.name for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods] == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]


def _is_mlserver(module: str) -> bool:
    """MLServer itself and its runtime packages (mlserver_sklearn, mlserver_xgboost, ...)."""
    top = module.split(".")[0]
    return top == "mlserver" or top.startswith("mlserver_")


def _imports_mlserver(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(_is_mlserver(a.name) for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and _is_mlserver(node.module or ""):
            return True
    return False


def test_nothing_outside_reference_imports_mlserver() -> None:
    files = [p.relative_to(REPO) for d in PROJECT_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    offenders = [str(f) for f in files
                 if not str(f).startswith(MODEL_CODE) and _imports_mlserver(REPO / f)]
    assert offenders == [], f"only reference/ may import mlserver; these do: {offenders}"


def test_client_packages_load_without_mlserver() -> None:
    code = ("import sys, oip, oip.precise, oip.grpc_client, reporting.summary, conformance.calls, "
            "loadtests._workload; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlserver'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
