"""System tests: the real ``scheduler-app serve`` process, over HTTP, on both databases."""

from __future__ import annotations

import pytest
from support import Server


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/system/" in item.nodeid:
            item.add_marker(pytest.mark.system)


@pytest.fixture
def servers():
    """``servers(database_url, workers=1, env=None)`` starts a server; all are stopped afterwards."""
    started: list[Server] = []

    def start(database_url: str, workers: int = 1, env: dict | None = None, **kw) -> Server:
        server = Server(database_url, workers=workers, env=env, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
