"""Stopping a process tree by pids: the servers inside it first, then its root, then anything left.

``tritonserver`` outlives its Python parent when that parent is ended by a signal
(SIGTERM from ``timeout``, say), so the peer is never trusted to stop it: the
server is found among the peer's descendants and stopped by its own pid, then the
peer, then every process of the tree seen earlier that still runs (Triton's Python
backend stubs). psutil's process objects remember each process's start time, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterable

import psutil

DEFAULT_GRACE_S = 15.0
KILL_WAIT_S = 5.0
POLL_S = 0.05


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` (children, grandchildren, ...), or [] when it is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def named(processes: Iterable[psutil.Process], names: Iterable[str]) -> list[psutil.Process]:
    """The processes whose executable name is one of ``names``."""
    wanted = set(names)
    found = []
    for process in processes:
        try:
            if process.name() in wanted:
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop(processes: Iterable[psutil.Process], grace_s: float = DEFAULT_GRACE_S,
         sig: int = signal.SIGTERM) -> list[psutil.Process]:
    """Send ``sig`` to each still running process, SIGKILL those still there after ``grace_s``.

    Returns the processes that had to be killed.
    """
    running = [p for p in _unique(processes) if _running(p)]
    for process in running:
        _signal(process, sig)
    alive = _wait_gone(running, grace_s)
    for process in alive:
        _signal(process, signal.SIGKILL)
    _wait_gone(alive, KILL_WAIT_S)
    return alive


def stop_tree(root: int, server_names: Iterable[str], known: Iterable[psutil.Process] = (),
              grace_s: float = DEFAULT_GRACE_S) -> list[psutil.Process]:
    """Stop the servers below ``root`` by their pids, then ``root``, then whatever of its tree is left.

    ``known``: processes of the tree seen earlier (e.g. when it became ready), stopped
    too even if they no longer descend from ``root`` (re-parented after a crash).
    Returns the processes that had to be killed.
    """
    tree = _unique([*known, *descendants(root)])
    try:
        root_process: list[psutil.Process] = [psutil.Process(root)]
    except psutil.Error:
        root_process = []
    killed = stop(named(tree, server_names), grace_s)
    killed += stop(root_process, grace_s)
    killed += stop([p for p in tree if _running(p)], grace_s=min(grace_s, 2.0))
    return killed


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after ``timeout_s`` (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout_s
    alive = processes
    while True:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_S)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(process: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.Error):
        process.send_signal(sig)  # psutil checks the pid still names the same process


def _unique(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    seen: dict[int, psutil.Process] = {}
    for process in processes:
        seen.setdefault(process.pid, process)
    return list(seen.values())
