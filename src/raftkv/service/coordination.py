"""Leases, locks and elections: the coordination recipes (DATA-MODEL.md section 6).

**Leases** are replicated state (``core/leases.py``): granted, kept alive and revoked
by log entries, and revoked when they run out by the leader alone, whose expiry cycle
proposes it (the entry checks the deadline again where it applies).

**A lock** ``name`` is a key ``_raftkv/locks/<name>/<lease id in hex>`` put on the
holder's lease; contenders queue by the key's create revision and the holder is the
one whose key is oldest. Its **fencing token** is that create revision: it only
grows, a later holder always has a larger one, and writes can carry it as a compare
(``createRevision`` of the lock's key equals the token, in ``POST /v1/txn``) so a
holder that lost the lock (its lease ran out while it was paused) cannot write. A
contender waits by watching the lock's keys from the revision it queued at (no change
between the two is missed) and looks again at each deletion. Release deletes the key
only if its create revision is still the token, so a retried release never frees a
newer holder, even one on the same lease.

**An election** ``name`` is the same recipe under ``_raftkv/elections/<name>/`` with a
value: the leader is the oldest candidate, and its value is what observers see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from raftkv.core.commands import (
    Compare,
    Delete,
    Entry,
    LeaseExpire,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Read,
    Relation,
    Result,
    Target,
    TxnResult,
)
from raftkv.core.history import DELETE, EVICT, EXPIRE, FLUSH, Event
from raftkv.core.leases import MAX_TTL_MS, MIN_TTL_MS
from raftkv.deferred import MaybeDeferred, when
from raftkv.errors import InvalidArgument, NotFound, WaitTimedOut
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService, validate_key

log = logging.getLogger("raftkv.coordination")
T = TypeVar("T")

LOCKS: Final = b"_raftkv/locks/"
ELECTIONS: Final = b"_raftkv/elections/"
LEASE_EXPIRY_BATCH: Final = 100
LEASE_CYCLE_S: Final = 0.1
MAX_CONTENDERS: Final = 100_000
MAX_NAME_BYTES: Final = 512


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: int
    ttl_ms: int
    remaining_ms: int  # until the deadline, on this node's clock (0: ran out)
    keys: list[bytes]


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock or leads an election: the key, its lease, the token."""

    name: bytes
    key: bytes
    lease_id: int
    token: int  # the key's create revision
    value: bytes


