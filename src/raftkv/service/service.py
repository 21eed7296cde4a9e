"""KVService: the one place fronts call. Validates input, turns relative TTLs into
absolute deadlines, stamps commands with the proposer's clock, applies read
consistency, and runs the expiry and eviction cycles (ARCHITECTURE.md rule 1).

It returns ``Result``s and entries, not wire formats: each front renders them (and
maps ``raftkv.errors`` to its own codes). A read that may wait returns its value or a
``Deferred`` (``raftkv/deferred.py``), a write the future of its result, so the
common local read costs no future at all.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from raftkv.clock import Clock
from raftkv.core.commands import (
    OP_TYPES,
    Append,
    Command,
    Compare,
    Cond,
    Copy,
    Delete,
    DeleteExpired,
    Entry,
    Evict,
    Expire,
    ExpireWhen,
    Flush,
    IncrBy,
    IncrByFloat,
    MultiPut,
    Op,
    Outcome,
    Put,
    Read,
    Rename,
    Result,
    SetRange,
    Txn,
    TxnResult,
    TypedOp,
    TypedResult,
)
from raftkv.core.containers import KIND_NAMES, Kind, Stream
from raftkv.core.eviction import AccessTracker, Evictor, Limits, estimated_memory_bytes
from raftkv.core.glob import compile_glob, literal_prefix
from raftkv.core.keyspace import is_live, kind_of
from raftkv.core.numbers import INT64_MAX, INT64_MIN, parse_long_double
from raftkv.core.typed import BY_NAME as TYPED_BY_NAME
from raftkv.core.typed import Ctx, attempt
from raftkv.core.typed.streams import last_ids, stream_unread
from raftkv.deferred import Deferred, MaybeDeferred, when
from raftkv.errors import (
    InvalidArgument,
    MembershipRefused,
    OutOfMemory,
    RaftKVError,
    TooLarge,
    Unavailable,
    WrongType,
)
from raftkv.service.blocking import BlockCall, Blocked, Waiters, Waiting, decoded, new_waiter_id
from raftkv.service.ports import (
    Consistency,
    ReplicaStatus,
    Replicator,
    SnapshotStats,
)
from raftkv.service.transaction import Recording
from raftkv.service.watch import Consumer, Watch, Watches

log = logging.getLogger("raftkv.service")

T = TypeVar("T")
U = TypeVar("U")

MAX_KEY_BYTES: Final = 1024
MAX_TTL_MS: Final = 10 * 365 * 24 * 3600 * 1000  # ten years
EXPIRY_CYCLE_S: Final = 0.1  # Redis's hz 10
EXPIRY_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class KeyspaceStats:
    """What INFO reports of the applied state on this node (no read barrier)."""

    keys: int
    volatile_keys: int
    memory_bytes: int  # estimated (eviction's own measure)
    expired_total: int
    evicted_total: int
    applied_index: int


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of a key scan: the live keys found, and the key the next page starts
    after (None when the scan has reached the end)."""

    keys: list[bytes]
    last: bytes | None


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    max_value_bytes: int = 1024 * 1024
    eviction: Limits = field(default_factory=Limits)
    max_txn_ops: int = 10_000  # txn.max_ops
    max_txn_bytes: int = 16 * 1024 * 1024  # txn.max_bytes


def validate_node_id(node_id: str) -> str:
    if not node_id or len(node_id) > 64 or not all(c.isalnum() or c in "-_." for c in node_id):
        raise InvalidArgument("a node id is 1-64 characters of letters, digits, '-', '_' or '.'")
    return node_id


def validate_key(key: bytes) -> bytes:
    if not key:
        raise InvalidArgument("key must not be empty")
    if len(key) > MAX_KEY_BYTES:
        raise InvalidArgument(f"key is {len(key)} bytes; the limit is {MAX_KEY_BYTES}")
    return key


