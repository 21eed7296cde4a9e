"""The asyncio driver of one Raft core.

``RaftNode`` owns a RaftCore and does the driver's duties from DESIGN.md, one Ready
at a time: persist (``RaftLog.save`` on the I/O thread: it fsyncs), then send, then
apply to the state machine, then advance. Nothing steps the core while a Ready is
in flight: messages, ticks and proposals wait in an inbox, so a Ready's entries are
exactly what gets persisted. ``run()`` is the Ready loop and the ticker; a log that
cannot be persisted ends it with the error, and the node stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from raftkv.core import image
from raftkv.core.commands import Command, Result, decode, encode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import (
    CommitTimeout,
    MembershipRefused,
    NotLeader,
    StorageError,
    Unavailable,
)
from raftkv.replication.raft.core import ConfChangeRefused, NotLeaderError, RaftCore, Role
from raftkv.replication.raft.log import RaftLog
from raftkv.replication.raft.messages import EntryKind, Message, Ready
from raftkv.service.ports import SnapshotStats

log = logging.getLogger("raftkv.raft")


class Transport(Protocol):
    def send(self, message: Message) -> None:
        """Best effort, never blocks: Raft tolerates loss, delay and duplication."""


class RaftNode:
    def __init__(self, core: RaftCore, raft_log: RaftLog, state_machine: StateMachine,
                 transport: Transport, tick_s: float = 0.1, commit_timeout_s: float = 5.0,
                 snapshot_every: int = 10_000, snapshot_bytes: int = 64 * 1024 * 1024,
                 observe_save: Callable[[float, int], None] | None = None,
                 on_config: Callable[[], None] = lambda: None) -> None:
        self.core = core
        self.raft_log = raft_log
        self.state_machine = state_machine
        self.transport = transport
        self.tick_s = tick_s
        self.commit_timeout_s = commit_timeout_s
        self.snapshot_every = snapshot_every  # compact after this many entries ...
        self.snapshot_bytes = snapshot_bytes  # ... or this many bytes of them
        self._bytes_since_snapshot = 0
        self._inbox: deque[Callable[[], None]] = deque()
        # Proposals since the last turn: appended with one propose_batch, so followers
        # get one append for the lot rather than one per write.
        self._batch: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self.observe_save = observe_save  # (fsync seconds, entries) per persisted Ready
        self._proposals: dict[int, tuple[int, asyncio.Future[Any]]] = {}  # index -> term
        self._read_batch: list[asyncio.Future[None]] = []  # waiting for the next round
        self._reads_parked: list[asyncio.Future[None]] = []  # waiting for a known leader
        self._reads: dict[bytes, list[asyncio.Future[None]]] = {}  # context -> its reads
        self._read_waits: list[tuple[int, asyncio.Future[None]]] = []  # (index, future)
        self._read_ids = (b"%d" % n for n in itertools.count(1))
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raft-io")
        self.heartbeat_at: float | None = None  # monotonic time we last heard the leader
        self.on_leadership: Callable[[], None] | None = None  # after the leader changes
        self.failed: BaseException | None = None  # the log could not be persisted: stop
        self.on_config = on_config  # voters/learners changed
        self._snapshot_waiters: list[asyncio.Future[SnapshotStats | None]] = []
        self.observers: list[Callable[[Command, Result], None]] = []  # after each apply

    # --- inputs (from the loop; handled between Readies) --------------------------------

    async def run(self) -> None:
        """The Ready loop and the ticker, until cancelled. A log that cannot be
        persisted ends it with the error (nothing is acknowledged after it)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._run())
            tasks.create_task(self._tick_forever())

    def receive(self, message: Message) -> None:
        if message.to != self.core.id:
            return
        if message.frm == self.core.leader:
            self.heartbeat_at = time.monotonic()
        self._push(lambda: self.core.step(message))

    def peer_unreachable(self, node_id: str) -> None:
        """Every link to ``node_id`` is down (the transport's word, not a timeout's)."""
        if node_id == self.core.leader and self.core.role != Role.LEADER:
            log.info("every link to the leader %s is down; campaigning without waiting "
                     "for the election timeout", node_id)
        self._push(lambda: self.core.peer_unreachable(node_id))

    def propose(self, command: Command, future: asyncio.Future[Result] | None = None
                ) -> asyncio.Future[Result]:
        """A future (``future``, when given) of the command's result once committed and
        applied; NotLeader now when this node is not the leader (``leader_id`` says
        where to go)."""
        if self.core.role != Role.LEADER:
            raise NotLeader("this node is not the leader", self.core.leader)
        self._check_failed()
        loop = asyncio.get_running_loop()
        if future is None:
            future = loop.create_future()
        self._batch.append((encode(command), future))
        self._wakeup.set()
        loop.call_later(self.commit_timeout_s, self._expire, future)
        return future

    def read_index(self) -> asyncio.Future[None]:
        """Resolves when a read of the local state machine is linearizable (§D 6.4).
        Reads arriving in the same turn share one ReadIndex round (as etcd batches them)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._read_batch.append(future)
        self._wakeup.set()
        loop.call_later(self.commit_timeout_s, self._expire_read, future)
        return future

    def propose_conf_change(self, change: str, node_id: str) -> asyncio.Future[Any]:
        """Resolves once the change is committed and applied (``core.propose_conf_change``)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def propose() -> None:
            try:
                index = self.core.propose_conf_change(change, node_id)
            except NotLeaderError as exc:
                future.set_exception(NotLeader("this node is not the leader", exc.leader))
                return
            except ConfChangeRefused as exc:
                future.set_exception(Unavailable(str(exc)) if exc.retry
                                     else MembershipRefused(str(exc)))
                return
            self._proposals[index] = (self.core.term, future)

        self._push(propose)
        asyncio.get_running_loop().call_later(self.commit_timeout_s, self._expire, future)
        return future

    def transfer_leadership(self, to: str) -> None:
        self._push(lambda: self.core.transfer_leadership(to))

    async def bootstrap(self, voters: list[str]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._push(lambda: future.set_result(self.core.bootstrap(voters)))
        return await future

    def wait_applied(self, index: int) -> asyncio.Future[None]:
        """Resolves once the local state machine has applied ``index``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.state_machine.applied_index >= index:
            future.set_result(None)
        else:
            self._read_waits.append((index, future))
        return future

    def _check_failed(self) -> None:
        if self.failed is not None:
            raise StorageError("the Raft log cannot be written; this node acknowledges "
                               "nothing more until restarted")

    @staticmethod
    def _expire(future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(CommitTimeout("not confirmed in time; the outcome is unknown"))

    @staticmethod
    def _expire_read(future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(Unavailable("no leader confirmed the read in time"))

    def _push(self, action: Callable[[], None]) -> None:
        self._inbox.append(action)
        self._wakeup.set()

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        synced_at = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            self._push(self.core.tick)
            if (not self.raft_log.sync_each_save
                    and time.monotonic() - synced_at >= 1.0):  # --fsync everysec / no
                synced_at = time.monotonic()
                await loop.run_in_executor(self._io, self.raft_log.sync_now)

    # --- the Ready loop -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._ready_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # an fsync that failed cannot be retried safely
            self.failed = exc
            for _, future in self._proposals.values():
                if not future.done():
                    future.set_exception(CommitTimeout("the log failed after proposing"))
            raise

    async def _ready_loop(self) -> None:
        loop = asyncio.get_running_loop()
        conf = (self.core.voters, self.core.learners)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._drain()
            while (rd := self.core.ready()) is not None:
                if rd.snapshot is not None or rd.hard_state is not None or rd.entries:
                    started = time.perf_counter()
                    await loop.run_in_executor(self._io, self.raft_log.save, rd.hard_state,
                                               rd.entries, rd.snapshot)
                    if self.observe_save is not None:
                        self.observe_save(time.perf_counter() - started, len(rd.entries))
                for m in rd.messages:
                    self.transport.send(m)
                if rd.soft_state is not None:
                    self._retry_unconfirmed_reads()
                self._apply(rd)
                self.core.advance(rd)
                if rd.soft_state is not None and self.on_leadership is not None:
                    self.on_leadership()
                self._drain()  # what arrived during the fsync
            if (self.core.voters, self.core.learners) != conf:
                conf = (self.core.voters, self.core.learners)
                self.on_config()
            await self._maybe_compact()

    def _drain(self) -> None:
        inbox = self._inbox
        while inbox:
            inbox.popleft()()
        if self._read_batch:
            self._start_read_round()
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        try:
            indexes = self.core.propose_batch([data for data, _ in batch])
        except NotLeaderError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(NotLeader("this node is not the leader", exc.leader))
            return
        term = self.core.term
        for index, (_, future) in zip(indexes, batch, strict=True):
            self._proposals[index] = (term, future)

    def _start_read_round(self) -> None:
        reads, self._read_batch = self._read_batch, []
        context = next(self._read_ids)
        try:
            self.core.read_index(context)
        except NotLeaderError:  # no leader known: the reads wait for one (or their timeout)
            self._reads_parked += reads
            return
        self._reads[context] = reads

    def _apply(self, rd: Ready) -> None:
        sm = self.state_machine
        if rd.snapshot is not None and rd.snapshot.index > sm.applied_index:
            image.decode(rd.snapshot.data, "the snapshot from the leader").restore(sm)
        for entry in rd.committed:
            if entry.index <= sm.applied_index:
                continue
            self._bytes_since_snapshot += len(entry.data)
            proposal = self._proposals.pop(entry.index, None)
            if entry.kind is not EntryKind.NORMAL:
                sm.applied_index = entry.index  # no-ops and membership: nothing to apply
                result = None
            else:
                command = decode(entry.data)
                result = sm.apply(entry.index, command)
                for observe in self.observers:
                    observe(command, result)
            if proposal is None or proposal[1].done():
                continue
            term, waiting = proposal
            if entry.term == term:
                waiting.set_result(result)
            else:  # another leader's entry took this index: ours was never applied
                waiting.set_exception(Unavailable("leadership changed before the write "
                                                  "committed; it was not applied"))
        for rs in rd.read_states:
            for read in self._reads.pop(rs.context, ()):
                if not read.done():
                    self._read_waits.append((rs.index, read))
        still = []
        for index, read in self._read_waits:
            if sm.applied_index >= index:
                if not read.done():
                    read.set_result(None)
            else:
                still.append((index, read))
        self._read_waits = still

    def _retry_unconfirmed_reads(self) -> None:
        """Leadership moved: reads waiting for a confirmation will not get one from this
        term; they, and the reads parked for want of a leader, go into the next round
        (a read changes nothing, so asking again is always safe). Each still fails at
        its timeout, with a 503."""
        rounds, self._reads = self._reads, {}
        again = [f for f in itertools.chain.from_iterable(rounds.values()) if not f.done()]
        if self.core.leader is not None:
            again += [f for f in self._reads_parked if not f.done()]
            self._reads_parked = []
        self._read_batch += again

    async def _maybe_compact(self) -> None:
        if (self._snapshot_waiters or self._bytes_since_snapshot >= self.snapshot_bytes
                or self.state_machine.applied_index - self.core.offset >= self.snapshot_every):
            stats = await self.compact()
            waiters, self._snapshot_waiters = self._snapshot_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(stats)

    def snapshot_now(self) -> asyncio.Future[SnapshotStats | None]:
        """Compact at the Ready loop's next turn (never while a Ready is in flight)."""
        future: asyncio.Future[SnapshotStats | None] = \
            asyncio.get_running_loop().create_future()
        self._snapshot_waiters.append(future)
        self._push(lambda: None)
        return future

    async def compact(self) -> SnapshotStats | None:
        """Snapshot the state machine into the Raft log and drop the entries it covers.
        Runs between Readies (from the Ready loop, or with the loop idle)."""
        core, sm = self.core, self.state_machine
        if sm.applied_index <= core.offset:
            return None
        started = time.perf_counter()
        state = sm.snapshot()  # a point-in-time copy, on the loop
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._io, image.encode, state)
        if state.index <= core.offset:
            return None
        core.compact(state.index, data)
        self._bytes_since_snapshot = 0
        await loop.run_in_executor(self._io, self.raft_log.save, None, [], core.snapshot)
        return SnapshotStats(state.index, len(data), time.perf_counter() - started)

    async def close(self) -> None:
        """After ``run`` ended: make the log durable and fail what can no longer finish."""
        if self.failed is None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.raft_log.sync_now)
        self._io.shutdown(wait=True)
        for _, future in self._proposals.values():  # proposed: they may still commit
            if not future.done():
                future.set_exception(CommitTimeout("the node stopped before the write "
                                                   "committed; the outcome is unknown"))
