from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.cluster import Cluster
from tests.support.node import ROOT, ServerProcess, free_port


def _stale_compiled_modules() -> list[str]:
    """Modules whose C extension is older than their source (see setup.py):
    Python would import the extension, so the tests would not run the edited code."""
    stale = []
    for line in (ROOT / "compiled-modules.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        source = ROOT / "src" / line
        for extension in source.parent.glob(f"{source.stem}.*.so"):
            if extension.stat().st_mtime < source.stat().st_mtime:
                stale.append(line)
    return stale


def pytest_configure(config: pytest.Config) -> None:
    stale = _stale_compiled_modules()
    if stale:
        pytest.exit(f"compiled modules older than their source: {', '.join(stale)}; "
                    f"`make test` rebuilds them", returncode=2)


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
def pair(start_server, real_redis) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """A raftkv node and the reference redis-server, both as RESP2 clients (the
    differential tests send each command to both)."""
    node = start_server(resp=True)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    yield ours, real_redis
    ours.close()


@pytest.fixture
def start_planted(start_server, tmp_path: Path):
    """``start_planted(source)`` runs a real node whose interpreter first runs
    ``source`` (a planted bug, as sitecustomize: the negative controls); ``ROOT`` in it
    names the repository."""
    def start(source: str) -> ServerProcess:
        plant = tmp_path / "plant"
        plant.mkdir(exist_ok=True)
        (plant / "sitecustomize.py").write_text(source.replace("ROOT", repr(str(ROOT))))
        return start_server(resp=True, env={"PYTHONPATH": str(plant)})
    return start


@pytest.fixture(params=["single-node", "cluster-follower"])
def resp_endpoint(request: pytest.FixtureRequest, start_server, tmp_path: Path
                  ) -> Iterator[tuple[int, Cluster | None]]:
    """The RESP port clients use: a node of its own, or a follower of a three-node
    cluster (then the cluster too, for tests that kill its leader)."""
    if request.param == "single-node":
        yield start_server(resp=True).resp_port, None
        return
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        yield cluster.nodes[follower].resp_port, cluster
    finally:
        cluster.stop()


@pytest.fixture
def server(start_server) -> ServerProcess:
    return start_server()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator:
    """``start_redis(*args)`` runs a real redis-server (the reference in differential
    tests: `make test` installs it) and returns a RESP2 client; all are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[redis.Redis] = []

    def start(*args: str) -> redis.Redis:
        port = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path), *args], stdout=subprocess.DEVNULL))
        client = redis.Redis(port=port, protocol=2)
        clients.append(client)
        for _ in range(200):
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    yield start
    for client in clients:
        client.close()
    for proc in procs:
        proc.terminate()
        proc.wait()


@pytest.fixture
def real_redis(start_redis) -> redis.Redis:
    return start_redis()
