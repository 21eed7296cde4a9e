from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.node import ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """``start_server(*args, **kw)`` runs a real node; every node is stopped at the end."""
    started: list[ServerProcess] = []

    def start(*args: str, data_dir: Path | None = None, wait: bool = True, **kw) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"data{len(started)}", *args, **kw)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> ServerProcess:
    return start_server()
