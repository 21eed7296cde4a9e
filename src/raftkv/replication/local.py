"""The single-node write path: a WAL of one.

``submit`` gives a command the next log index, hands its record to the group-commit
writer, and resolves once the record is durable per ``--fsync`` *and* applied: the
writer reports whole batches durable, and this class applies them in index order
before answering anyone, so a cancelled caller can never leave a hole in the log.
Snapshots are taken here when the WAL has grown by ``snapshot_threshold_bytes``:
captured on the loop (a cheap copy), serialized and written on a thread.

Lifecycle (ARCHITECTURE.md rule 6): the constructor starts nothing; ``run()`` takes
the snapshots that fall due and the ``everysec`` fsyncs, and raises when the WAL
dies, so the node stops; ``close()`` drains and fsyncs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from raftkv.core import image
from raftkv.core.commands import Command, Result, encode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import StorageError, Unavailable
from raftkv.replication.replay import Recovered
from raftkv.service.ports import (
    AcceptPeer,
    Consistency,
    LeaderCalls,
    Membership,
    ReplicaStatus,
    SnapshotStats,
)
from raftkv.storage import records
from raftkv.storage.log_store import EntryKind
from raftkv.storage.snapshots import Snapshot
from raftkv.storage.wal import FsyncPolicy, WalWriter

log = logging.getLogger("raftkv.replication")

_NORMAL: Final = int(EntryKind.NORMAL)  # a single node logs commands only

Pending = tuple[int, Command, "asyncio.Future[Result]"]


class LocalReplicator:
    """Implements the service's ``Replicator`` port for one node."""

    def __init__(self, recovered: Recovered, policy: FsyncPolicy, node_id: str = "n1",
                 segment_max_bytes: int = 64 * 1024 * 1024,
                 snapshot_threshold_bytes: int = 64 * 1024 * 1024,
                 observe_batch: Callable[[float | None, int], None] | None = None,
                 observe_snapshot: Callable[[SnapshotStats], None] | None = None) -> None:
        self.node_id = node_id
        self.state_machine: StateMachine = recovered.state_machine
        self._store = recovered.store
        self._store.segment_max_bytes = segment_max_bytes
        self._next_index = self.state_machine.applied_index + 1  # (every entry replayed)
        self._writer: WalWriter[Pending] = WalWriter(
            self._store, policy, self._apply_batch, self._fail_batch, observe_batch)
        self._snapshot_threshold = snapshot_threshold_bytes
        self._bytes_since_snapshot = 0
        self._snapshot_due = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()  # one snapshot at a time (due, or asked for)
        self._observe_snapshot = observe_snapshot
        self._closing = False
        self.observers: list[Callable[[Command, Result], None]] = []
        self.membership: Membership | None = None  # one node: no cluster to change
        self.accept_peer: AcceptPeer | None = None  # and no peers

    @property
    def writer(self) -> WalWriter[Pending]:
        return self._writer

    def submit_nowait(self, command: Command, future: asyncio.Future[Result] | None = None
                      ) -> asyncio.Future[Result]:
        """Queue ``command``; the future resolves with its result once durable and applied."""
        if self._closing:
            raise Unavailable("the node is shutting down")
        if future is None:
            future = asyncio.get_running_loop().create_future()
        index = self._next_index
        record = records.frame_entry(index, 0, _NORMAL, encode(command))
        self._writer.append(index, record, (index, command, future))
        self._next_index = index + 1
        self._bytes_since_snapshot += len(record)
        return future

    async def submit(self, command: Command) -> Result:
        return await self.submit_nowait(command)

    def read_barrier(self, consistency: Consistency) -> None:
        """Every level reads locally on one node: each acknowledged write is already
        applied to the state a read sees, so a local read is linearizable."""
        return None

    def can_propose(self) -> bool:
        return not self._closing and self._writer.failed is None

    def serve_calls(self, calls: LeaderCalls) -> None:
        """One node: no other node calls it."""

    def call_leader(self, payload: bytes) -> asyncio.Future[bytes]:
        """One node: it leads, so there is no other to call."""
        raise Unavailable("this node leads: its service serves the call itself")

    def status(self) -> ReplicaStatus:
        applied = self.state_machine.applied_index
        return ReplicaStatus(self.node_id, "leader", self.node_id, 1, applied, applied, None,
                             failed=self.writer.failed is not None)

    def _apply_batch(self, batch: list[Pending]) -> None:
        apply = self.state_machine.apply
        observers = self.observers
        for index, command, future in batch:
            result = apply(index, command)
            for observe in observers:
                observe(command, result)
            if not future.done():
                future.set_result(result)
        if self._bytes_since_snapshot >= self._snapshot_threshold:
            self._snapshot_due.set()

    def _fail_batch(self, batch: list[Pending], error: StorageError) -> None:
        # The failed records were cut off the log (or the log is dead), and every
        # record queued after them failed too: the next write reuses the first index.
        if batch:
            self._next_index = min(self._next_index, batch[0][0])
        for _, _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._writer.run())
            while True:
                await self._snapshot_due.wait()
                self._snapshot_due.clear()
                # Shielded: a snapshot under way finishes even when the node stops.
                await asyncio.shield(self.snapshot())

    async def snapshot(self) -> SnapshotStats | None:
        """Write a snapshot of the applied state and drop the WAL segments it covers."""
        async with self._snapshot_lock:
            return await self._snapshot()

    async def _snapshot(self) -> SnapshotStats | None:
        try:
            started = time.perf_counter()
            state = self.state_machine.snapshot()  # a point-in-time copy, on the loop
            self._bytes_since_snapshot = 0
            # (entries applied since the loop woke for this snapshot set it due again:
            # they are in this one, so it is due only once the log grows anew)
            self._snapshot_due.clear()
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, image.encode, state)
            snapshot = Snapshot(state.index, 0, data)
            size = await loop.run_in_executor(None, self._store.write_snapshot, snapshot)
            await self._writer.run_blocking(self._store.drop_covered)  # (the log's thread)
            stats = SnapshotStats(state.index, size, time.perf_counter() - started)
            if self._observe_snapshot is not None:
                self._observe_snapshot(stats)
            log.info("snapshot written", extra={"index": state.index, "bytes": size})
            return stats
        except OSError as exc:
            log.error("snapshot failed: %s", exc)
            return None

    async def hand_over(self) -> None:
        """Nothing to hand over: a single node leads alone."""

    async def close(self) -> None:
        """Stop taking writes, finish an in-progress snapshot, drain and fsync the WAL."""
        self._closing = True
        async with self._snapshot_lock:
            await self._writer.close()

