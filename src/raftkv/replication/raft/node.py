"""The asyncio driver of one Raft core, and the Replicator a cluster node serves with.

``RaftNode`` owns a RaftCore and does the driver's duties from DESIGN.md, one Ready
at a time: persist (``RaftLog.save`` on the I/O thread: it fsyncs), then send, then
apply to the state machine, then advance. Nothing steps the core while a Ready is
in flight: messages, ticks and proposals wait in an inbox, so a Ready's entries are
exactly what gets persisted.

``RaftReplicator`` puts a RaftNode behind the service's ``Replicator`` port, so the
service and the fronts do not change between one node and a cluster. Not yet wired
into ``app.py``: the peer transport and request forwarding are issue 7's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from raftkv.core.commands import Command, Result, decode, encode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import CommitTimeout, NotLeader, Unavailable
from raftkv.replication.raft.core import LEADER, NotLeaderError, RaftCore
from raftkv.replication.raft.log import RaftLog
from raftkv.replication.raft.messages import EntryKind, Message, Ready
from raftkv.service.ports import Consistency, ReplicaStatus, SnapshotStats
from raftkv.storage import snapshots

log = logging.getLogger("raftkv.raft")


class Transport(Protocol):
    def send(self, message: Message) -> None:
        """Best effort, never blocks: Raft tolerates loss, delay and duplication."""


class RaftNode:
    def __init__(self, core: RaftCore, raft_log: RaftLog, state_machine: StateMachine,
                 transport: Transport, tick_s: float = 0.1, commit_timeout_s: float = 5.0,
                 snapshot_every: int = 10_000) -> None:
        self.core = core
        self.raft_log = raft_log
        self.state_machine = state_machine
        self.transport = transport
        self.tick_s = tick_s
        self.commit_timeout_s = commit_timeout_s
        self.snapshot_every = snapshot_every
        self._inbox: deque[Callable[[], None]] = deque()
        self._wakeup = asyncio.Event()
        self._proposals: dict[int, tuple[int, asyncio.Future[Result]]] = {}  # index -> term
        self._reads: dict[bytes, asyncio.Future[None]] = {}
        self._read_waits: list[tuple[int, asyncio.Future[None]]] = []  # (index, future)
        self._read_ids = (b"%d" % n for n in itertools.count(1))
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raft-io")
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.heartbeat_at = 0.0

    # --- inputs (from the loop; handled between Readies) --------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._ticker = loop.create_task(self._tick_forever())

    def receive(self, message: Message) -> None:
        self._push(lambda: self.core.step(message))

    def propose(self, command: Command) -> asyncio.Future[Result]:
        """A future of the command's result once committed and applied; NotLeader now
        when this node is not the leader (``leader_id`` says where to go)."""
        if self.core.role != LEADER:
            raise NotLeader("this node is not the leader", self.core.leader)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        data = encode(command)

        def propose() -> None:
            try:
                index = self.core.propose(data)
            except NotLeaderError as exc:
                future.set_exception(NotLeader("this node is not the leader", exc.leader))
                return
            self._proposals[index] = (self.core.term, future)

        self._push(propose)
        loop = asyncio.get_running_loop()
        loop.call_later(self.commit_timeout_s, self._expire, future)
        return future

    def read_index(self) -> asyncio.Future[None]:
        """Resolves when a read of the local state machine is linearizable (§D 6.4)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        context = next(self._read_ids)

        def read() -> None:
            try:
                self.core.read_index(context)
            except NotLeaderError:
                future.set_exception(Unavailable("no leader is known to confirm the read"))
                return
            self._reads[context] = future

        self._push(read)
        asyncio.get_running_loop().call_later(self.commit_timeout_s, self._expire, future)
        return future

    @staticmethod
    def _expire(future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(CommitTimeout("not confirmed in time; the outcome is unknown"))

    def _push(self, action: Callable[[], None]) -> None:
        self._inbox.append(action)
        self._wakeup.set()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self._push(self.core.tick)

    # --- the Ready loop -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._inbox:
                self._inbox.popleft()()
            while (rd := self.core.ready()) is not None:
                if rd.snapshot is not None or rd.hard_state is not None or rd.entries:
                    await loop.run_in_executor(self._io, self.raft_log.save, rd.hard_state,
                                               rd.entries, rd.snapshot)
                for m in rd.messages:
                    self.transport.send(m)
                self._apply(rd)
                self.core.advance(rd)
                while self._inbox:  # what arrived during the fsync
                    self._inbox.popleft()()
            await self._maybe_compact()

    def _apply(self, rd: Ready) -> None:
        sm = self.state_machine
        if rd.snapshot is not None and rd.snapshot.index > sm.applied_index:
            loaded = snapshots.parse(rd.snapshot.data, "snapshot from the leader")
            sm.restore_parts(loaded.index, loaded.items, loaded.requests)
        for entry in rd.committed:
            if entry.index <= sm.applied_index:
                continue
            proposal = self._proposals.pop(entry.index, None)
            if entry.kind is not EntryKind.NORMAL:
                sm.applied_index = entry.index  # no-ops and membership: nothing to apply
                result = None
            else:
                result = sm.apply(entry.index, decode(entry.data))
            if proposal is None or proposal[1].done():
                continue
            term, waiting = proposal
            if entry.term == term and result is not None:
                waiting.set_result(result)
            else:  # another leader's entry took this index: ours was never applied
                waiting.set_exception(Unavailable("leadership changed before the write "
                                                  "committed; it was not applied"))
        for rs in rd.read_states:
            read = self._reads.pop(rs.context, None)
            if read is not None and not read.done():
                self._read_waits.append((rs.index, read))
        still = []
        for index, read in self._read_waits:
            if sm.applied_index >= index:
                if not read.done():
                    read.set_result(None)
            else:
                still.append((index, read))
        self._read_waits = still

    async def _maybe_compact(self) -> None:
        core, sm = self.core, self.state_machine
        if sm.applied_index - core.offset < self.snapshot_every:
            return
        image = sm.snapshot()
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._io, snapshots.serialize, image, core.term)
        core.compact(image.index, data)
        await loop.run_in_executor(self._io, self.raft_log.save, None, [], core.snapshot)

    async def stop(self) -> None:
        for task in (self._ticker, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._io.shutdown(wait=True)
        for _, future in self._proposals.values():
            if not future.done():
                future.set_exception(Unavailable("the node is shutting down"))


class RaftReplicator:
    """The service's Replicator port over a RaftNode."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.state_machine = node.state_machine

    def submit_nowait(self, command: Command) -> asyncio.Future[Result]:
        return self.node.propose(command)

    def read_barrier(self, consistency: Consistency) -> asyncio.Future[None] | None:
        if consistency is Consistency.STALE:
            return None
        if self.node.core.role != LEADER:
            raise NotLeader("reads at this consistency are served by the leader",
                            self.node.core.leader)
        if consistency is Consistency.LEADER:
            return None
        return self.node.read_index()

    def can_propose(self) -> bool:
        return self.node.core.role == LEADER

    def status(self) -> ReplicaStatus:
        core = self.node.core
        return ReplicaStatus(core.id, "candidate" if core.role.endswith("candidate")
                             else core.role, core.leader, core.term, core.commit,
                             self.state_machine.applied_index, None)

    async def snapshot(self) -> SnapshotStats | None:
        return None  # compaction is automatic (snapshot_every); an explicit one is issue 7's

    async def close(self) -> None:
        await self.node.stop()
