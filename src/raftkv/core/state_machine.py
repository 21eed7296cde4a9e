"""The deterministic state machine: ``apply(index, command) -> Result``.

Rules (ARCHITECTURE.md rule 1):

* ``apply`` reads no clock, randomness or environment. "Now" is the command's
  ``now_ms``, stamped by the proposer, so a key is expired or not identically on
  every replica.
* ``apply`` never raises for user errors (a failed condition, INCR on text): it
  returns a :class:`Result` so every replica takes the same path.
* A command whose ``request_id`` was applied before returns the first result and
  changes nothing (dissertation section 6.3). The table of recent ids is part of
  the state (it is in snapshots) and is trimmed oldest-first at a fixed size, so
  every replica trims identically.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from raftkv.core.commands import (
    OUTCOME_OK,
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
    LeaseExpire,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    MultiPut,
    Noop,
    Op,
    Outcome,
    Put,
    Read,
    Relation,
    Rename,
    Result,
    SetRange,
    Target,
    Txn,
    TxnResult,
    TypedOp,
    TypedResult,
)
from raftkv.core.containers import Container
from raftkv.core.history import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    DELETE,
    EVICT,
    EXPIRE,
    FLUSH,
    PUT,
    History,
)
from raftkv.core.keyspace import (
    Keyspace,
    deadline_of,
    header,
    is_live,
    kind_of,
    pack,
    unpack,
)
from raftkv.core.leases import Lease, Leases
from raftkv.core.numbers import (
    INT64_MAX,
    INT64_MIN,
    add_long_double,
    format_long_double,
    parse_int64,
    parse_long_double,
)
from raftkv.core.scripts.lua import Engine
from raftkv.core.table import Table
from raftkv.core.typed import BY_NAME as TYPED_BY_NAME
from raftkv.core.typed import ONE_KEY as TYPED_ONE_KEY
from raftkv.core.typed import Ctx, attempt

DEFAULT_MAX_TRACKED_REQUESTS: Final = 16_384


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A point-in-time image of the state machine at ``index`` (cheap to take:
    the copies share the immutable entries)."""

    index: int
    entries: Table
    requests: dict[bytes, Result]
    # of the typed keys (never changed after this); a small one as its packed form
    # (``Keyspace``: ``keyspace.held`` gives its container)
    containers: dict[bytes, Container | bytes]
    scripts: dict[bytes, bytes]  # the script cache: SHA1 -> body
    leases: dict[int, Lease]


