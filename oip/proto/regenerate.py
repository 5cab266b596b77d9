"""Regenerate the Python modules of the vendored OIP proto: ``python -m oip.proto.regenerate``.

Runs ``grpc_tools.protoc`` (``GRPCIO_TOOLS``, pinned so that the generated code
matches the protobuf runtime of requirements.lock) in a throw-away virtualenv,
rewrites the service module's import to a relative one, and heads both modules
with the sha256 of the proto they came from, which ``tests/unit/test_proto.py``
checks.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "open_inference_grpc.proto"
# grpcio-tools 1.78.0 emits gencode for protobuf 6.31.1, which the locked runtime
# (protobuf 6.33.6, capped below 7 by mlserver 1.7.1) loads; 1.80+ needs protobuf 7.
GRPCIO_TOOLS = "grpcio-tools==1.78.0"
# A private descriptor pool: MLServer's generated code registers the same
# ``inference.*`` names in the default pool, and one process (the in-process
# oracle beside the harness's clients) may need both.
PRIVATE_POOL = (
    "# A private pool, so that a server's own copy of the same package can be imported beside it.\n"
    "_PRIVATE_POOL = _descriptor_pool.DescriptorPool()\n"
)
REWRITES = (
    ("import open_inference_grpc_pb2 as", "from . import open_inference_grpc_pb2 as"),
    ("_descriptor_pool.Default().AddSerializedFile(", "_PRIVATE_POOL.AddSerializedFile("),
    ("_sym_db = _symbol_database.Default()\n", "_sym_db = _symbol_database.Default()\n" + PRIVATE_POOL),
)
MODULES = ("open_inference_grpc_pb2.py", "open_inference_grpc_pb2_grpc.py")
STAMP = "# generated from open_inference_grpc.proto sha256={digest} by python -m oip.proto.regenerate\n"


def proto_digest() -> str:
    """The sha256 of the vendored proto, as stamped into the generated modules."""
    return hashlib.sha256(PROTO.read_bytes()).hexdigest()


def stamped_digest(module: Path) -> str | None:
    """The proto digest a generated module was made from, or None when unstamped."""
    match = re.match(r"# generated from open_inference_grpc\.proto sha256=([0-9a-f]{64})", module.read_text())
    return match.group(1) if match else None


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        subprocess.run([python, "-m", "pip", "install", "--quiet", GRPCIO_TOOLS], check=True)
        out = Path(scratch) / "out"
        out.mkdir()
        subprocess.run([python, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={out}",
                        f"--grpc_python_out={out}", PROTO.name], check=True, cwd=HERE)
        stamp = STAMP.format(digest=proto_digest())
        for name in MODULES:
            text = (out / name).read_text()
            for old, new in REWRITES:
                if old in text:
                    text = text.replace(old, new)
                elif name == MODULES[0] or old.startswith("import "):
                    raise SystemExit(f"protoc's output changed: {old!r} is not in {name}; update REWRITES")
            (HERE / name).write_text(stamp + text)
    print(f"regenerated {', '.join(MODULES)} from {PROTO.name}")


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
