"""CPU affinity of whole process trees: load generators on some CPUs, servers on the others.

On a small shared machine a closed-loop benchmark is noisy for a reason of its
own: the scheduler moves the load generator and the server between CPUs whose
speed drifts apart (on the 2-core build VM a busy loop's speed varies 9-11 %
from one second to the next). ``python -m bench ab`` therefore pins both
deployments to the same CPUs and both generators to the others, so that A and
B, measured in turns, run on the same CPUs: identical deployments then gave
per-round B/A with a spread (sd of log B/A) of 0.02-0.035, against 0.07-0.09
unpinned (12 rounds of 2 s, 0.1 s turns; see bench/turns.py).

Linux only (``os.sched_setaffinity`` on every thread of every process of the
tree, read from ``/proc``); elsewhere :func:`split` returns None and nothing
is pinned.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")


def available() -> set[int]:
    """The CPUs this process may run on."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def split(cpus: set[int] | None = None) -> tuple[set[int], set[int]] | None:
    """(generator CPUs, server CPUs): the lower half and the upper half; None below 2 CPUs or off Linux."""
    cpus = sorted(available() if cpus is None else cpus)
    if len(cpus) < 2 or not hasattr(os, "sched_setaffinity") or not PROC.is_dir():
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def children(pid: int) -> set[int]:
    """The direct children of ``pid`` (from /proc; empty once it is gone)."""
    tasks = list((PROC / str(pid) / "task").glob("*"))
    if tasks and not (tasks[0] / "children").exists():  # a kernel without CONFIG_PROC_CHILDREN
        return {p for p, parent in _parents().items() if parent == pid}
    out: set[int] = set()
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            out.update(int(c) for c in (task / "children").read_text().split())
    return out


def _parents() -> dict[int, int]:
    out = {}
    for stat in PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    return out


def tree(pid: int) -> set[int]:
    """``pid`` and all its descendants."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children(current))
    return found


def pin_tree(pid: int, cpus: set[int]) -> int:
    """Every thread of ``pid`` and its descendants onto ``cpus``; the number of threads pinned."""
    pinned = 0
    for process in tree(pid):
        for task in (PROC / str(process) / "task").glob("*"):
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)
                pinned += 1
    return pinned


def cpus_of(pid: int) -> set[int]:
    """The CPUs ``pid`` may run on."""
    return set(os.sched_getaffinity(pid))
