"""Fixtures of the wire tests: independent loopback peers (see wire_peers.py), stopped and checked after."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from wire_peers import Handler, ThreadedPeer


@pytest.fixture
def peer() -> Iterator[Callable[..., ThreadedPeer]]:
    """``peer(handler, connections=1)`` starts a :class:`ThreadedPeer`; all are stopped and checked after."""
    started: list[ThreadedPeer] = []

    def start(handler: Handler, connections: int = 1) -> ThreadedPeer:
        started.append(ThreadedPeer(handler, connections))
        return started[-1]

    yield start
    errors = []
    for each in started:  # stop every peer, then report the first that failed
        try:
            each.stop()
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
    if errors:
        raise errors[0]
