"""The asyncio Raft driver and RaftReplicator: three nodes in one event loop joined by
an in-memory transport, each persisting through a WAL-backed RaftLog on a CrashFS."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.core.commands import IncrBy, Put
from raftkv.errors import NotLeader
from raftkv.replication.raft.core import Role
from raftkv.service.ports import Consistency
from tests.support.raftnet import IDS, Cluster


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def settled(cluster: Cluster, nodes: list[str], index: int) -> None:
    for _ in range(500):
        if all(cluster.replicators[n].state_machine.applied_index >= index for n in nodes):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("followers did not catch up")


def test_writes_commit_and_apply_on_every_node():
    async def go():
        c = Cluster()
        for n in IDS:
            c.boot(n)
        leader = await c.leader()
        results = await asyncio.gather(*(leader.submit_nowait(Put(b"k%d" % i, b"v"))
                                         for i in range(50)))
        assert all(r.ok for r in results)
        last = max(r.revision for r in results)
        await settled(c, IDS, last)
        views = [[e.key for e in r.state_machine.keyspace.scan(0, limit=100)]
                 for r in c.replicators.values()]
        assert views[0] == views[1] == views[2] and len(views[0]) == 50
        follower = next(r for r in c.replicators.values() if r is not leader)
        with pytest.raises(NotLeader) as err:
            follower.submit_nowait(Put(b"x", b"y"))
        assert err.value.leader_id == leader.node.core.id
        await c.close()

    run(go())


def test_the_leader_fails_over_and_a_restarted_node_catches_up():
    async def go():
        c = Cluster()
        for n in IDS:
            c.boot(n, snapshot_every=20)  # compaction and snapshot installs happen too
        leader = await c.leader()
        old = leader.node.core.id
        for _ in range(30):
            await leader.submit_nowait(IncrBy(b"counter", 1))
        await c.stop(old)
        started = asyncio.get_running_loop().time()
        new = await c.leader()
        failover_s = asyncio.get_running_loop().time() - started
        assert new.node.core.id != old and failover_s < 3
        for _ in range(30):
            await new.submit_nowait(IncrBy(b"counter", 1))
        await new.read_barrier(Consistency.LINEARIZABLE)
        assert new.state_machine.keyspace.get(b"counter", 0).value == b"60"
        c.net.down.discard(old)
        back = c.boot(old, snapshot_every=20)  # from its own durable Raft log
        final = await new.submit_nowait(IncrBy(b"counter", 1))
        await settled(c, IDS, final.revision)
        assert back.state_machine.keyspace.get(b"counter", 0).value == b"61"
        assert back.node.core.role != Role.LEADER and back.node.core.leader == new.node.core.id
        await c.close()

    run(go())


def test_a_linearizable_read_needs_the_leader():
    async def go():
        c = Cluster()
        for n in IDS:
            c.boot(n)
        leader = await c.leader()
        await leader.submit_nowait(Put(b"a", b"1"))
        assert await leader.read_barrier(Consistency.LINEARIZABLE) is None
        assert leader.read_barrier(Consistency.LEADER) is None
        follower = next(r for r in c.replicators.values() if r is not leader)
        assert follower.read_barrier(Consistency.STALE) is None
        with pytest.raises(NotLeader):
            follower.read_barrier(Consistency.LINEARIZABLE)
        await c.close()

    run(go())