class KVService:
    def __init__(self, replicator: Replicator, clock: Clock, limits: ServiceLimits,
                 rng: random.Random | None = None) -> None:
        self.replicator = replicator
        self.membership = replicator.membership
        self.clock = clock
        self.limits = limits
        self._rng = rng or random.Random()
        self.tracker = AccessTracker(False, self._rng)
        self.configure_eviction(limits.eviction)
        self._plain: list[tuple[bytes, bytes]] = []  # put_many's items of this loop turn
        self._plain_future: asyncio.Future[Result] | None = None
        self._typed: list[TypedOp] = []  # typed writes of this loop turn (one Txn)
        self._typed_future: asyncio.Future[Result] | None = None
        self.recording: Recording | None = None  # set by a front around a MULTI command
        self.waiters = Waiters(self.submit, self._kind_at, self.clock.now_ms,  # BLPOP...
                               replicator.can_propose, self._latest_attempt, self._unread)
        replicator.serve_calls(self.waiters)  # (parked on the leader: blocking.py)
        self.add_observer(self.waiters.observe)
        machine = replicator.state_machine
        self.watches = Watches(lambda: machine.history, lambda: machine.applied_index)
        self.add_observer(self.watches.observe)

    def configure_eviction(self, eviction: Limits) -> None:
        """Set the eviction policy and limits (at start-up, and by CONFIG SET). Access
        history starts again when the policy changes what it tracks."""
        self.limits = ServiceLimits(self.limits.max_value_bytes, eviction,
                                    self.limits.max_txn_ops, self.limits.max_txn_bytes)
        self._bounded = bool(eviction.max_keys or eviction.max_memory_bytes)
        tracking = eviction.policy.tracks_access
        if self.tracker.enabled != tracking:
            self.tracker = AccessTracker(tracking, self._rng)
        self._tracking = self.tracker.enabled  # (a compiled field: read on every read)
        self.evictor = Evictor(eviction, self.tracker, self._rng)

    def add_observer(self, observe: Callable[[Command, Result], None]) -> None:
        """Call ``observe(command, result)`` after each command this node applies."""
        self.replicator.observers.append(observe)

    def remove_observer(self, observe: Callable[[Command, Result], None]) -> None:
        if observe in self.replicator.observers:
            self.replicator.observers.remove(observe)

    @property
    def applied_index(self) -> int:
        """The index of the last command this node applied (what a stale read saw)."""
        return self.replicator.state_machine.applied_index

    # --- reads -------------------------------------------------------------------

    def get(self, key: bytes, consistency: Consistency = Consistency.LINEARIZABLE
            ) -> MaybeDeferred[Entry | None]:
        if not 0 < len(key) <= MAX_KEY_BYTES:
            validate_key(key)
        if self.recording is not None:
            return self._recorded_read([key], _entry_of_first)
        barrier = self.replicator.read_barrier(consistency)
        if barrier is None:
            return self._read(key)
        return when(barrier, functools.partial(self._read, key))

    def get_value(self, key: bytes, consistency: Consistency = Consistency.LINEARIZABLE
                  ) -> MaybeDeferred[bytes | None]:
        """The value alone (Redis GET's hot path: no entry object is built)."""
        validate_key(key)
        if self.recording is not None:
            return self._recorded_read([key], _value_of_first)
        barrier = self.replicator.read_barrier(consistency)
        if barrier is None:
            return self._read_value(key)
        return when(barrier, functools.partial(self._read_value, key))

    def get_values(self, keys: list[bytes], consistency: Consistency = Consistency.LINEARIZABLE
                   ) -> MaybeDeferred[list[bytes | None]]:
        """Several values behind one read barrier (a RESP pipeline's run of GETs)."""
        for key in keys:
            if not 0 < len(key) <= MAX_KEY_BYTES:
                validate_key(key)
        if self.recording is not None:
            return self._recorded_read(keys, _values_of)
        barrier = self.replicator.read_barrier(consistency)
        if barrier is None:
            return self._read_values(keys)
        return when(barrier, functools.partial(self._read_values, keys))

    def _read_values(self, keys: list[bytes], _: None = None) -> list[bytes | None]:
        now_ms = self.clock.now_ms()
        values = self.replicator.state_machine.keyspace.values(keys, now_ms)
        if self._tracking:
            for key, found in zip(keys, values, strict=True):
                if found is not None:
                    self.tracker.touch(key, now_ms)
        return values

    def _read_value(self, key: bytes, _: None = None) -> bytes | None:
        now_ms = self.clock.now_ms()
        value = self.replicator.state_machine.keyspace.value(key, now_ms)
        if value is not None and self._tracking:
            self.tracker.touch(key, now_ms)
        return value

    def _read(self, key: bytes, _: None = None) -> Entry | None:
        now_ms = self.clock.now_ms()
        entry = self.replicator.state_machine.keyspace.get(key, now_ms)
        if entry is not None:
            if entry.kind:
                raise WrongType(f"the key holds a {KIND_NAMES[Kind(entry.kind)].decode()}, "
                                f"not a string")
            if self._tracking:
                self.tracker.touch(key, now_ms)
        return entry

    def list_entries(self, prefix: bytes, after: bytes | None, limit: int,
             consistency: Consistency = Consistency.LINEARIZABLE) -> MaybeDeferred[list[Entry]]:
        def read(_: object = None) -> list[Entry]:
            keyspace = self.replicator.state_machine.keyspace
            return keyspace.scan(self.clock.now_ms(), prefix, after, limit)

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    def range_entries(self, start: bytes, end: bytes | None, limit: int,
                      consistency: Consistency = Consistency.LINEARIZABLE
                      ) -> MaybeDeferred[tuple[list[Entry], int, int]]:
        """etcd's range: the live entries from ``start`` up to (not including) ``end``
        in key order (``end`` None: ``start`` alone; ``b"\\0"``: every key from
        ``start`` on), the first ``limit`` of them (0: all), how many there are, and the
        revision they were read at."""

        def read(_: object = None) -> tuple[list[Entry], int, int]:
            sm, now_ms = self.replicator.state_machine, self.clock.now_ms()
            keyspace = sm.keyspace
            if end is None:
                found = keyspace.get(start, now_ms)
                return ([found] if found is not None else []), int(found is not None), \
                    sm.applied_index
            prefix = b"" if end == b"\0" else common_prefix(start, end)
            out: list[Entry] = []
            count = 0
            for key in itertools.chain((start,), keyspace.iter_keys(prefix, start)):
                if end != b"\0" and key >= end:
                    break
                entry = keyspace.get(key, now_ms)
                if entry is not None:
                    count += 1
                    if not limit or len(out) < limit:
                        out.append(entry)
            return out, count, sm.applied_index

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    def exists(self, keys: list[bytes], consistency: Consistency = Consistency.LINEARIZABLE
               ) -> MaybeDeferred[int]:
        """How many of ``keys`` are live (a key named twice counts twice). Like Redis's
        EXISTS it is not an access: LRU and LFU do not see it."""
        for key in keys:
            validate_key(key)
        if self.recording is not None:
            return self._recorded_read(keys, _live_count)

        def count(_: object = None) -> int:
            keyspace, now_ms = self.replicator.state_machine.keyspace, self.clock.now_ms()
            return sum(1 for key in keys if keyspace.get(key, now_ms) is not None)

        barrier = self.replicator.read_barrier(consistency)
        return count() if barrier is None else when(barrier, count)

    def scan_keys(self, *, pattern: bytes | None = None, after: bytes | None = None,
                  count: int | None = None, visible: Callable[[bytes], bool] | None = None,
                  kind: int | None = None,
                  consistency: Consistency = Consistency.LINEARIZABLE) -> MaybeDeferred[KeyPage]:
        """Live keys in key order after ``after``, matching the glob ``pattern`` (Redis's
        rules), that ``visible`` lets through, holding ``kind`` (a containers.Kind; None:
        any). ``count`` bounds how many stored keys are examined, not how many are
        returned (Redis's SCAN COUNT); None reads to the end."""
        self._not_in_transaction("scanning keys")
        matches = compile_glob(pattern).match if pattern is not None else None
        prefix = literal_prefix(pattern) if pattern is not None else b""

        def read(_: object = None) -> KeyPage:
            keyspace, now_ms = self.replicator.state_machine.keyspace, self.clock.now_ms()
            found: list[bytes] = []
            last = None
            for examined, key in enumerate(keyspace.iter_keys(prefix, after)):
                if count is not None and examined >= count:
                    return KeyPage(found, last)
                last = key
                if matches is not None and not matches(key):
                    continue
                entry = keyspace.get(key, now_ms)
                if entry is not None and (visible is None or visible(key)) \
                        and (kind is None or entry.kind == kind):
                    found.append(key)
            return KeyPage(found, None)

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    def touch(self, keys: list[bytes], consistency: Consistency = Consistency.LINEARIZABLE
              ) -> MaybeDeferred[int]:
        """How many of ``keys`` are live, each counted as an access (Redis's TOUCH)."""
        for key in keys:
            validate_key(key)
        if self.recording is not None:
            return self._recorded_read(keys, _live_count)

        def count(_: object = None) -> int:
            return sum(1 for key in keys if self._read(key) is not None)

        barrier = self.replicator.read_barrier(consistency)
        return count() if barrier is None else when(barrier, count)

    def peek(self, key: bytes, consistency: Consistency = Consistency.LINEARIZABLE
             ) -> MaybeDeferred[Entry | None]:
        """The key's entry, of any type, without counting an access (Redis's TYPE,
        OBJECT, the TTL family)."""
        validate_key(key)
        if self.recording is not None:
            return self._recorded_read([key], _any_entry_of_first)

        def read(_: object = None) -> Entry | None:
            return self.replicator.state_machine.keyspace.get(key, self.clock.now_ms())

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    def random_key(self, visible: Callable[[bytes], bool] | None = None,
                   consistency: Consistency = Consistency.LINEARIZABLE
                   ) -> MaybeDeferred[bytes | None]:
        """A live key picked at random (Redis's RANDOMKEY), None when there is none that
        ``visible`` lets through. A read: the choice is this node's, not logged."""
        self._not_in_transaction("picking a random key")
        def pick(_: object = None) -> bytes | None:
            keyspace, now_ms = self.replicator.state_machine.keyspace, self.clock.now_ms()
            size = len(keyspace)
            for _attempt in range(100 if size else 0):  # (Redis gives up, too, on keys that
                key = keyspace.key_at(self._rng.randrange(size))  # keep being expired)
                if keyspace.get(key, now_ms) is not None and (visible is None or visible(key)):
                    return key
            return None

        barrier = self.replicator.read_barrier(consistency)
        return pick() if barrier is None else when(barrier, pick)

    def encoding(self, key: bytes) -> bytes:
        """Redis's name for how this node would store the key's hash, list, set or
        sorted set (OBJECT ENCODING; read after ``peek``)."""
        container = self.replicator.state_machine.keyspace.container(key)
        return container.encoding() if container is not None else b""

    def idle_ms(self, key: bytes) -> int:
        """Milliseconds since the key was last read or written, as far as this node
        tracks accesses (only under an LRU or LFU policy; 0 otherwise)."""
        last = self.tracker.last_access_ms(key)
        return self.clock.now_ms() - last if last else 0

    def frequency(self, key: bytes) -> int:
        """The key's LFU counter (Redis's OBJECT FREQ)."""
        return self.tracker.frequency(key, self.clock.now_ms())

    def _recorded_read(self, keys: list[bytes], shape: Callable[[list[Result]], T]
                       ) -> Deferred[T]:
        assert self.recording is not None
        future = self.recording.read(keys, self.clock.now_ms(), shape)
        return Deferred(future, _result_of)

    def _not_in_transaction(self, what: str) -> None:
        if self.recording is not None:
            raise InvalidArgument(f"{what} is not supported inside a transaction (MULTI)")

    def is_stored(self, key: bytes) -> bool:
        """Whether the applied state holds ``key`` (expired or not): what an observer
        of a batch of deletes asks of each key."""
        return self.replicator.state_machine.keyspace.raw(key) is not None

    def key_count(self, consistency: Consistency = Consistency.LINEARIZABLE
                  ) -> MaybeDeferred[int]:
        """How many keys are stored (expired ones not yet collected included, as in
        Redis's DBSIZE)."""
        self._not_in_transaction("counting keys")
        def count(_: object = None) -> int:
            return len(self.replicator.state_machine.keyspace)

        barrier = self.replicator.read_barrier(consistency)
        return count() if barrier is None else when(barrier, count)

    def stats(self) -> KeyspaceStats:
        sm = self.replicator.state_machine
        keyspace = sm.keyspace
        return KeyspaceStats(len(keyspace), keyspace.volatile_count,
                             estimated_memory_bytes(keyspace), sm.expired_total,
                             sm.evicted_total, sm.applied_index)

    def members(self) -> list[dict[str, Any]]:
        if self.membership is None:  # a single node: itself, the only voter
            s = self.status()
            return [{"id": s.node_id, "role": "voter", "isLeader": True, "reachable": True,
                     "matchIndex": s.commit_index, "url": None}]
        return self.membership.members()

    def change_membership(self, change: str, node_id: str) -> asyncio.Future[Any]:
        if self.membership is None:
            raise MembershipRefused("this node runs without --peers: a single node has no "
                                    "members to change")
        validate_node_id(node_id)
        return self.membership.change_membership(change, node_id)

    def transfer_leadership(self, to: str) -> None:
        if self.membership is None:
            raise MembershipRefused("this node runs without --peers: there is no one to "
                                    "transfer leadership to")
        self.membership.transfer_leadership(to)

    def status(self) -> ReplicaStatus:
        return self.replicator.status()

    async def take_snapshot(self) -> SnapshotStats | None:
        return await self.replicator.snapshot()

    # --- writes ------------------------------------------------------------------

    def deadline(self, ttl_ms: int | None) -> int | None:
        """A relative TTL as an absolute deadline, validated."""
        if ttl_ms is None:
            return None
        if not 1 <= ttl_ms <= MAX_TTL_MS:
            raise InvalidArgument(f"ttlMs must be between 1 and {MAX_TTL_MS}")
        return self.clock.now_ms() + ttl_ms

    def put(self, key: bytes, value: bytes, *, ttl_ms: int | None = None,
            expires_at_ms: int | None = None, keep_ttl: bool = False, cond: Cond = Cond.NONE,
            expected_mod_revision: int = 0, request_id: bytes = b"", string_only: bool = False,
            lease: int = 0) -> asyncio.Future[Result]:
        """Store ``value`` (``string_only``: unless the key holds a hash, list...; on
        ``lease``: NO_LEASE when there is no such lease)."""
        validate_key(key)
        self._check_value(value)
        if ttl_ms is not None:
            expires_at_ms = self.deadline(ttl_ms)
        return self.submit(Put(key, value, expires_at_ms, keep_ttl, cond, expected_mod_revision,
                               request_id, self.clock.now_ms(), string_only, lease),
                           len(key) + len(value))

    def delete(self, key: bytes, *, cond: Cond = Cond.NONE, expected_mod_revision: int = 0,
               request_id: bytes = b"", string_only: bool = False) -> asyncio.Future[Result]:
        validate_key(key)
        return self.submit(Delete(key, cond, expected_mod_revision, request_id,
                                  self.clock.now_ms(), string_only))

    def delete_many(self, keys: list[bytes]) -> asyncio.Future[Result]:
        """Delete every one of ``keys`` in one log entry (Redis DEL / UNLINK); the
        result's ``affected`` is how many existed."""
        for key in keys:
            validate_key(key)
        now_ms = self.clock.now_ms()
        if len(keys) == 1:
            return self.submit(Delete(keys[0], Cond.NONE, 0, b"", now_ms))
        ops = [Delete(key, Cond.NONE, 0, b"", now_ms) for key in keys]
        if self.recording is not None:
            return self.recording.add_all(list(ops))
        return self.submit(Txn(tuple(ops), b"", now_ms))

    def expire(self, key: bytes, expires_at_ms: int | None, request_id: bytes = b"",
               when: ExpireWhen = ExpireWhen.ALWAYS, string_only: bool = False
               ) -> asyncio.Future[Result]:
        validate_key(key)
        return self.submit(Expire(key, expires_at_ms, request_id, self.clock.now_ms(), when,
                                  string_only))

    def flush(self) -> asyncio.Future[Result]:
        """Delete every key (an admin operation: the fronts check the role)."""
        future = self.submit(Flush(b"", self.clock.now_ms()))
        future.add_done_callback(lambda _: self.tracker.clear())
        return future

    def incr_by(self, key: bytes, delta: int, request_id: bytes = b"") -> asyncio.Future[Result]:
        validate_key(key)
        return self.submit(IncrBy(key, delta, request_id, self.clock.now_ms()), len(key) + 20)

    def append(self, key: bytes, value: bytes, request_id: bytes = b"") -> asyncio.Future[Result]:
        validate_key(key)
        current = self.replicator.state_machine.keyspace.raw(key)
        self._check_value(value, len(current or b""))
        return self.submit(Append(key, value, request_id, self.clock.now_ms()), len(value))

    def set_range(self, key: bytes, offset: int, value: bytes, request_id: bytes = b""
                  ) -> asyncio.Future[Result]:
        """Overwrite from byte ``offset`` (Redis SETRANGE); the result may not exceed the
        value limit (checked on ``offset + len(value)``, as Redis checks it)."""
        validate_key(key)
        if offset < 0:
            raise InvalidArgument("offset is out of range")
        self._check_value(value, offset)
        return self.submit(SetRange(key, offset, value, request_id, self.clock.now_ms()),
                           offset + len(value))

    def incr_by_float(self, key: bytes, delta: bytes, request_id: bytes = b""
                      ) -> asyncio.Future[Result]:
        """Add the decimal ``delta`` (as the client wrote it) to a float value."""
        validate_key(key)
        if parse_long_double(delta) is None:
            raise InvalidArgument("value is not a valid float")
        return self.submit(IncrByFloat(key, delta, request_id, self.clock.now_ms()),
                           len(key) + 24)

    def rename(self, source: bytes, target: bytes, only_if_absent: bool = False,
               request_id: bytes = b"") -> asyncio.Future[Result]:
        """Move ``source`` to ``target`` in one entry (Redis RENAME / RENAMENX)."""
        validate_key(source)
        validate_key(target)
        return self.submit(Rename(source, target, only_if_absent, request_id,
                                  self.clock.now_ms()))

    def copy(self, source: bytes, target: bytes, replace_target: bool = False,
             request_id: bytes = b"") -> asyncio.Future[Result]:
        """Copy ``source`` to ``target`` in one entry (Redis COPY)."""
        validate_key(source)
        validate_key(target)
        existing = self.replicator.state_machine.keyspace.raw(source)
        return self.submit(Copy(source, target, replace_target, request_id,
                                self.clock.now_ms()), len(target) + len(existing or b""))

    def multi_put(self, items: list[tuple[bytes, bytes]], only_if_none_exist: bool = False,
                  request_id: bytes = b"") -> asyncio.Future[Result]:
        for key, value in items:
            validate_key(key)
            self._check_value(value)
        size = sum(len(k) + len(v) for k, v in items)
        return self.submit(MultiPut(tuple(items), only_if_none_exist, request_id,
                                    self.clock.now_ms()), size)

    def put_many(self, items: list[tuple[bytes, bytes]]) -> asyncio.Future[Result]:
        """Plain puts (Redis ``SET key value``, alone or a pipeline's run of them).

        The plain puts of every caller in one loop turn become one MultiPut: one log
        entry (one Raft proposal), applied in arrival order, all or nothing, resolving
        one shared future - a batch's cost instead of one command's per put. Any other
        write submits the pending batch first, so the log keeps every caller's order."""
        limit = self.limits.max_value_bytes
        for key, value in items:
            if not 0 < len(key) <= MAX_KEY_BYTES or len(value) > limit:
                validate_key(key)
                self._check_value(value)
        if self.recording is not None:
            return self.recording.add(MultiPut(tuple(items), False, b"", self.clock.now_ms()),
                                      sum(len(key) + len(value) for key, value in items))
        if self._typed_future is not None:  # (the log keeps every caller's order)
            self._submit_typed()
        if self._bounded:
            self._submit_plain()
            self._make_room(sum(len(key) + len(value) for key, value in items))
        future = self._plain_future
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._plain_future = loop.create_future()
            loop.call_soon(self._submit_plain)
        self._plain += items
        return future

    def _submit_plain(self) -> None:
        shared = self._plain_future
        if shared is None:
            return
        items, self._plain, self._plain_future = self._plain, [], None
        try:
            self.replicator.submit_nowait(
                MultiPut(tuple(items), False, b"", self.clock.now_ms()), shared)
        except Exception as exc:  # refused before it reached the log (shutting down)
            shared.set_exception(exc)

    def submit(self, command: Command, incoming_bytes: int = 0) -> asyncio.Future[Result]:
        """Propose ``command``, evicting first if it would break the memory limits (or,
        recording a transaction, queue it: ``Recording``)."""
        if self.recording is not None:
            if not isinstance(command, OP_TYPES):
                raise InvalidArgument(f"{type(command).__name__} cannot be part of a "
                                      f"transaction")
            return self.recording.add(command, incoming_bytes)
        if self._plain_future is not None:
            self._submit_plain()
        if self._typed_future is not None:
            self._submit_typed()
        if incoming_bytes and self._bounded:
            self._make_room(incoming_bytes)
        return self.replicator.submit_nowait(command)

    # --- hashes, lists, sets and sorted sets ----------------------------------------

    def typed(self, args: list[bytes], consistency: Consistency = Consistency.LINEARIZABLE
              ) -> asyncio.Future[Result] | MaybeDeferred[Result]:
        """Run a hash, list, set or sorted-set command (``args``: its command line, the
        name in lower case first): a write through the log, a read at ``consistency``.
        Either way it ends in a TypedResult (an error reply is its outcome, not an
        exception)."""
        spec = TYPED_BY_NAME[args[0]]
        for key in spec.keys(args):
            validate_key(key)
        if spec.writes:
            limit = self.limits.max_value_bytes
            size = 0
            for arg in args:
                if len(arg) > limit:
                    self._check_value(arg)
                size += len(arg)
            op = TypedOp(tuple(args), b"", self.clock.now_ms())
            if self.recording is not None:
                return self.recording.add(op, size)
            return self._batch_typed(op, size)
        if self.recording is not None:  # a read in MULTI answers at EXEC's point
            return self.recording.add(TypedOp(tuple(args), b"", self.clock.now_ms()))

        def read(_: object = None) -> Result:
            result = self._read_here(args)
            if result.ok and self._tracking:
                now_ms = self.clock.now_ms()
                for key in spec.keys(args):
                    self.tracker.touch(key, now_ms)
            return result

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    def blocking(self, line: list[bytes], keys: list[bytes], kind: int, timeout_s: float,
                 group: bytes | None = None, read: bool = False) -> Waiting:
        """A blocking pop (BLPOP, BLMOVE, BZPOPMIN...) as the plain pop ``line`` over
        ``keys``, which hold ``kind``: served at once when there is something to pop,
        else parked on the leader (``blocking.py``) until it pops or ``timeout_s``
        passes (0: never). Its ``future`` resolves with the pop's result, or None at
        the timeout; ``unblock`` ends it early. (Inside MULTI a front sends the plain
        pop instead: it does not block there, as in Redis.) For streams: ``read``
        (XREAD: the line is read again on this node whenever a key changes, the caller
        having read it once linearizably) or ``group`` (XREADGROUP >: proposed when a
        stream has entries that group has not read)."""
        for key in keys:
            validate_key(key)
        if read:
            return self.waiters.wait(line, keys, kind, timeout_s, read=self._read_here)
        return Blocked(self._block_at_leader,
                       BlockCall(new_waiter_id(), line, keys, kind, timeout_s, group))

    def _block_at_leader(self, call: BlockCall) -> asyncio.Future[Result | None]:
        """Where a Blocked's call goes: this node's waiters while it leads, else the
        leader's, over the wire."""
        if self.replicator.can_propose():
            return self.waiters.take(call)
        return decoded(self.replicator.call_leader(call.encode()))

    def _read_here(self, line: list[bytes]) -> Result:
        """A typed read of this node's state as it is (no barrier)."""
        sm, now_ms = self.replicator.state_machine, self.clock.now_ms()
        outcome, reply = attempt(Ctx(sm.keyspace, now_ms, seed=self._rng.getrandbits(64),
                                     machine=sm), line)
        return TypedResult(outcome, sm.applied_index, reply)

    def _unread(self, key: bytes, group: bytes) -> bool:
        if self._kind_at(key) != Kind.STREAM:
            return False
        stream = self.replicator.state_machine.keyspace.container(key)
        return isinstance(stream, Stream) and stream_unread(stream, group)

    def stream_last_ids(self, keys: list[bytes]) -> list[bytes]:
        """What ``$`` means for each stream on this node now (XREAD BLOCK's start)."""
        sm = self.replicator.state_machine
        return last_ids(Ctx(sm.keyspace, self.clock.now_ms(), machine=sm), keys)

    def unblock(self, blocked: Waiting, error: BaseException | None = None) -> bool:
        """End a blocked command now: with a nil (``error`` None) or ``error``."""
        if isinstance(blocked, Blocked):
            return blocked.stop(error)
        return self.waiters.stop(blocked, error)

    def _latest_attempt(self, waiter_id: bytes) -> asyncio.Future[tuple[int, Result] | None]:
        """A waiter's latest attempt in the request table, once every entry the log
        holds is applied (a read barrier): what it did is final then."""
        future: asyncio.Future[tuple[int, Result] | None] = \
            asyncio.get_running_loop().create_future()

        def look(barrier: asyncio.Future[None] | None = None) -> None:
            if barrier is not None and (barrier.cancelled() or barrier.exception()):
                future.set_exception(Unavailable("the read barrier failed; try again"))
                return
            latest = self.replicator.state_machine.latest_request(waiter_id)
            future.set_result(None if latest is None else (
                int.from_bytes(latest[0][len(waiter_id):], "big"), latest[1]))

        try:
            barrier = self.replicator.read_barrier(Consistency.LINEARIZABLE)
        except RaftKVError as exc:
            future.set_exception(exc)
            return future
        if barrier is None:
            look()
        else:
            barrier.add_done_callback(look)
        return future

    def _kind_at(self, key: bytes) -> int | None:
        """The Kind this node's state holds at ``key``, None when absent or expired."""
        raw = self.replicator.state_machine.keyspace.raw(key)
        if raw is None or not is_live(raw, self.clock.now_ms()):
            return None
        return kind_of(raw)

    def typed_writes(self, lines: list[list[bytes]]) -> Deferred[list[Result]]:
        """Several typed writes (a pipeline's run of them; the front has checked their
        keys and sizes), in the loop turn's batch: their results, in order."""
        now_ms = self.clock.now_ms()
        self._before_typed(sum(len(arg) for line in lines for arg in line)
                           if self._bounded else 0)  # (the size counts when memory is bounded)
        shared, first = self._enqueue_typed(TypedOp(tuple(lines[0]), b"", now_ms))
        for line in lines[1:]:
            self._enqueue_typed(TypedOp(tuple(line), b"", now_ms))
        return Deferred(shared, _Results(first, len(lines)))

    def _batch_typed(self, op: TypedOp, incoming_bytes: int) -> Deferred[Result]:
        """Typed writes, as ``put_many`` batches plain puts: those of every caller in one
        loop turn become one Txn (Redis's mode: each op its own result; nothing links
        them but the entry): one log entry, one shared future, each caller's reply its
        op's result. Any other write submits the pending batch first."""
        self._before_typed(incoming_bytes)
        shared, position = self._enqueue_typed(op)
        return Deferred(shared, _NthResult(position))

    def _before_typed(self, incoming_bytes: int) -> None:
        """What must go to the log before typed writes join the batch: pending plain puts
        (the log keeps every caller's order), and evictions that make room for them."""
        if self._plain_future is not None:
            self._submit_plain()
        if self._bounded:
            self._submit_typed()
            self._make_room(incoming_bytes)

    def _enqueue_typed(self, op: TypedOp) -> tuple[asyncio.Future[Result], int]:
        """Add ``op`` to the loop turn's batch: the batch's future, and its position."""
        shared = self._typed_future
        if shared is None:
            loop = asyncio.get_running_loop()
            shared = self._typed_future = loop.create_future()
            loop.call_soon(self._submit_typed)
        self._typed.append(op)
        return shared, len(self._typed) - 1

    def _submit_typed(self) -> None:
        shared = self._typed_future
        if shared is None:
            return
        ops, self._typed, self._typed_future = self._typed, [], None
        try:
            self.replicator.submit_nowait(Txn(tuple(ops), b"", self.clock.now_ms()), shared)
        except Exception as exc:  # refused before it reached the log (shutting down)
            shared.set_exception(exc)

    # --- transactions over HTTP (atomic, with compares) ----------------------------

    def put_op(self, key: bytes, value: bytes, ttl_ms: int | None = None) -> Put:
        validate_key(key)
        self._check_value(value)
        now_ms = self.clock.now_ms()
        expires = self.deadline(ttl_ms) if ttl_ms is not None else None
        return Put(key, value, expires, False, Cond.NONE, 0, b"", now_ms)

    def delete_op(self, key: bytes) -> Delete:
        validate_key(key)
        return Delete(key, Cond.NONE, 0, b"", self.clock.now_ms())

    def get_op(self, key: bytes) -> Read:
        validate_key(key)
        return Read(key, b"", self.clock.now_ms())

    def incr_op(self, key: bytes, delta: int) -> IncrBy:
        validate_key(key)
        if not INT64_MIN <= delta <= INT64_MAX:
            raise InvalidArgument("an increment must be a signed 64-bit integer")
        return IncrBy(key, delta, b"", self.clock.now_ms())

    def transaction(self, compares: list[Compare], success: list[Op], failure: list[Op],
                    request_id: bytes = b"") -> asyncio.Future[Result]:
        """An atomic transaction (DATA-MODEL.md section 1): one log entry; ``success``
        if every compare holds, else ``failure``; an op that fails undoes it all."""
        for compare in compares:
            validate_key(compare.key)
        ops = len(success) + len(failure)
        limits = self.limits
        if ops > limits.max_txn_ops:
            raise TooLarge(f"a transaction holds at most {limits.max_txn_ops} ops; this "
                           f"one has {ops} (raise txn.max_ops to allow more)")
        size = sum(_op_bytes(op) for op in (*success, *failure))
        if size > limits.max_txn_bytes:
            raise TooLarge(f"a transaction holds at most {limits.max_txn_bytes} bytes of "
                           f"keys and values; this one has {size} (raise txn.max_bytes)")
        now_ms = self.clock.now_ms()
        return self.submit(Txn(tuple(success), request_id, now_ms, (), tuple(compares),
                               tuple(failure), atomic=True), size)

    def watch(self, keys: list[bytes], consistency: Consistency = Consistency.LINEARIZABLE
              ) -> MaybeDeferred[list[tuple[bytes, int, int]]]:
        """What WATCH remembers of each key: (key, its mod revision - 0 when absent, the
        revision it was read at), read at the asked consistency."""
        for key in keys:
            validate_key(key)

        def read(_: object = None) -> list[tuple[bytes, int, int]]:
            sm, now_ms = self.replicator.state_machine, self.clock.now_ms()
            entries = [sm.keyspace.get(key, now_ms) for key in keys]
            return [(key, entry.mod_revision if entry is not None else 0, sm.applied_index)
                    for key, entry in zip(keys, entries, strict=True)]

        barrier = self.replicator.read_barrier(consistency)
        return read() if barrier is None else when(barrier, read)

    # --- watches (GET /v1/watch) --------------------------------------------------------

    def watch_start(self, from_revision: int | None) -> MaybeDeferred[int]:
        """The revision a new watch starts after: ``from_revision - 1``, or with none
        given, what this node has applied once a linearizable read barrier passed (so
        the watch misses no change that completed before it was asked for)."""
        if from_revision is not None:
            return from_revision - 1
        sm = self.replicator.state_machine

        def applied(_: object = None) -> int:
            return sm.applied_index

        barrier = self.replicator.read_barrier(Consistency.LINEARIZABLE)
        return applied() if barrier is None else when(barrier, applied)

    def watch_changes(self, key_or_prefix: bytes, exact: bool, after: int, consumer: Consumer,
                      progress_s: float) -> Watch | None:
        """Deliver the changes to a key (``exact``) or a prefix after revision ``after``
        to ``consumer``, as they are applied (``service/watch.py``)."""
        return self.watches.start(key_or_prefix, exact, after, consumer, progress_s)

    def execute(self, recording: Recording, watched: tuple[tuple[bytes, int, int], ...] = ()
                ) -> asyncio.Future[Result]:
        """Submit what a transaction recorded as one ``Txn`` (every op stamped with this
        moment, as Redis runs EXEC's commands now; nothing applies if a ``watched`` key
        changed), and settle its placeholders."""
        now_ms = self.clock.now_ms()
        ops = tuple(op.replace(now_ms=now_ms) for op in recording.ops)
        future = self.submit(Txn(ops, b"", now_ms, watched), recording.incoming_bytes)
        future.add_done_callback(recording.settle)
        return future

    def _check_value(self, value: bytes, existing: int = 0) -> None:
        limit = self.limits.max_value_bytes
        if len(value) + existing > limit:
            raise TooLarge(f"value is {len(value) + existing} bytes; the limit is {limit}")

    def _make_room(self, incoming_bytes: int) -> None:
        keyspace = self.replicator.state_machine.keyspace
        excess = self.evictor.excess(keyspace, incoming_bytes)
        if not excess:
            return
        victims = self.evictor.choose(keyspace, self.clock.now_ms(), excess)
        if not victims:
            raise OutOfMemory("command not allowed when used memory > 'maxmemory'")
        for key in victims:
            self.tracker.forget(key)
        self.replicator.submit_nowait(Evict(tuple(victims), b"", self.clock.now_ms()))

    # --- background --------------------------------------------------------------

    async def run(self) -> None:
        """The expiry cycle, until cancelled: propose deletes for keys past their deadline
        (only where this node orders writes). Every replica deletes the same keys at the
        same index."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.watches.run())
            while True:
                await asyncio.sleep(EXPIRY_CYCLE_S)
                await self.expire_due()

    async def expire_due(self) -> int:
        if not self.replicator.can_propose():
            return 0
        now_ms = self.clock.now_ms()
        keys = self.replicator.state_machine.keyspace.due(now_ms, EXPIRY_BATCH)
        if not keys:
            return 0
        try:
            result = await self.replicator.submit_nowait(DeleteExpired(tuple(keys), b"", now_ms))
        except Exception as exc:  # retried next cycle; logged, never lost
            log.warning("expiry cycle failed: %s", exc)
            return 0
        for key in keys:
            self.tracker.forget(key)
        return result.affected


class _NthResult:
    """A batched typed write's result: its op's, in the batch's TxnResult."""

    __slots__ = ("position",)

    def __init__(self, position: int) -> None:
        self.position = position

    def __call__(self, done: asyncio.Future[Result]) -> Result:
        batch = done.result()
        assert isinstance(batch, TxnResult)
        return batch.results[self.position]


