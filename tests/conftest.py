from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import SandboxServer, run_sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with run_sandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """A sandbox server on 127.0.0.1 with no rooms, no faults and default options."""
    sandbox_server.reset()
    return sandbox_server
