"""``python -m bench ab --base REV``: the deployment of git revision REV as side A.

The pull-request benchmark: REV's deployment, with its own code, lock and
models, against the working tree's, measured in turns (:mod:`bench.ab`).

:class:`BaseDeployment` checks REV out in a git work tree under
``.harness/ab-base/worktrees/`` (git-ignored), builds REV's virtualenv with uv
from REV's ``requirements.lock`` (cached under ``.harness/ab-base/venvs/<the
lock's sha256>``, so a lock that did not change is not rebuilt), trains REV's
models with REV's ``python -m reference train``, and serves them with REV's
``python -m reference serve --free-ports`` (REV on ``PYTHONPATH``, so the
shared venv holds no copy of any revision's code). Leaving the ``with`` block
stops the server's process group and removes the work tree, also on errors
and Ctrl-C. The load generator is the working tree's, for both sides.

:func:`step_summary` renders the verdict and its intervals as Markdown for the
CI job summary (``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.errors import HarnessError
from reference.paths import REPO_ROOT, RUNTIME_DIR

BASE_DIR = RUNTIME_DIR / "ab-base"
PYTHON = "3.11"
SERVE_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise HarnessError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _run(command: list[str], what: str, *, cwd: Path, env: dict[str, str], timeout: float) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise HarnessError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-1500:]}")


def lock_hash(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def build_venv(lock: Path, root: Path = BASE_DIR / "venvs") -> Path:
    """A virtualenv of ``lock`` built with uv, reused while the lock is byte for byte the same.

    Built in place (a venv's scripts hold its absolute path), under a file lock, and marked
    complete last: a half-built one (no marker) is thrown away and built again.
    """
    import fcntl

    venv = root / lock_hash(lock)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{venv.name}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another run building the same venv: wait for it
        if (venv / ".complete").exists():
            return venv
        uv = shutil.which("uv")
        if not uv:
            raise HarnessError("uv is not installed: `pip install uv` (it builds the base revision's venv)")
        shutil.rmtree(venv, ignore_errors=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        _run([uv, "venv", "--quiet", "--python", PYTHON, str(venv)], "uv venv", cwd=root, env=env,
             timeout=300)
        _run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", str(lock)],
             f"uv pip install -r {lock}", cwd=root, env=env, timeout=1800)
        (venv / ".complete").write_text(str(lock) + "\n")
    return venv


@dataclass(frozen=True)
class RemoteEndpoints:
    rest_url: str
    grpc_target: str


_REST = re.compile(r"^\s*REST\s+(\S+)")
_GRPC = re.compile(r"^\s*gRPC\s+(\S+)")


def parse_endpoints(lines: list[str]) -> RemoteEndpoints | None:
    """The endpoints ``python -m reference serve`` prints, once both are there."""
    rest = next((m[1] for m in map(_REST.match, lines) if m), None)
    grpc = next((m[1] for m in map(_GRPC.match, lines) if m), None)
    return RemoteEndpoints(rest, grpc) if rest and grpc else None


class BaseDeployment:
    """Revision ``rev``'s deployment on free loopback ports, for the length of a ``with`` block."""

    def __init__(self, rev: str, *, root: Path = BASE_DIR) -> None:
        self.rev = rev
        self.root = root
        self.sha = ""
        self.worktree: Path | None = None
        self.venv: Path | None = None
        self.endpoints: RemoteEndpoints | None = None
        self._process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._previous_sigterm: Any = None

    def __enter__(self) -> BaseDeployment:
        if threading.current_thread() is threading.main_thread():  # SIGTERM (CI cancel) cleans up too
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            remove_stale_worktrees(self.root / "worktrees")
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _env(self) -> dict[str, str]:
        assert self.worktree is not None and self.venv is not None
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return {**env, "PYTHONPATH": str(self.worktree), "VIRTUAL_ENV": str(self.venv),
                "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}

    def _start(self) -> None:
        self.sha = _git("rev-parse", "--verify", f"{self.rev}^{{commit}}")
        self.worktree = self.root / "worktrees" / f"{self.sha[:12]}-{os.getpid()}"
        self.worktree.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "add", "--detach", "--force", str(self.worktree), self.sha)
        lock = self.worktree / "requirements.lock"
        if not lock.exists():
            raise HarnessError(f"revision {self.rev} has no requirements.lock")
        self.venv = build_venv(lock, self.root / "venvs")
        python = str(self.venv / "bin" / "python")
        _run([python, "-m", "reference", "train"], f"{self.rev}: python -m reference train",
             cwd=self.worktree, env=self._env(), timeout=1800)
        # Under the working tree's watchdog: the server goes when this process goes, however it goes.
        serve = ["env", *(f"{k}={v}" for k, v in self._env().items() if k in ("PYTHONPATH", "VIRTUAL_ENV",
                                                                               "PATH")),
                 python, "-u", "-m", "reference", "serve", "--free-ports"]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "reference._watchdog", "--parent-pid", str(os.getpid()), "--grace",
             str(STOP_GRACE_S), "--pidfile", str(self.root / "worktrees" / f"serve-{os.getpid()}.pid"), "--",
             *serve], cwd=self.worktree, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while time.monotonic() < deadline:
            self.endpoints = parse_endpoints(list(self._lines))
            if self.endpoints:
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        raise HarnessError(f"revision {self.rev}'s `python -m reference serve` did not come up:\n"
                           + "".join(self._lines[-30:]))

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)

    @property
    def pid(self) -> int | None:
        """PID of the process tree that serves REV's deployment, once started."""
        return self._process.pid if self._process is not None else None

    def describe(self) -> dict[str, Any]:
        from bench.deployment import server_identity

        assert self.endpoints is not None
        return {"target": self.endpoints.rest_url, "grpc_target": self.endpoints.grpc_target,
                "server": server_identity(self.endpoints.rest_url), "revision": self.sha,
                "lock_sha256": lock_hash(self.worktree / "requirements.lock") if self.worktree else None}

    def close(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL) and remove the work tree."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the watchdog stops the server's group
            try:
                process.wait(STOP_GRACE_S + 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # anything of the group left behind
            (self.root / "worktrees" / f"serve-{os.getpid()}.pid").unlink(missing_ok=True)
        worktree, self.worktree = self.worktree, None
        if worktree is not None:
            with contextlib.suppress(HarnessError, subprocess.SubprocessError):
                _git("worktree", "remove", "--force", str(worktree))
            shutil.rmtree(worktree, ignore_errors=True)
            with contextlib.suppress(HarnessError, subprocess.SubprocessError):
                _git("worktree", "prune")
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_worktrees(folder: Path) -> list[Path]:
    """Work trees left by runs that were killed outright (``<sha>-<pid>``, that pid gone)."""
    removed = []
    for path in sorted(folder.glob("*-*")) if folder.is_dir() else []:
        pid = path.name.rsplit("-", 1)[-1]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(HarnessError, subprocess.SubprocessError):
                _git("worktree", "remove", "--force", str(path))
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        with contextlib.suppress(HarnessError, subprocess.SubprocessError):
            _git("worktree", "prune")
    return removed


def step_summary(summary: dict[str, Any]) -> str:
    """The A/B verdict and every metric's interval, as Markdown for ``$GITHUB_STEP_SUMMARY``."""
    ab = summary.get("ab") or {}
    lines = ["## PR benchmark: A/B against the base branch", "",
             f"**{summary.get('verdict', 'no verdict')}**", "",
             f"A: {ab.get('a_label')}; B: {ab.get('b_label')}; {len(ab.get('a') or [])} of "
             f"{ab.get('rounds')} rounds of {ab.get('round_s')} s, in turns of {ab.get('slot_s')} s; "
             f"{ab.get('interval', 'interval')}; tolerance {ab.get('tolerance', 0):.0%} "
             f"(error rate: {ab.get('error_tolerance', 0) * 100:g} points)", "",
             "| metric | B against A | 95% interval | verdict |", "| --- | --- | --- | --- |"]
    for metric, m in (ab.get("metrics") or {}).items():
        if "estimate" not in m:
            lines.append(f"| {metric} | - | - | {m.get('verdict')} |")
        elif m.get("kind") == "difference":
            lines.append(f"| {metric} | {m['estimate'] * 100:+.3f} points | {m['low'] * 100:+.3f} .. "
                         f"{m['high'] * 100:+.3f} | {m['verdict']} |")
        else:
            lines.append(f"| {metric} | ×{m['estimate']:.3f} | {m['low']:.3f} .. {m['high']:.3f} | "
                         f"{m['verdict']} |")
    return "\n".join(lines) + "\n"


def write_step_summary(summary: dict[str, Any], path: str | os.PathLike | None = None) -> Path | None:
    """Append :func:`step_summary` to ``path`` (default ``$GITHUB_STEP_SUMMARY``); None when unset."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(step_summary(summary))
    return Path(target)


if __name__ == "__main__":  # python -m bench.pr_ab SUMMARY_JSON: the job summary of a finished run
    import json

    sys.exit(0 if write_step_summary(json.loads(Path(sys.argv[1]).read_text())) else 1)