class StateMachine:
    """The keyspace plus the bookkeeping that makes ``apply`` exactly-once."""

    __slots__ = ("_engine", "_handlers", "_leased", "_max_requests", "_raw",
                 "_request_order", "_requests", "_store", "applied_index", "evicted_total",
                 "expired_total", "history", "keyspace", "leases", "scripts")

    def __init__(self, max_tracked_requests: int = DEFAULT_MAX_TRACKED_REQUESTS,
                 history_events: int = DEFAULT_MAX_EVENTS,
                 history_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.keyspace = Keyspace()
        self._raw = self.keyspace.raw  # bound once: the write path calls them per command
        self._store = self.keyspace.store
        self.applied_index = 0
        self.expired_total = 0
        self.evicted_total = 0
        self._requests: dict[bytes, Result] = {}
        self._request_order: deque[bytes] = deque()  # oldest first, for trimming
        self._max_requests = max_tracked_requests
        self.history = History(history_events, history_bytes)
        self.scripts: dict[bytes, bytes] = {}  # EVAL's and SCRIPT LOAD's, by SHA1
        self._engine: Engine | None = None  # made at the first script
        self.leases = Leases()
        self._leased = self.leases.of_key  # key -> lease: empty unless leases hold keys
        self._handlers: dict[type, Callable[[int, Command], Result]] = {
            Put: self._put,  # type: ignore[dict-item]
            Delete: self._delete,  # type: ignore[dict-item]
            Expire: self._expire,  # type: ignore[dict-item]
            IncrBy: self._incr_by,  # type: ignore[dict-item]
            Append: self._append,  # type: ignore[dict-item]
            MultiPut: self._multi_put,  # type: ignore[dict-item]
            DeleteExpired: self._delete_expired,  # type: ignore[dict-item]
            Evict: self._evict,  # type: ignore[dict-item]
            Flush: self._flush,  # type: ignore[dict-item]
            Noop: self._noop,  # type: ignore[dict-item]
            SetRange: self._set_range,  # type: ignore[dict-item]
            IncrByFloat: self._incr_by_float,  # type: ignore[dict-item]
            Rename: self._rename,  # type: ignore[dict-item]
            Copy: self._copy,  # type: ignore[dict-item]
            Read: self._read,  # type: ignore[dict-item]
            Txn: self._txn,  # type: ignore[dict-item]
            TypedOp: self._typed,  # type: ignore[dict-item]
            LeaseGrant: self._lease_grant,  # type: ignore[dict-item]
            LeaseKeepAlive: self._lease_keep_alive,  # type: ignore[dict-item]
            LeaseRevoke: self._lease_revoke,  # type: ignore[dict-item]
            LeaseExpire: self._lease_expire,  # type: ignore[dict-item]
        }

    def apply(self, index: int, command: Command) -> Result:
        """Apply ``command`` as log entry ``index``. Indexes must increase."""
        if index <= self.applied_index:
            raise ValueError(f"apply of index {index} after {self.applied_index}")
        rid = command.request_id
        if rid:
            earlier = self._requests.get(rid)
            if earlier is not None:
                self.applied_index = index
                return earlier
        result = self._handlers[type(command)](index, command)
        self.applied_index = index
        if rid:
            self._requests[rid] = result
            order = self._request_order
            order.append(rid)
            if len(order) > self._max_requests:
                del self._requests[order.popleft()]
        return result

    def run_op(self, index: int, op: Op) -> Result:
        """Run one op as part of entry ``index`` (a script's command; no request-id
        bookkeeping: that is the entry's)."""
        return self._handlers[type(op)](index, op)

    def engine(self) -> Engine:
        """The Lua engine scripts run in (made on first use)."""
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def result_for(self, request_id: bytes) -> Result | None:
        """The result of the command applied with ``request_id``, while still tracked."""
        return self._requests.get(request_id)

    def latest_request(self, prefix: bytes) -> tuple[bytes, Result] | None:
        """The highest tracked request id starting with ``prefix``, with its result (a
        blocked pop's attempts: ``service/blocking.py``). A scan of the table: for the
        rare settling after a change of leader, not for a request path."""
        latest: tuple[bytes, Result] | None = None
        for request_id, result in self._requests.items():
            if request_id.startswith(prefix) and (latest is None or request_id > latest[0]):
                latest = (request_id, result)
        return latest

    # --- snapshots ---------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(self.applied_index, self.keyspace.copy_entries(), self._requests.copy(),
                        self.keyspace.copy_containers(), dict(self.scripts), self.leases.copy())

    def restore(self, snapshot: Snapshot) -> None:
        self.restore_parts(snapshot.index, sorted(snapshot.entries.items()), snapshot.requests,
                           snapshot.containers, snapshot.scripts, snapshot.leases)

    def restore_parts(self, index: int, sorted_entries: list[tuple[bytes, bytes]],
                      requests: dict[bytes, Result],
                      containers: Mapping[bytes, Container | bytes] | None = None,
                      scripts: dict[bytes, bytes] | None = None,
                      leases: dict[int, Lease] | None = None) -> None:
        """Restore from a snapshot file's contents, already in key order (the
        containers are the state machine's from now on: the caller lets go of them)."""
        self.keyspace.epoch += 1
        self.keyspace.load(sorted_entries, containers)
        self._requests = dict(requests)
        self._request_order = deque(self._requests)
        self.applied_index = index
        self.history.reset(index)  # a snapshot keeps no history: it starts again here
        self.scripts = dict(scripts or {})
        self.leases.load(leases or {})
        self._leased = self.leases.of_key
        if self._engine is not None:
            self._engine.forget()

    # --- removals and WATCH -------------------------------------------------------

    def _remove(self, key: bytes, index: int, kind: int = DELETE
                ) -> bytes | None:
        old = self.keyspace.remove(key)
        if old is not None:
            self.history.record(index, key, kind)
            if self._leased:
                self.leases.detach(key)
        return old

    def changed_since(self, key: bytes, mod_revision: int, since: int, now_ms: int) -> bool:
        """Whether ``key`` changed after revision ``since``, when it then had
        ``mod_revision`` (0: absent) - written, deleted, expired, evicted or flushed
        (Redis's WATCH); True when the deletions kept no longer reach back that far."""
        _, current = self._live(key, now_ms)
        if (current.mod_revision if current is not None else 0) != mod_revision:
            return True
        if current is not None:
            return False
        return self.history.removed_after(key, since)

    # --- handlers (one per command) ----------------------------------------------

    def _live(self, key: bytes, now_ms: int) -> tuple[bytes | None, Entry | None]:
        raw = self.keyspace.raw(key)
        if raw is None or not is_live(raw, now_ms):
            return raw, None
        return raw, unpack(key, raw)

    @staticmethod
    def _condition_holds(cond: Cond, expected: int, current: Entry | None) -> bool:
        if cond is Cond.NONE:
            return True
        if cond is Cond.ABSENT:
            return current is None
        if cond is Cond.EXISTS:
            return current is not None
        return current is not None and current.mod_revision == expected

    def _write(self, index: int, key: bytes, value: bytes, expires_at_ms: int | None,
               raw: bytes | None, current: Entry | None, container: Container | None = None
               ) -> Entry:
        """Store ``value`` (or, for a typed key, ``container``) under ``key``."""
        if current is None:
            version, create = 1, index
        else:
            version, create = current.version + 1, current.create_revision
        if container is None:
            self.keyspace.store(key, pack(value, index, create, expires_at_ms, version), raw,
                                deadline_of(raw) if raw is not None else 0, expires_at_ms or 0)
            self.history.record(index, key, PUT, value, create, version)
            return Entry(key, value, version, create, index, expires_at_ms)
        self.history.record(index, key, PUT, None, create, version)
        old = self.keyspace.container(key) if raw is not None else None
        self.keyspace.store_container(
            key, pack(b"", index, create, expires_at_ms, version, container.KIND), raw,
            container, old.nbytes if old is not None else 0)
        return Entry(key, b"", version, create, index, expires_at_ms, container.KIND)

    def _put(self, index: int, c: Put) -> Result:
        # The hot path of every write, kept flat: one header unpack for the old entry,
        # one pack for the new one, no intermediate objects beyond the two Entries.
        key = c.key
        raw = self._raw(key)
        current = None
        old_deadline = 0
        if raw is not None:
            mod, create, old_deadline, version, offset = header(raw)
            if not old_deadline or old_deadline > c.now_ms:
                current = Entry(key, raw[offset:], version, create, mod, old_deadline or None,
                                kind_of(raw))
        if c.string_only and current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        if c.cond and not self._condition_holds(c.cond, c.expected_mod_revision, current):
            return Result(Outcome.CONDITION_FAILED, index, current, current)
        lease = c.lease
        if lease or self._leased:
            if lease and lease not in self.leases.by_id:
                return Result(Outcome.NO_LEASE, index, current, current)
            self.leases.attach(key, lease)
        if current is None:
            version, create = 1, index
            expires = c.expires_at_ms
        else:
            version, create = current.version + 1, current.create_revision
            expires = current.expires_at_ms if c.keep_ttl else c.expires_at_ms
        value = c.value
        self._store(key, pack(value, index, create, expires, version), raw, old_deadline,
                    expires or 0)
        self.history.record(index, key, PUT, value, create, version)
        entry = Entry(key, value, version, create, index, expires)
        return Result(OUTCOME_OK, index, entry, current, 0)

    def _delete(self, index: int, c: Delete) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is None:
            if raw is not None:  # expired, not yet collected: collect it now
                self._remove(c.key, index, EXPIRE)
                self.expired_total += 1
            return Result(Outcome.NOT_FOUND, index)
        if not self._condition_holds(c.cond, c.expected_mod_revision, current):
            return Result(Outcome.CONDITION_FAILED, index, current, current)
        if c.string_only and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        self._remove(c.key, index)
        return Result(OUTCOME_OK, index, None, current, 1)

    def _expire(self, index: int, c: Expire) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is None:
            return Result(Outcome.NOT_FOUND, index)
        if c.string_only and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        if c.expires_at_ms is None and current.expires_at_ms is None:
            return Result(OUTCOME_OK, index, current, current, 0)  # PERSIST on a key without TTL
        if c.when and not _expire_allowed(c.when, current.expires_at_ms, c.expires_at_ms):
            return Result(OUTCOME_OK, index, current, current, 0)
        if c.expires_at_ms is not None and c.expires_at_ms <= c.now_ms:
            self._remove(c.key, index)  # a deadline in the past deletes, as in Redis
            return Result(OUTCOME_OK, index, None, current, 1)
        entry = self._write(index, c.key, current.value, c.expires_at_ms, raw, current,
                            self.keyspace.container(c.key) if current.kind else None)
        return Result(OUTCOME_OK, index, entry, current, 1)

    def _incr_by(self, index: int, c: IncrBy) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        number = 0 if current is None else parse_int64(current.value)
        if number is None:
            return Result(Outcome.NOT_INTEGER, index, current, current)
        total = number + c.delta
        if not INT64_MIN <= total <= INT64_MAX:
            return Result(Outcome.OVERFLOW, index, current, current)
        expires = current.expires_at_ms if current else None
        entry = self._write(index, c.key, str(total).encode(), expires, raw, current)
        return Result(OUTCOME_OK, index, entry, current)

    def _append(self, index: int, c: Append) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        old_value = current.value if current else b""
        expires = current.expires_at_ms if current else None
        entry = self._write(index, c.key, old_value + c.value, expires, raw, current)
        return Result(OUTCOME_OK, index, entry, current)

    def _set_range(self, index: int, c: SetRange) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        old_value = current.value if current else b""
        if current is None and not c.value:
            return Result(OUTCOME_OK, index)  # Redis creates nothing, answers 0
        if not c.value:
            return Result(OUTCOME_OK, index, current, current)
        end = c.offset + len(c.value)
        padded = old_value.ljust(c.offset, b"\0")
        value = padded[: c.offset] + c.value + padded[end:]
        expires = current.expires_at_ms if current else None
        entry = self._write(index, c.key, value, expires, raw, current)
        return Result(OUTCOME_OK, index, entry, current)

    def _incr_by_float(self, index: int, c: IncrByFloat) -> Result:
        raw, current = self._live(c.key, c.now_ms)
        if current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        number = parse_long_double(current.value if current is not None else b"0")
        delta = parse_long_double(c.delta)
        if number is None or delta is None:
            return Result(Outcome.NOT_FLOAT, index, current, current)
        total = add_long_double(number, delta)
        if total is None:
            return Result(Outcome.OVERFLOW, index, current, current)
        expires = current.expires_at_ms if current else None
        entry = self._write(index, c.key, format_long_double(total), expires, raw, current)
        return Result(OUTCOME_OK, index, entry, current)

    def _rename(self, index: int, c: Rename) -> Result:
        _, source = self._live(c.source, c.now_ms)
        if source is None:
            return Result(Outcome.NOT_FOUND, index)
        target_raw, target = self._live(c.target, c.now_ms)
        if c.only_if_absent and target is not None:
            return Result(Outcome.CONDITION_FAILED, index, target, source)
        if c.source == c.target:
            return Result(OUTCOME_OK, index, source, source)
        moved = self.keyspace.container(c.source) if source.kind else None
        if self._leased:
            self.leases.detach(c.target)
        entry = self._write(index, c.target, source.value, source.expires_at_ms, target_raw,
                            target, moved)
        self._remove(c.source, index)
        return Result(OUTCOME_OK, index, entry, source, 1)

    def _copy(self, index: int, c: Copy) -> Result:
        _, source = self._live(c.source, c.now_ms)
        target_raw, target = self._live(c.target, c.now_ms)
        if source is None or (target is not None and not c.replace_target) \
                or c.source == c.target:
            return Result(Outcome.CONDITION_FAILED, index, target, source)
        original = self.keyspace.container(c.source) if source.kind else None
        if self._leased:
            self.leases.detach(c.target)
        entry = self._write(index, c.target, source.value, source.expires_at_ms, target_raw,
                            target, original.copy(self.keyspace.epoch) if original else None)
        return Result(OUTCOME_OK, index, entry, source, 1)

    def _read(self, index: int, c: Read) -> Result:
        _, current = self._live(c.key, c.now_ms)
        if current is not None and current.kind:
            return Result(Outcome.WRONG_TYPE, index, current, current)
        return Result(OUTCOME_OK, index, current, current)

    def _typed(self, index: int, c: TypedOp) -> Result:
        ctx = Ctx(self.keyspace, c.now_ms, index, self._remove, self.history, machine=self)
        outcome, reply = attempt(ctx, list(c.args))
        if outcome is not OUTCOME_OK:  # (a failed script keeps what it changed before)
            return TypedResult(outcome, index, reply, tuple(ctx.events))
        ctx.finish()
        return TypedResult(OUTCOME_OK, index, reply, tuple(ctx.events))

    def _txn(self, index: int, c: Txn) -> Result:
        """The success ops if every compare holds and no watched key changed, else the
        failure ops; every op in order at this one index, each with its own result.
        Redis mode: a failed op leaves the others. Atomic: it undoes them all."""
        now_ms = c.now_ms
        if any(self.changed_since(key, mod, since, now_ms) for key, mod, since in c.watched):
            return TxnResult(index, (), 0, succeeded=False)  # WATCH: nothing applies
        succeeded = all(self._holds(compare, now_ms) for compare in c.compares)
        ops = c.ops if succeeded else c.failure
        handlers = self._handlers
        if not c.atomic:
            results = self._each(index, ops)
            return TxnResult(index, results, sum(1 for r in results if r.ok), succeeded)
        # (key, packed entry and container before), in order; a new epoch makes every
        # write to a container copy it first, so the ones held here stay as they were
        undo: list[tuple[bytes, bytes | None, Container | None, int]] = []
        keyspace = self.keyspace
        leased = self._leased
        mark = self.history.mark()
        if any(isinstance(op, TypedOp) for op in ops):
            keyspace.epoch += 1
        done: list[Result] = []
        for position, op in enumerate(ops):
            for key in _keys_of(op):
                undo.append((key, keyspace.raw(key), keyspace.container(key),
                             leased.get(key, 0)))
            result = handlers[type(op)](index, op)
            done.append(result)
            if result.outcome in _FAILURES:
                for key, before, container, lease in reversed(undo):
                    self._put_back(key, before, container)
                    if lease in self.leases.by_id or not lease:
                        self.leases.attach(key, lease)
                self.history.undo(mark)
                return TxnResult(index, tuple(done), 0, succeeded, failed_at=position)
        return TxnResult(index, tuple(done), sum(1 for r in done if r.ok), succeeded)

    def _each(self, index: int, ops: tuple[Op, ...]) -> tuple[Result, ...]:
        """Each op alone (Redis's mode), but a run of writes to one key in one context:
        the same results, versions, history and events as one by one, with the key
        looked up once and stored once (a queue's pushes, a pipeline's HSETs)."""
        handlers = self._handlers
        results: list[Result] = []
        position, count = 0, len(ops)
        while position < count:
            op = ops[position]
            end = position + 1
            key = _one_key(op)
            if key is not None:
                now_ms = op.now_ms
                while end < count and _continues(ops[end], key, now_ms):
                    end += 1
            if end - position == 1:
                results.append(handlers[type(op)](index, op))
            else:
                assert key is not None
                self._typed_run(index, ops, position, end, key, results)
            position = end
        return tuple(results)

    def _typed_run(self, index: int, ops: tuple[Op, ...], start: int, end: int, key: bytes,
                   results: list[Result]) -> None:
        """Ops ``start`` to ``end``, all writes to ``key`` alone, in one context. Each op
        is given ``key`` itself for its key (an equal object): every dict lookup of it
        then matches by identity, without comparing bytes."""
        ctx = Ctx(self.keyspace, ops[start].now_ms, index, self._remove, self.history,
                  machine=self)
        last = end - 1
        for position in range(start, end):
            op = ops[position]
            assert isinstance(op, TypedOp)
            ctx.begin()
            mark = len(ctx.events)
            args = list(op.args)
            args[1] = key
            outcome, reply = attempt(ctx, args)
            if outcome is OUTCOME_OK:  # (an op that fails changed nothing)
                ctx.finish(later=position != last)
            results.append(TypedResult(outcome, index, reply, tuple(ctx.events[mark:])))
        ctx.store()

    def _holds(self, compare: Compare, now_ms: int) -> bool:
        _, entry = self._live(compare.key, now_ms)
        target = compare.target
        have: int | bytes
        if target is Target.VALUE:
            have, want = (entry.value if entry is not None else b""), compare.value
            return _related(have, want, compare.relation)
        if target is Target.EXISTS:
            have = 1 if entry is not None else 0
        elif entry is None:
            have = 0
        elif target is Target.VERSION:
            have = entry.version
        elif target is Target.CREATE_REVISION:
            have = entry.create_revision
        else:
            have = entry.mod_revision
        return _related(have, compare.number, compare.relation)

    def _put_back(self, key: bytes, before: bytes | None, container: Container | None
                  ) -> None:
        """Undo an atomic transaction's change to ``key``: its packed entry (and
        container) as it was."""
        keyspace = self.keyspace
        now = keyspace.raw(key)
        if before is None:
            if now is not None:
                keyspace.remove(key)
        elif container is not None:
            current = keyspace.container(key) if now is not None else None
            keyspace.store_container(key, before, now, container,
                                     current.nbytes if current is not None else 0)
        elif now is not before:
            if now is not None and keyspace.container(key) is not None:
                keyspace.remove(key)  # (a string was replaced by a container)
                now = None
            keyspace.store(key, before, now, deadline_of(now) if now is not None else 0,
                           deadline_of(before))

    def _multi_put(self, index: int, c: MultiPut) -> Result:
        if c.only_if_none_exist and any(self._live(k, c.now_ms)[1] for k, _ in c.items):
            return Result(Outcome.CONDITION_FAILED, index)
        # A live key keeps its create revision and gains a version; every key loses
        # its TTL (Redis MSET, and a RESP pipeline's plain SETs).
        self.keyspace.store_plain(c.items, index, c.now_ms, self.history)
        if self._leased:
            for key, _ in c.items:
                self.leases.detach(key)
        return Result(OUTCOME_OK, index, affected=len(c.items))

    def _delete_expired(self, index: int, c: DeleteExpired) -> Result:
        removed = 0
        for key in c.keys:
            raw = self.keyspace.raw(key)
            if raw is not None and not is_live(raw, c.now_ms):
                self._remove(key, index, EXPIRE)
                removed += 1
        self.expired_total += removed
        return Result(OUTCOME_OK, index, affected=removed)

    def _evict(self, index: int, c: Evict) -> Result:
        removed = sum(1 for key in c.keys
                      if self._remove(key, index, EVICT) is not None)
        self.evicted_total += removed
        return Result(OUTCOME_OK, index, affected=removed)

    def _flush(self, index: int, c: Flush) -> Result:
        removed = len(self.keyspace)
        self.keyspace.clear()
        self.leases.detach_all()
        self.history.record(index, b"", FLUSH)
        return Result(OUTCOME_OK, index, affected=removed)

    def _noop(self, index: int, c: Noop) -> Result:
        return Result(OUTCOME_OK, index)

    # --- leases (core/leases.py) -----------------------------------------------------

    def _lease_grant(self, index: int, c: LeaseGrant) -> Result:
        by_id = self.leases.by_id
        lease_id = c.lease_id
        if lease_id in by_id:
            return Result(Outcome.CONDITION_FAILED, index)
        if not lease_id:
            lease_id = index
            while lease_id in by_id:
                lease_id += 1
        self.leases.grant(lease_id, c.ttl_ms, c.now_ms + c.ttl_ms)
        return Result(OUTCOME_OK, index, affected=lease_id)

    def _lease_keep_alive(self, index: int, c: LeaseKeepAlive) -> Result:
        lease = self.leases.by_id.get(c.lease_id)
        if lease is None or lease.deadline_ms <= c.now_ms:
            return Result(Outcome.NOT_FOUND, index)
        lease.deadline_ms = c.now_ms + lease.ttl_ms
        return Result(OUTCOME_OK, index, affected=lease.ttl_ms)

    def _lease_revoke(self, index: int, c: LeaseRevoke) -> Result:
        if c.lease_id not in self.leases.by_id:
            return Result(Outcome.NOT_FOUND, index)
        return Result(OUTCOME_OK, index, affected=self._revoke(index, c.lease_id, DELETE))

    def _lease_expire(self, index: int, c: LeaseExpire) -> Result:
        by_id = self.leases.by_id
        removed = 0
        for lease_id in c.lease_ids:
            lease = by_id.get(lease_id)
            if lease is not None and lease.deadline_ms <= c.now_ms:
                removed += self._revoke(index, lease_id, DELETE)
        return Result(OUTCOME_OK, index, affected=removed)

    def _revoke(self, index: int, lease_id: int, kind: int) -> int:
        """End a lease and delete its keys at ``index``; how many were deleted."""
        keys = self.leases.revoke(lease_id)
        return sum(1 for key in keys if self._remove(key, index, kind) is not None)


