"""The service over each replicator: a single node's log of one, and the leader of a
three-node Raft cluster in one event loop (simulated transport, CrashFS disks). The
contract tests take ``backend`` and run once per replicator, so a rule of the service
holds for both - or the test says which one broke it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from raftkv.clock import ManualClock
from raftkv.core.eviction import Limits
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS
from tests.support.raftnet import Cluster
from tests.support.running import running


@dataclass
class Node:
    service: KVService
    clock: ManualClock


@contextlib.asynccontextmanager
async def single_node(limits: Limits) -> AsyncIterator[Node]:
    fs = CrashFS()
    replicator = LocalReplicator(recover(fs, "/data"), FsyncPolicy.ALWAYS)
    clock = ManualClock()
    async with running(replicator):
        yield Node(KVService(replicator, clock, ServiceLimits(eviction=limits)), clock)


@contextlib.asynccontextmanager
async def raft_leader(limits: Limits) -> AsyncIterator[Node]:
    cluster = Cluster()
    for node in ("n1", "n2", "n3"):
        cluster.boot(node)
    try:
        leader = await cluster.leader()
        clock = ManualClock()
        yield Node(KVService(leader, clock, ServiceLimits(eviction=limits)), clock)
    finally:
        await cluster.close()


Backend = Callable[..., contextlib.AbstractAsyncContextManager[Node]]


@pytest.fixture(params=[single_node, raft_leader], ids=["single-node", "raft-3"])
def backend(request: pytest.FixtureRequest) -> Callable[[Callable[[Node], Awaitable[None]]],
                                                        None]:
    """``backend(body)`` runs ``async body(node)`` against a fresh node of this kind."""
    make = request.param

    def run(body: Callable[[Node], Awaitable[None]], limits: Limits | None = None) -> None:
        async def go() -> None:
            async with make(limits or Limits()) as node:
                await body(node)
        asyncio.run(asyncio.wait_for(go(), 30))

    return run
