"""The peer's own virtualenv: Debian's Python 3.11 and ``requirements.txt``, built with uv, reused.

Triton's Python backend stub fails under the pyenv-built Python 3.11.7 that
``python3.11`` on PATH is (``'_thread.RLock' object has no attribute
'_recursion_count'`` when a model loads) and works under Debian's
``/usr/bin/python3.11`` (3.11.2, with ``libpython3.11.so.1.0``, which the stub links).
A stamp file in the virtualenv records what it was built from; a second run whose
stamp matches reuses it without calling uv.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers.triton.errors import PeerError

PYTHON = Path("/usr/bin/python3.11")
LIBPYTHON = Path("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
STAMP_NAME = ".triton-peer-stamp.json"
STAMP_SCHEMA = 1
INSTALL_TIMEOUT_S = 900.0
OUTPUT_TAIL_CHARS = 1500


@dataclass(frozen=True)
class PeerVenv:
    """A ready virtualenv: where it is, its interpreter, whether it was reused, how long it took."""

    path: Path
    reused: bool
    seconds: float

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def expected_stamp(requirements: Path = REQUIREMENTS, python: Path = PYTHON) -> dict[str, Any]:
    """What a virtualenv built now from ``requirements`` with ``python`` records."""
    return {
        "schema": STAMP_SCHEMA,
        "python": str(python),
        "python_version": _python_version(python),
        "requirements_sha256": hashlib.sha256(requirements.read_bytes()).hexdigest(),
    }


def read_stamp(venv: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((venv / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def stamp_matches(venv: Path, expected: dict[str, Any]) -> bool:
    """True when ``venv`` has an interpreter and was built from exactly ``expected``."""
    return (venv / "bin" / "python").exists() and read_stamp(venv) == expected


def ensure_venv(venv: Path, requirements: Path = REQUIREMENTS, python: Path = PYTHON) -> PeerVenv:
    """Reuse ``venv`` when its stamp matches, else (re)build it with uv; raises :class:`PeerError`."""
    check_python(python)
    venv = venv.absolute()  # not resolve(): bin/python is a symlink out of the virtualenv
    started = time.monotonic()
    expected = expected_stamp(requirements, python)
    if stamp_matches(venv, expected):
        return PeerVenv(venv, reused=True, seconds=time.monotonic() - started)
    if venv.exists() and not _is_rebuildable(venv):
        raise PeerError(f"{venv} exists and is not a virtualenv: give --venv a new or virtualenv folder")
    (venv / STAMP_NAME).unlink(missing_ok=True)
    uv = find_uv()
    _run([uv, "venv", "--clear", "--python", str(python), str(venv)], "uv venv")
    _run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(requirements)],
         f"uv pip install -r {requirements}")
    (venv / STAMP_NAME).write_text(json.dumps(expected, indent=2) + "\n")
    return PeerVenv(venv, reused=False, seconds=time.monotonic() - started)


def check_python(python: Path = PYTHON) -> None:
    if not python.exists():
        raise PeerError(f"{python} is missing: the Triton peer needs Debian's Python 3.11 (apt-get install "
                        "python3.11 libpython3.11); pyenv's 3.11.7 fails in Triton's Python stub")
    if python == PYTHON and not LIBPYTHON.exists():
        raise PeerError(f"{LIBPYTHON} is missing: Triton's Python backend stub links it "
                        "(apt-get install libpython3.11)")


def find_uv() -> str:
    """uv beside this interpreter (a tox env with uv in its deps), else the ``uv`` package, else PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise PeerError("uv is not installed: pip install uv==0.13.9 (it builds the peer's virtualenv)")
    return found


def _python_version(python: Path) -> str:
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeerError(f"{python} does not run: {exc}") from None
    return out.stdout.strip()


def _is_rebuildable(venv: Path) -> bool:
    return (venv / "pyvenv.cfg").is_file() or (venv.is_dir() and not any(venv.iterdir()))


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-OUTPUT_TAIL_CHARS:]
        raise PeerError(f"{what} failed (exit {done.returncode}) building the Triton peer's virtualenv: "
                        f"{' '.join(output.split())}")
