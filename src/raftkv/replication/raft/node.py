"""The asyncio driver of one Raft core, and the Replicator a cluster node serves with.

``RaftNode`` owns a RaftCore and does the driver's duties from DESIGN.md, one Ready
at a time: persist (``RaftLog.save`` on the I/O thread: it fsyncs), then send, then
apply to the state machine, then advance. Nothing steps the core while a Ready is
in flight: messages, ticks and proposals wait in an inbox, so a Ready's entries are
exactly what gets persisted.

``RaftReplicator`` puts a RaftNode behind the service's ``Replicator`` port, so the
service and the fronts do not change between one node and a cluster. On a follower
it forwards writes to the leader over the peer link (``transport.py``): the leader
proposes the command and answers with the index it was applied at; the follower
waits until it has applied that index itself and answers from its own state machine
(deterministic, so the same result - and the client then reads its own write on that
follower). A forwarded command always carries a request id, so the leader applies a
retried one once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from raftkv.core.commands import Command, Result, decode, encode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import (
    CommitTimeout,
    InvalidArgument,
    MembershipRefused,
    NotLeader,
    StorageError,
    Unavailable,
)
from raftkv.replication.raft.core import LEADER, ConfChangeRefused, NotLeaderError, RaftCore
from raftkv.replication.raft.log import RaftLog
from raftkv.replication.raft.messages import EntryKind, Message, Ready
from raftkv.replication.raft.transport import FORWARD, FORWARD_REPLY, PeerLink, PeerNetwork
from raftkv.service.ports import (
    AcceptPeer,
    Consistency,
    Membership,
    ReplicaStatus,
    SnapshotStats,
)
from raftkv.storage import snapshots

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
        self._reads: dict[bytes, list[asyncio.Future[None]]] = {}  # context -> its reads
        self._read_waits: list[tuple[int, asyncio.Future[None]]] = []  # (index, future)
        self._read_ids = (b"%d" % n for n in itertools.count(1))
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raft-io")
        self.heartbeat_at: float | None = None  # monotonic time we last heard the leader
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
        if node_id == self.core.leader and self.core.role != LEADER:
            log.info("every link to the leader %s is down; campaigning without waiting "
                     "for the election timeout", node_id)
        self._push(lambda: self.core.peer_unreachable(node_id))

    def propose(self, command: Command, future: asyncio.Future[Result] | None = None
                ) -> asyncio.Future[Result]:
        """A future (``future``, when given) of the command's result once committed and
        applied; NotLeader now when this node is not the leader (``leader_id`` says
        where to go)."""
        if self.core.role != LEADER:
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
        loop.call_later(self.commit_timeout_s, self._expire, future)
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
                    self._fail_unconfirmed_reads()
                self._apply(rd)
                self.core.advance(rd)
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
        except NotLeaderError:
            for future in reads:
                if not future.done():
                    future.set_exception(Unavailable("no leader is known to confirm the read"))
            return
        self._reads[context] = reads

    def _apply(self, rd: Ready) -> None:
        sm = self.state_machine
        if rd.snapshot is not None and rd.snapshot.index > sm.applied_index:
            loaded = snapshots.parse(rd.snapshot.data, "snapshot from the leader")
            sm.restore_parts(loaded.index, loaded.items, loaded.requests)
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

    def _fail_unconfirmed_reads(self) -> None:
        """Leadership moved: reads waiting for a confirmation will not get one from this
        term. A read changes nothing, so failing it (503) is always safe."""
        rounds, self._reads = self._reads, {}
        for future in itertools.chain.from_iterable(rounds.values()):
            if not future.done():
                future.set_exception(Unavailable("leadership changed before the read was "
                                                 "confirmed; retry"))

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
        image = sm.snapshot()
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._io, snapshots.serialize, image, core.term)
        if image.index <= core.offset:
            return None
        core.compact(image.index, data)
        self._bytes_since_snapshot = 0
        await loop.run_in_executor(self._io, self.raft_log.save, None, [], core.snapshot)
        return SnapshotStats(image.index, len(data), time.perf_counter() - started)

    async def close(self) -> None:
        """After ``run`` ended: make the log durable and fail what can no longer finish."""
        if self.failed is None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.raft_log.sync_now)
        self._io.shutdown(wait=True)
        for _, future in self._proposals.values():  # proposed: they may still commit
            if not future.done():
                future.set_exception(CommitTimeout("the node stopped before the write "
                                                   "committed; the outcome is unknown"))




_CALL = struct.Struct("<Q")
_APPLIED, _NOT_APPLIED, _UNKNOWN = 0, 1, 2  # outcomes of a forwarded write
PROMOTE_CHECK_S = 0.5


class RaftReplicator:
    """The service's Replicator port over a RaftNode (and its peer network)."""

    def __init__(self, node: RaftNode, network: PeerNetwork | None = None,
                 on_start: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        self.node = node
        self.network = network
        self.state_machine = node.state_machine
        self.observers = node.observers
        self.membership: Membership | None = self
        self.accept_peer: AcceptPeer | None = network.accept if network is not None else None
        self._on_start = on_start  # run once beside the loops (founding or joining)
        self._calls: dict[int, tuple[bytes, asyncio.Future[Result]]] = {}

    async def run(self) -> None:
        """The node's Ready loop and ticker, the peer links, learner promotion and
        ``on_start``, until cancelled; a dead Raft loop ends it with the error."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.node.run())
            if self.network is not None:
                tasks.create_task(self.network.run(self))
            tasks.create_task(self._promote_learners())
            if self._on_start is not None:
                tasks.create_task(self._on_start())

    # --- what the peer network hands over (PeerHandler) --------------------------------

    def on_message(self, message: Message) -> None:
        self.node.receive(message)

    def on_peer_unreachable(self, node_id: str) -> None:
        self.node.peer_unreachable(node_id)

    def on_forward(self, link: PeerLink, call: int, payload: bytes) -> None:
        self._serve_forward(link, call, payload)

    def on_forward_reply(self, call: int, payload: bytes) -> None:
        self._on_forward_reply(call, payload)

    # --- the Replicator port ----------------------------------------------------------

    def submit_nowait(self, command: Command, future: asyncio.Future[Result] | None = None
                      ) -> asyncio.Future[Result]:
        core = self.node.core
        if core.role == LEADER or self.network is None:
            return self.node.propose(command, future)
        return self._forward(command, future)

    def read_barrier(self, consistency: Consistency) -> asyncio.Future[None] | None:
        if consistency is Consistency.STALE:
            return None
        core = self.node.core
        if consistency is Consistency.LEADER and core.role == LEADER:
            return None
        if core.role != LEADER and self.network is None:
            raise NotLeader("reads at this consistency are served by the leader", core.leader)
        if core.role != LEADER and core.leader is None:
            raise Unavailable("no leader is known; try again shortly")
        return self.node.read_index()  # on a follower: the leader confirms the index

    def can_propose(self) -> bool:
        return self.node.core.role == LEADER

    def status(self) -> ReplicaStatus:
        node, core = self.node, self.node.core
        heard = node.heartbeat_at
        ago = (None if core.role == LEADER or heard is None
               else int((time.monotonic() - heard) * 1000))
        return ReplicaStatus(core.id, "candidate" if core.role.endswith("candidate")
                             else core.role, core.leader, core.term, core.commit,
                             self.state_machine.applied_index, ago,
                             member=core.id in core.voters or core.id in core.learners,
                             failed=node.failed is not None)

    async def snapshot(self) -> SnapshotStats | None:
        return await self.node.snapshot_now()

    async def close(self) -> None:
        """After ``run`` ended: close the links, make the log durable, and fail the
        forwarded writes still waiting (their outcome is unknown)."""
        if self.network is not None:
            await self.network.close()
        await self.node.close()
        for _, future in self._calls.values():
            if not future.done():
                future.set_exception(CommitTimeout("the node stopped before the leader "
                                                   "answered; the outcome is unknown"))

    async def hand_over(self, wait_s: float = 2.0) -> None:
        """A leader that stops on purpose (SIGTERM) hands over to its most caught-up
        reachable voter first, so the cluster does not wait out an election timeout."""
        core = self.node.core
        if core.role != LEADER or self.network is None or self.node.failed is not None:
            return
        candidates = [(core.progress[v].match, v) for v in core.voters
                      if v != core.id and v in core.progress and self.network.reachable(v)]
        if not candidates:
            return
        _, to = max(candidates)
        self.node.transfer_leadership(to)
        deadline = time.monotonic() + wait_s
        while core.role == LEADER and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if core.role != LEADER:
            log.info("handed leadership over before stopping", extra={"to": to})

    # --- membership -------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        core = self.node.core
        out = []
        for node_id in sorted({*core.voters, *core.learners}):
            progress = core.progress.get(node_id) if core.role == LEADER else None
            out.append({
                "id": node_id,
                "role": "voter" if node_id in core.voters else "learner",
                "isLeader": node_id == core.leader,
                "reachable": node_id == core.id or (self.network is not None
                                                    and self.network.reachable(node_id)),
                "matchIndex": (core.last_index if node_id == core.id else
                               progress.match if progress is not None else None),
            })
        return out

    def change_membership(self, change: str, node_id: str) -> asyncio.Future[Any]:
        """``add-learner`` or ``remove`` (``promote`` happens by itself once caught up)."""
        if self.node.core.role != LEADER:
            leader = self.node.core.leader
            raise NotLeader(f"membership changes are made on the leader ({leader or 'unknown'})",
                            leader)
        return self.node.propose_conf_change(change, node_id)

    def transfer_leadership(self, to: str) -> None:
        core = self.node.core
        if core.role != LEADER:
            raise NotLeader(f"leadership is transferred by the leader "
                            f"({core.leader or 'unknown'})", core.leader)
        if to not in core.voters or to == core.id:
            raise InvalidArgument(f"{to} is not another voter of this cluster")
        self.node.transfer_leadership(to)

    async def _promote_learners(self) -> None:
        """On the leader: a learner whose log has caught up with the commit index
        becomes a voter (etcd's learner promotion, done for the admin)."""
        while True:
            await asyncio.sleep(PROMOTE_CHECK_S)
            core = self.node.core
            if core.role != LEADER:
                continue
            for learner in core.learners:
                progress = core.progress.get(learner)
                if progress is not None and progress.match >= core.commit:
                    try:
                        await self.node.propose_conf_change("promote", learner)
                        log.info("promoted a caught-up learner", extra={"nodeId": learner})
                    except Exception as exc:  # retried next round
                        log.info("promotion of %s deferred: %s", learner, exc)
                    break

    # --- forwarding writes to the leader --------------------------------------------

    def _forward(self, command: Command, future: asyncio.Future[Result] | None = None
                 ) -> asyncio.Future[Result]:
        network, leader = self.network, self.node.core.leader
        assert network is not None
        if leader is None:
            raise Unavailable("no leader is known; the write was not applied")
        if not command.request_id:  # so a duplicate delivery applies once
            command = command.replace(request_id=os.urandom(12))
        call = network.next_call_id()
        if not network.send_frame(leader, FORWARD, _CALL.pack(call) + encode(command)):
            raise Unavailable(f"the leader {leader} is not reachable from this node; "
                              f"the write was not applied")
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._calls[call] = (command.request_id, future)
        asyncio.get_running_loop().call_later(self.node.commit_timeout_s, self._expire_call,
                                              call)
        return future

    def _expire_call(self, call: int) -> None:
        entry = self._calls.pop(call, None)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(CommitTimeout("the leader did not answer in time; the "
                                                 "outcome is unknown"))

    def _on_forward_reply(self, call: int, payload: bytes) -> None:
        entry = self._calls.get(call)
        if entry is None:
            return
        request_id, future = entry
        outcome, body = payload[0], payload[1:]
        if outcome == _APPLIED:
            (index,) = _CALL.unpack_from(body)

            def answer(_: object) -> None:
                self._calls.pop(call, None)
                if future.done():
                    return
                result = self.state_machine.result_for(request_id)
                if result is None:
                    future.set_exception(CommitTimeout("applied, but its result is no "
                                                       "longer tracked"))
                else:
                    future.set_result(result)

            self.node.wait_applied(index).add_done_callback(answer)
            return
        self._calls.pop(call, None)
        message = body.decode(errors="replace")
        if not future.done():
            future.set_exception(Unavailable(message) if outcome == _NOT_APPLIED
                                 else CommitTimeout(message))

    def _serve_forward(self, link: PeerLink, call: int, payload: bytes) -> None:
        def reply(outcome: int, body: bytes) -> None:
            link.send(FORWARD_REPLY, _CALL.pack(call) + bytes([outcome]) + body)

        try:
            command = decode(payload)
            future = self.node.propose(command)
        except NotLeader as exc:
            reply(_NOT_APPLIED, f"{self.node.core.id} is no longer the leader ({exc})".encode())
            return
        except StorageError as exc:
            reply(_NOT_APPLIED, str(exc).encode())
            return
        except ValueError as exc:
            reply(_NOT_APPLIED, f"malformed forwarded command: {exc}".encode())
            return

        def done(f: asyncio.Future[Result]) -> None:
            exc = f.exception() if not f.cancelled() else CommitTimeout("cancelled")
            if exc is None:
                reply(_APPLIED, _CALL.pack(self.state_machine.applied_index))
            elif isinstance(exc, Unavailable | NotLeader):
                reply(_NOT_APPLIED, str(exc).encode())
            else:
                reply(_UNKNOWN, str(exc).encode())

        future.add_done_callback(done)
