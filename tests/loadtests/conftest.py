"""Load-test fixtures: one reference deployment for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reference.server import ReferenceServer


@pytest.fixture(scope="session")
def reference() -> Iterator[ReferenceServer]:
    """MLServer serving both models on free loopback ports; tests only read from it."""
    with ReferenceServer(ports="free") as server:
        yield server