class Coordinator:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self._machine = service.replicator.state_machine

    # --- leases ------------------------------------------------------------------

    def grant(self, ttl_ms: int, lease_id: int = 0, request_id: bytes = b""
              ) -> asyncio.Future[Result]:
        """A new lease (``affected`` of the result is its id; CONDITION_FAILED: the id
        asked for is in use)."""
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise InvalidArgument(f"a lease's ttlMs must be between {MIN_TTL_MS} and "
                                  f"{MAX_TTL_MS}")
        if not 0 <= lease_id < 2**63:
            raise InvalidArgument("a lease id is a positive 64-bit integer")
        return self.service.submit(LeaseGrant(lease_id, ttl_ms, request_id, self._now_ms()))

    def keep_alive(self, lease_id: int) -> asyncio.Future[Result]:
        """Move the lease's deadline a TTL from now (NOT_FOUND: it is gone)."""
        return self.service.submit(LeaseKeepAlive(_lease_id(lease_id), b"", self._now_ms()))

    def revoke(self, lease_id: int, request_id: bytes = b"") -> asyncio.Future[Result]:
        """End the lease and delete its keys (NOT_FOUND: it is gone)."""
        return self.service.submit(LeaseRevoke(_lease_id(lease_id), request_id,
                                               self._now_ms()))

    def lease(self, lease_id: int, consistency: Consistency = Consistency.LINEARIZABLE
              ) -> MaybeDeferred[LeaseInfo | None]:
        def read(_: object) -> LeaseInfo | None:
            lease = self._machine.leases.by_id.get(lease_id)
            if lease is None:
                return None
            remaining = max(0, lease.deadline_ms - self._now_ms())
            return LeaseInfo(lease.lease_id, lease.ttl_ms, remaining, sorted(lease.keys))

        return self._read(read, consistency)

    def lease_of(self, key: bytes) -> int:
        """The lease ``key`` is on in this node's applied state (0: none)."""
        return self._machine.leases.of_key.get(key, 0)

    def leases(self, consistency: Consistency = Consistency.LINEARIZABLE
               ) -> MaybeDeferred[list[int]]:
        return self._read(lambda _: sorted(self._machine.leases.by_id), consistency)

    async def run(self) -> None:
        """The lease expiry cycle, until cancelled (as the keys' one in the service)."""
        while True:
            await asyncio.sleep(LEASE_CYCLE_S)
            try:
                await self.expire_due()
            except Exception as exc:  # retried next cycle; logged, never lost
                log.warning("lease expiry cycle failed: %s", exc)

    async def expire_due(self) -> int:
        """Propose the revocation of leases past their deadline, where this node orders
        writes (a follower's clock never ends a lease)."""
        if not self.service.replicator.can_propose():
            return 0
        now_ms = self._now_ms()
        due = self._machine.leases.due(now_ms, LEASE_EXPIRY_BATCH)
        if not due:
            return 0
        result = await self.service.submit(LeaseExpire(tuple(due), b"", now_ms))
        return result.affected

    # --- locks and elections -----------------------------------------------------

    async def acquire(self, space: bytes, name: bytes, lease_id: int, value: bytes = b"",
                      wait_s: float | None = None) -> Holder:
        """Hold lock (or lead election) ``name`` of ``space`` (LOCKS or ELECTIONS) on
        ``lease_id``: queue, then wait (at most ``wait_s``; None: for ever) until every
        older contender is gone. WaitTimedOut leaves the queue; NotFound: the lease is
        gone (or ran out while waiting)."""
        return await self.acquire_in(_queue_prefix(space, name), name, lease_id, value,
                                     wait_s)

    async def acquire_in(self, queue: bytes, name: bytes, lease_id: int, value: bytes = b"",
                         wait_s: float | None = None) -> Holder:
        """``acquire`` with the queue's key prefix given (etcd's gateway names its locks
        ``<name>/<lease id in hex>``, as etcd does)."""
        key = queue + b"%x" % _lease_id(lease_id)
        now_ms = self._now_ms()
        put = Put(key, value, now_ms=now_ms, lease=lease_id)
        # join the queue (a lease already in it keeps its place: re-entrant, as etcd)
        result = await self.service.transaction(
            [Compare(key, Target.CREATE_REVISION, Relation.EQUAL, 0)], [put],
            [Read(key, b"", now_ms)])
        assert isinstance(result, TxnResult)
        if result.failed_at >= 0:  # (the put's lease is gone)
            raise NotFound(f"lease {lease_id} does not exist")
        step = result.results[0]
        mine = step.entry
        assert mine is not None
        changes = _Deletions()
        watch = self.service.watch_changes(queue, False, result.revision, changes, 3600.0)
        try:
            deadline = None if wait_s is None else asyncio.get_running_loop().time() + wait_s
            first = True
            while True:
                if changes.lost:  # (the history was compacted under us: watch from now)
                    changes.lost = False
                    if watch is not None:
                        watch.cancel()
                    watch = self.service.watch_changes(queue, False, self._machine.applied_index,
                                                       changes, 3600.0)
                contenders = await self._contenders(queue, first)
                first = False
                ours = next((c for c in contenders if c.key == key), None)
                if ours is None or ours.create_revision != mine.create_revision:
                    raise NotFound(f"lease {lease_id} ran out while waiting for {name!r}")
                if contenders[0].key == key:
                    return Holder(name, key, lease_id, ours.create_revision, ours.value)
                try:
                    await changes.wait(None if deadline is None else
                                       deadline - asyncio.get_running_loop().time())
                except TimeoutError:
                    await self.release_key(key, mine.create_revision)
                    raise WaitTimedOut(f"{name.decode(errors='replace')!r} is still held "
                                       f"after {wait_s:g} s; gave up waiting") from None
        finally:
            if watch is not None:
                watch.cancel()

    async def _contenders(self, queue: bytes, linearizable: bool) -> list[Entry]:
        """The keys queued for a lock or election, oldest first."""
        level = Consistency.LINEARIZABLE if linearizable else Consistency.STALE
        found = self.service.list_entries(queue, None, MAX_CONTENDERS, level)
        entries = found if isinstance(found, list) else await found
        return sorted(entries, key=lambda entry: entry.create_revision)

    def release(self, space: bytes, name: bytes, lease_id: int, token: int
                ) -> asyncio.Future[Result]:
        """Leave lock (or election) ``name`` if the hold with ``token`` is still there
        (the result's ``succeeded`` says whether it was)."""
        return self.release_key(_queue_prefix(space, name) + b"%x" % _lease_id(lease_id),
                                token)

    def release_key(self, key: bytes, token: int) -> asyncio.Future[Result]:
        """Delete a hold's ``key`` if its create revision is still ``token``."""
        return self.service.transaction(
            [Compare(key, Target.CREATE_REVISION, Relation.EQUAL, token)],
            [Delete(key, now_ms=self._now_ms())], [])

    def holder(self, space: bytes, name: bytes,
               consistency: Consistency = Consistency.LINEARIZABLE
               ) -> MaybeDeferred[Holder | None]:
        """Who holds the lock (leads the election) now; None: nobody."""
        return self.holder_in(_queue_prefix(space, name), name, consistency)

    def holder_in(self, queue: bytes, name: bytes,
                  consistency: Consistency = Consistency.LINEARIZABLE
                  ) -> MaybeDeferred[Holder | None]:
        """``holder`` with the queue's key prefix given."""

        def oldest(entries: list[Entry]) -> Holder | None:
            if not entries:
                return None
            first = min(entries, key=lambda entry: entry.create_revision)
            lease_id = self._machine.leases.of_key.get(first.key, 0)
            return Holder(name, first.key, lease_id, first.create_revision, first.value)

        return when(self.service.list_entries(queue, None, MAX_CONTENDERS, consistency), oldest)

    def proclaim(self, name: bytes, lease_id: int, token: int, value: bytes
                 ) -> asyncio.Future[Result]:
        """A new value for the leader of election ``name``, if the leadership with
        ``token`` still holds (``succeeded``)."""
        key = _queue_prefix(ELECTIONS, name) + b"%x" % _lease_id(lease_id)
        self.service._check_value(value)
        return self.service.transaction(
            [Compare(key, Target.CREATE_REVISION, Relation.EQUAL, token)],
            [Put(key, value, now_ms=self._now_ms(), lease=lease_id)], [])

    # --- helpers -----------------------------------------------------------------

    def _now_ms(self) -> int:
        return self.service.clock.now_ms()

    def _read(self, read: Callable[[object], T], consistency: Consistency) -> MaybeDeferred[T]:
        barrier = self.service.replicator.read_barrier(consistency)
        return read(None) if barrier is None else when(barrier, read)


class _Deletions:
    """A watch consumer that wakes its waiter when a contender's key goes."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.lost = False  # the watch ended (compacted): start another

    def changes(self, events: list[Event]) -> bool:
        if any(event[2] in _REMOVALS for event in events):
            self._changed.set()
        return True

    def progress(self, revision: int) -> None:
        return None

    def compacted(self, compacted: int, current: int) -> None:
        self.lost = True
        self._changed.set()

    async def wait(self, timeout_s: float | None) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise TimeoutError
        await asyncio.wait_for(self._changed.wait(), timeout_s)
        self._changed.clear()


_REMOVALS: Final = frozenset({DELETE, EXPIRE, EVICT, FLUSH})


def _queue_prefix(space: bytes, name: bytes) -> bytes:
    if not 0 < len(name) <= MAX_NAME_BYTES or b"/" in name:
        raise InvalidArgument(f"a lock or election name is 1 to {MAX_NAME_BYTES} bytes "
                              f"without '/'")
    prefix = space + name + b"/"
    validate_key(prefix + b"0" * 16)
    return prefix


def _lease_id(lease_id: int) -> int:
    if not 0 < lease_id < 2**63:
        raise InvalidArgument("a lease id is a positive 64-bit integer")
    return lease_id
