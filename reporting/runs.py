"""Run folders: unique, never overwritten, with a stable ``latest`` pointer."""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reference.paths import REPO_ROOT, REPORTS_DIR

LATEST = "latest"


def git_revision(repo: Path = REPO_ROOT) -> str:
    """The harness's git revision (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo,
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


@dataclass
class Run:
    kind: str
    run_id: str
    path: Path
    started: datetime
    meta: dict[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, value: Any) -> Path:
        """Write ``value`` as JSON atomically (a crash never leaves half a file)."""
        target = self.file(name)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, target)
        return target

    def write_text(self, name: str, text: str) -> Path:
        target = self.file(name)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
        return target


def new_run(kind: str, *, root: Path = REPORTS_DIR, label: str = "") -> Run:
    """Create ``root/kind/<run-id>/`` (UTC time + random suffix) and point ``latest`` at it."""
    started = datetime.now(UTC)
    base = root / kind
    base.mkdir(parents=True, exist_ok=True)
    suffix = f"-{label}" if label else ""
    while True:
        run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}{suffix}"
        path = base / run_id
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    _point_latest(base, run_id)
    return Run(kind, run_id, path, started, {"revision": git_revision(), "machine": machine()})


def _point_latest(base: Path, run_id: str) -> None:
    """Point ``base/latest`` at ``run_id`` atomically; ``LATEST`` (text) is for tools without symlinks."""
    link = base / LATEST
    tmp = base / f".{LATEST}.{secrets.token_hex(4)}"
    os.symlink(run_id, tmp)
    os.replace(tmp, link)
    (base / "LATEST").write_text(run_id + "\n")


def latest_run(kind: str, *, root: Path = REPORTS_DIR) -> Path | None:
    link = root / kind / LATEST
    return link.resolve() if link.exists() else None
