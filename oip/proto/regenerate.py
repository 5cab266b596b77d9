"""Regenerate the Python modules of the vendored protos: ``python -m oip.proto.regenerate``.

Runs ``grpc_tools.protoc`` (``GRPCIO_TOOLS``, pinned so that the generated code
matches the protobuf runtime of requirements.lock) in a throw-away virtualenv,
rewrites the service module's import to a relative one, and heads both modules
of each proto (``PROTOS``: the OIP proto, and the Triton extensions' messages)
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
# Triton's model repository and statistics extensions (conformance/test_extensions*.py).
EXTENSIONS_PROTO = HERE / "triton_extensions.proto"
PROTOS = (PROTO, EXTENSIONS_PROTO)


def rewrites(proto: Path) -> tuple[tuple[str, str], ...]:
    stem = proto.stem
    return (
        (f"import {stem}_pb2 as", f"from . import {stem}_pb2 as"),
        ("_descriptor_pool.Default().AddSerializedFile(", "_PRIVATE_POOL.AddSerializedFile("),
        ("_sym_db = _symbol_database.Default()\n", "_sym_db = _symbol_database.Default()\n" + PRIVATE_POOL),
    )


def modules_of(proto: Path) -> tuple[str, str]:
    return (f"{proto.stem}_pb2.py", f"{proto.stem}_pb2_grpc.py")


REWRITES = rewrites(PROTO)
MODULES = modules_of(PROTO)
STAMP = "# generated from {proto} sha256={digest} by python -m oip.proto.regenerate\n"


def proto_digest(proto: Path = PROTO) -> str:
    """The sha256 of a vendored proto, as stamped into the generated modules."""
    return hashlib.sha256(proto.read_bytes()).hexdigest()


def stamped_digest(module: Path, proto: Path = PROTO) -> str | None:
    """The proto digest a generated module was made from, or None when unstamped."""
    match = re.match(rf"# generated from {re.escape(proto.name)} sha256=([0-9a-f]{{64}})", module.read_text())
    return match.group(1) if match else None


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        subprocess.run([python, "-m", "pip", "install", "--quiet", GRPCIO_TOOLS], check=True)
        for proto in PROTOS:
            out = Path(scratch) / f"out-{proto.stem}"
            out.mkdir()
            subprocess.run([python, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={out}",
                            f"--grpc_python_out={out}", proto.name], check=True, cwd=HERE)
            stamp = STAMP.format(proto=proto.name, digest=proto_digest(proto))
            modules = modules_of(proto)
            for name in modules:
                text = (out / name).read_text()
                for old, new in rewrites(proto):
                    if old in text:
                        text = text.replace(old, new)
                    elif old.startswith("import ") == (name == modules[1]):  # each rewrite's own module
                        raise SystemExit(f"protoc's output changed: {old!r} is not in {name}; "
                                         "update rewrites")
                (HERE / name).write_text(stamp + text)
            print(f"regenerated {', '.join(modules)} from {proto.name}")


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
