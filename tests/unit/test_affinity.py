"""Unit tests of reference.affinity: the CPU split and pinning a whole process tree (Linux only).

The process-tree tests start ``bash -c "bash -c 'sleep 30 & sleep 30; wait'; wait"`` in a
session of its own (a child bash, and two ``sleep`` grandchildren) and kill the whole
process group when they are done, so nothing outlives a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference import affinity

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="reference.affinity reads /proc and uses sched_setaffinity: Linux only")

SCRIPT = "bash -c 'sleep 30 & sleep 30; wait'; wait"
APPEAR_S = 10.0


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


class Family:
    """The started tree: ``top`` (outer bash), ``child`` (inner bash) and ``grandchildren`` (sleeps)."""

    def __init__(self, top: int, child: int, grandchildren: set[int]) -> None:
        self.top, self.child, self.grandchildren = top, child, grandchildren

    @property
    def everyone(self) -> set[int]:
        return {self.top, self.child, *self.grandchildren}


@pytest.fixture
def family() -> Iterator[Family]:
    proc = subprocess.Popen(["bash", "-c", SCRIPT], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + APPEAR_S
        while True:
            parents = affinity._parents()
            kids = [p for p, parent in parents.items() if parent == proc.pid]
            grandkids = {p for p, parent in parents.items() if kids and parent == kids[0]}
            if len(kids) == 1 and len(grandkids) == 2 and all(_comm(p) == "sleep" for p in grandkids):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the tree of bash {proc.pid} did not appear within {APPEAR_S} s: "
                            f"children {kids}, grandchildren {grandkids}")
            time.sleep(0.02)
        yield Family(proc.pid, kids[0], grandkids)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the session's process group: bash, bash and both sleeps
        proc.wait(timeout=10)


# -- split -------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "expected"), [
    ({0, 1}, ({0}, {1})),
    ({0, 1, 2, 3}, ({0, 1}, {2, 3})),
    ({3, 0, 2, 1}, ({0, 1}, {2, 3})),  # by number, whatever the order given
    ({0, 1, 2}, ({0}, {1, 2})),  # an odd CPU goes to the servers
    ({4, 9}, ({4}, {9})),
])
def test_split_lower_half_generators_upper_half_servers(cpus, expected):
    assert affinity.split(cpus) == expected


@pytest.mark.parametrize("cpus", [{5}, set()])
def test_split_below_two_cpus_is_none(cpus):
    assert affinity.split(cpus) is None


def test_split_defaults_to_the_cpus_available():
    available = affinity.available()
    assert available == set(os.sched_getaffinity(0))
    assert affinity.split() == affinity.split(available)


# -- children, _parents, tree ---------------------------------------------------


def test_parents_gives_the_parent_of_each_process(family):
    parents = affinity._parents()
    assert parents[family.child] == family.top
    assert all(parents[p] == family.child for p in family.grandchildren)
    assert parents[family.top] == os.getpid()


def test_children_are_the_direct_children_only(family):
    assert affinity.children(family.top) == {family.child}
    assert affinity.children(family.child) == family.grandchildren


def test_tree_finds_children_and_grandchildren(family):
    assert affinity.tree(family.top) == family.everyone
    assert affinity.tree(family.child) == {family.child, *family.grandchildren}


def test_tree_of_a_process_that_is_gone_is_only_itself():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert affinity.children(proc.pid) == set()
    assert affinity.tree(proc.pid) == {proc.pid}


# -- pin_tree ------------------------------------------------------------------


def test_pin_tree_pins_every_process_of_the_tree(family):
    mine = set(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("one CPU available: pinning to it would change nothing to check")
    cpu = max(mine)
    assert all(affinity.cpus_of(p) == mine for p in family.everyone)  # inherited, not pinned yet
    pinned = affinity.pin_tree(family.top, {cpu})
    assert pinned >= len(family.everyone)  # every thread of every process
    assert {p: affinity.cpus_of(p) for p in family.everyone} == {p: {cpu} for p in family.everyone}
    assert set(os.sched_getaffinity(0)) == mine  # the parent of the tree is untouched