class _Results:
    """A run of batched typed writes' results, in the batch's TxnResult."""

    __slots__ = ("count", "first")

    def __init__(self, first: int, count: int) -> None:
        self.first = first
        self.count = count

    def __call__(self, done: asyncio.Future[Result]) -> list[Result]:
        batch = done.result()
        assert isinstance(batch, TxnResult)
        return list(batch.results[self.first : self.first + self.count])


# --- what a transaction's reads resolve with (the shapes of the reads above) ------

def _result_of(done: asyncio.Future[T]) -> T:
    return done.result()


def _entry_of_first(results: list[Result]) -> Entry | None:
    if results[0].outcome is Outcome.WRONG_TYPE:
        raise WrongType("the key holds no string")
    return results[0].entry


def _any_entry_of_first(results: list[Result]) -> Entry | None:
    return results[0].entry


def _value_of_first(results: list[Result]) -> bytes | None:
    entry = _entry_of_first(results)
    return entry.value if entry is not None else None


def _values_of(results: list[Result]) -> list[bytes | None]:
    return [r.entry.value if r.entry is not None and r.ok else None for r in results]


def _live_count(results: list[Result]) -> int:
    return sum(1 for r in results if r.entry is not None)


def common_prefix(a: bytes, b: bytes) -> bytes:
    """The longest prefix ``a`` and ``b`` share."""
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]


def _op_bytes(op: Op) -> int:
    if isinstance(op, Put):
        return len(op.key) + len(op.value)
    if isinstance(op, MultiPut):
        return sum(len(key) + len(value) for key, value in op.items)
    return len(getattr(op, "key", b""))
