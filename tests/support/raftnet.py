"""Raft nodes of one event loop joined by an in-memory network: each message arrives
after a small random delay, and a node can be cut off. What the in-process cluster
tests and the service contract suite run on."""

from __future__ import annotations

import asyncio
import random

from raftkv.core.state_machine import StateMachine
from raftkv.replication.raft.core import RaftCore, Role
from raftkv.replication.raft.log import WalRaftLog
from raftkv.replication.raft.messages import Message
from raftkv.replication.raft.node import RaftNode
from raftkv.replication.raft.replicator import RaftReplicator
from tests.support.crashfs import CrashFS
from tests.support.running import Running

IDS = ["n1", "n2", "n3"]


class Net:
    """Delivers messages after a small random delay; a node can be cut off."""

    def __init__(self, seed: int = 5) -> None:
        self.nodes: dict[str, RaftNode] = {}
        self.down: set[str] = set()
        self.rng = random.Random(seed)

    def transport(self, frm: str) -> Net.Link:
        return Net.Link(self, frm)

    class Link:
        def __init__(self, net: Net, frm: str) -> None:
            self.net, self.frm = net, frm

        def send(self, m: Message) -> None:
            net = self.net
            if m.to in net.down or self.frm in net.down or m.to not in net.nodes:
                return
            loop = asyncio.get_running_loop()
            loop.call_later(net.rng.uniform(0, 0.002), lambda: net.deliver(m))

    def deliver(self, m: Message) -> None:
        if m.to not in self.down and m.frm not in self.down and m.to in self.nodes:
            self.nodes[m.to].receive(m)


class Cluster:
    """Three Raft nodes on CrashFS disks, each running as app.py runs it."""

    def __init__(self, seed: int = 5) -> None:
        self.net = Net(seed)
        self.fs = {n: CrashFS() for n in IDS}
        self.replicators: dict[str, RaftReplicator] = {}
        self.running: dict[str, Running] = {}

    def boot(self, node: str, snapshot_every: int = 10_000) -> RaftReplicator:
        raft_log = WalRaftLog(self.fs[node], "/raft")
        stored = raft_log.load()
        core = RaftCore(node, IDS, random.Random(IDS.index(node)), stored.hard_state,
                        stored.entries, snapshot=stored.snapshot, applied=0)
        raft_node = RaftNode(core, raft_log, StateMachine(), self.net.transport(node),
                             tick_s=0.01, commit_timeout_s=3.0, snapshot_every=snapshot_every)
        self.net.nodes[node] = raft_node
        replicator = self.replicators[node] = RaftReplicator(raft_node)
        self.running[node] = Running(replicator)
        return replicator

    async def leader(self, timeout_s: float = 5.0) -> RaftReplicator:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            leaders = [r for n, r in self.replicators.items()
                       if n not in self.net.down and r.node.core.role == Role.LEADER]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(0.01)
        raise AssertionError("no leader")

    async def stop(self, node: str) -> None:
        self.net.down.add(node)
        del self.replicators[node]
        await self.running.pop(node).stop()
        del self.net.nodes[node]

    async def close(self) -> None:
        await asyncio.gather(*(running.stop() for running in self.running.values()))