def _expire_allowed(when: ExpireWhen, current_ms: int | None, new_ms: int | None) -> bool:
    """Redis's expireGenericCommand: no deadline counts as infinitely far."""
    if when is ExpireWhen.NX:
        return current_ms is None
    if when is ExpireWhen.XX:
        return current_ms is not None
    if when is ExpireWhen.GT:
        return current_ms is not None and new_ms is not None and new_ms > current_ms
    if when is ExpireWhen.XX_LT and current_ms is None:
        return False
    return new_ms is not None and (current_ms is None or new_ms < current_ms)  # LT


# What makes an op of an atomic transaction fail, undoing the transaction (a delete of
# an absent key, as in etcd, is not a failure: its result says it found nothing).
_FAILURES: Final = frozenset({Outcome.NOT_INTEGER, Outcome.OVERFLOW, Outcome.NOT_FLOAT,
                              Outcome.WRONG_TYPE, Outcome.ERROR, Outcome.NO_LEASE})


def _keys_of(op: Op) -> tuple[bytes, ...]:
    """The keys an op may change (what an atomic transaction must be able to undo)."""
    if isinstance(op, MultiPut):
        return tuple(key for key, _ in op.items)
    if isinstance(op, Rename | Copy):
        return (op.source, op.target)
    if isinstance(op, Flush | Read):
        return ()
    if isinstance(op, TypedOp):
        return tuple(_typed_keys(op))
    return (op.key,)


def _one_key(op: Op) -> bytes | None:
    """The key of a typed write that touches only that key (``TypedSpec.one_key``)."""
    if not isinstance(op, TypedOp):
        return None
    args = op.args
    return args[1] if len(args) > 1 and args[0] in TYPED_ONE_KEY else None


def _continues(op: Op, key: bytes, now_ms: int) -> bool:
    """Whether ``op`` continues a run of writes to ``key`` (what differs, first)."""
    if not isinstance(op, TypedOp):
        return False
    args = op.args
    return (len(args) > 1 and args[1] == key and op.now_ms == now_ms
            and args[0] in TYPED_ONE_KEY)


def _typed_keys(op: TypedOp) -> list[bytes]:
    spec = TYPED_BY_NAME.get(op.args[0])
    return spec.keys(list(op.args)) if spec is not None else []


def _related(have: int | bytes, want: int | bytes, relation: Relation) -> bool:
    if relation is Relation.EQUAL:
        return have == want
    if relation is Relation.NOT_EQUAL:
        return have != want
    if relation is Relation.LESS:
        return have < want  # type: ignore[operator]
    return have > want  # type: ignore[operator]
