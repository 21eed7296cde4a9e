"""Commands (what goes into the log), results (what apply returns), and their codec.

Every change to the keyspace is one of these frozen dataclasses, encoded with a
versioned binary codec (never pickle: log records cross the network in a cluster).
Each command carries:

* ``now_ms`` - the proposer's clock when it was submitted. ``apply`` reads no clock;
  it decides "is this key expired?" against this stamp, so every replica agrees.
* ``request_id`` - chosen by the client (or the service); a command whose id was
  already applied is not applied again and returns the first result (Raft
  dissertation section 6.3). Empty means "no deduplication".

Wire format, version 1: ``u8 version | u8 tag | request_id | fields`` with integers little-endian
and byte strings as ``u32 length | bytes``. Optional integers are ``u8 present | i64``.
"""

from __future__ import annotations

import enum
import struct
from typing import ClassVar, Final, TypeVar

from raftkv.core import frames
from raftkv.core.binary import U32, BinaryReader, u32

CODEC_VERSION: Final = 1


class Cond(enum.IntEnum):
    """A precondition on the key's current (unexpired) state."""

    NONE = 0
    ABSENT = 1  # create-only: If-None-Match: *, SET NX
    EXISTS = 2  # replace-only: SET XX
    MOD_REVISION = 3  # compare-and-swap: If-Match: "<modRevision>"


class ExpireWhen(enum.IntEnum):
    """Redis 7's EXPIRE options, decided at apply time against the key's deadline then
    (a key without one counts as never expiring)."""

    ALWAYS = 0
    NX = 1  # only if the key has no deadline
    XX = 2  # only if it has one
    GT = 3  # only if the new deadline is later (XX GT is the same)
    LT = 4  # only if the new deadline is earlier
    XX_LT = 5  # only if it has one and the new one is earlier


V = TypeVar("V", bound="Value")


class Value:
    """A record compared, hashed and shown by its fields, which a subclass lists in
    ``FIELDS``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def replace(self: V, **changes: object) -> V:
        """A copy with ``changes`` made (each name in FIELDS is an ``__init__`` argument)."""
        values = {name: changes.pop(name, getattr(self, name)) for name in self.FIELDS}
        if changes:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(changes))!r}")
        return type(self)(**values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        pairs = zip(self.FIELDS, self.fields(), strict=True)
        return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in pairs)})"


# --- commands ----------------------------------------------------------------------
# Values of the Value idiom, as entries and results are: a command is built for every
# write, and compiled these are native classes built in ~30 ns where a frozen
# dataclass takes ~750 ns (docs/performance.md).


class Noop(Value):
    """Appended by a new leader at the start of its term (Raft section 8); changes nothing."""

    __slots__ = ("now_ms", "request_id")
    FIELDS = ("request_id", "now_ms")

    def __init__(self, request_id: bytes = b"", now_ms: int = 0) -> None:
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Put(Value):
    """Store ``value`` under ``key``. ``expires_at_ms`` is absolute; None means no TTL
    (unless ``keep_ttl``, which keeps the key's current deadline, Redis SET KEEPTTL)."""

    __slots__ = ("cond", "expected_mod_revision", "expires_at_ms", "keep_ttl", "key", "lease",
                 "now_ms", "request_id", "string_only", "value")
    FIELDS = ("key", "value", "expires_at_ms", "keep_ttl", "cond", "expected_mod_revision",
              "request_id", "now_ms", "string_only", "lease")

    def __init__(self, key: bytes, value: bytes, expires_at_ms: int | None = None,
                 keep_ttl: bool = False, cond: Cond = Cond.NONE, expected_mod_revision: int = 0,
                 request_id: bytes = b"", now_ms: int = 0, string_only: bool = False,
                 lease: int = 0) -> None:
        self.key: Final[bytes] = key
        self.value: Final[bytes] = value
        self.expires_at_ms: Final[int | None] = expires_at_ms
        self.keep_ttl: Final[bool] = keep_ttl
        self.cond: Final[Cond] = cond
        self.expected_mod_revision: Final[int] = expected_mod_revision
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms
        # refuse (WRONG_TYPE) a key holding a hash, list...: Redis's SET GET and GETSET
        self.string_only: Final[bool] = string_only
        # the lease the key goes on (0: none; a put without one takes the key off its
        # lease); an unknown lease refuses the put (NO_LEASE)
        self.lease: Final[int] = lease


class Delete(Value):
    """Remove ``key`` if present (and if the condition holds; ``string_only``: if it
    holds a string, Redis's GETDEL)."""

    __slots__ = ("cond", "expected_mod_revision", "key", "now_ms", "request_id", "string_only")
    FIELDS = ("key", "cond", "expected_mod_revision", "request_id", "now_ms", "string_only")

    def __init__(self, key: bytes, cond: Cond = Cond.NONE, expected_mod_revision: int = 0,
                 request_id: bytes = b"", now_ms: int = 0, string_only: bool = False) -> None:
        self.key: Final[bytes] = key
        self.cond: Final[Cond] = cond
        self.expected_mod_revision: Final[int] = expected_mod_revision
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms
        self.string_only: Final[bool] = string_only


class Expire(Value):
    """Set an absolute deadline on an existing key, or remove it (``expires_at_ms`` None:
    Redis PERSIST). A deadline not after ``now_ms`` deletes the key, as Redis does.
    ``when`` makes it conditional on the current deadline (EXPIRE NX/XX/GT/LT)."""

    __slots__ = ("expires_at_ms", "key", "now_ms", "request_id", "string_only", "when")
    FIELDS = ("key", "expires_at_ms", "request_id", "now_ms", "when", "string_only")

    def __init__(self, key: bytes, expires_at_ms: int | None, request_id: bytes = b"",
                 now_ms: int = 0, when: ExpireWhen = ExpireWhen.ALWAYS,
                 string_only: bool = False) -> None:
        self.key: Final[bytes] = key
        self.expires_at_ms: Final[int | None] = expires_at_ms
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms
        self.when: Final[ExpireWhen] = when
        self.string_only: Final[bool] = string_only  # Redis's GETEX


class IncrBy(Value):
    """Add ``delta`` to the base-10 integer stored at ``key`` (missing counts as 0)."""

    __slots__ = ("delta", "key", "now_ms", "request_id")
    FIELDS = ("key", "delta", "request_id", "now_ms")

    def __init__(self, key: bytes, delta: int, request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.key: Final[bytes] = key
        self.delta: Final[int] = delta
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Append(Value):
    """Append ``value`` to the key's value (missing counts as empty); keeps the TTL."""

    __slots__ = ("key", "now_ms", "request_id", "value")
    FIELDS = ("key", "value", "request_id", "now_ms")

    def __init__(self, key: bytes, value: bytes, request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.key: Final[bytes] = key
        self.value: Final[bytes] = value
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class MultiPut(Value):
    """Store several keys atomically (Redis MSET); with ``only_if_none_exist`` store
    none of them if any exists (MSETNX)."""

    __slots__ = ("items", "now_ms", "only_if_none_exist", "request_id")
    FIELDS = ("items", "only_if_none_exist", "request_id", "now_ms")

    def __init__(self, items: tuple[tuple[bytes, bytes], ...], only_if_none_exist: bool = False,
                 request_id: bytes = b"", now_ms: int = 0) -> None:
        self.items: Final[tuple[tuple[bytes, bytes], ...]] = items
        self.only_if_none_exist: Final[bool] = only_if_none_exist
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class DeleteExpired(Value):
    """Delete those of ``keys`` whose deadline is not after ``now_ms``.

    Proposed only by the leader (or the single node) after scanning its expiry index,
    so all replicas delete the same keys at the same index. A key refreshed since the
    scan is left alone: the check happens again here, at apply time."""

    __slots__ = ("keys", "now_ms", "request_id")
    FIELDS = ("keys", "request_id", "now_ms")

    def __init__(self, keys: tuple[bytes, ...], request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.keys: Final[tuple[bytes, ...]] = keys
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Evict(Value):
    """Delete ``keys`` unconditionally: the leader's eviction decision under memory
    pressure (the policy runs outside ``apply``; only its outcome is logged)."""

    __slots__ = ("keys", "now_ms", "request_id")
    FIELDS = ("keys", "request_id", "now_ms")

    def __init__(self, keys: tuple[bytes, ...], request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.keys: Final[tuple[bytes, ...]] = keys
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Flush(Value):
    """Delete every key (Redis FLUSHDB and FLUSHALL; raftkv has one database)."""

    __slots__ = ("now_ms", "request_id")
    FIELDS = ("request_id", "now_ms")

    def __init__(self, request_id: bytes = b"", now_ms: int = 0) -> None:
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class SetRange(Value):
    """Overwrite the key's value from byte ``offset`` with ``value``, padding with zero
    bytes (Redis SETRANGE; a missing key counts as empty; keeps the TTL)."""

    __slots__ = ("key", "now_ms", "offset", "request_id", "value")
    FIELDS = ("key", "offset", "value", "request_id", "now_ms")

    def __init__(self, key: bytes, offset: int, value: bytes, request_id: bytes = b"",
                 now_ms: int = 0) -> None:
        self.key: Final[bytes] = key
        self.offset: Final[int] = offset
        self.value: Final[bytes] = value
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class IncrByFloat(Value):
    """Add ``delta``, a decimal number as the client wrote it, to the float stored at
    ``key`` (missing counts as 0; Redis INCRBYFLOAT, in long double: core/numbers.py)."""

    __slots__ = ("delta", "key", "now_ms", "request_id")
    FIELDS = ("key", "delta", "request_id", "now_ms")

    def __init__(self, key: bytes, delta: bytes, request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.key: Final[bytes] = key
        self.delta: Final[bytes] = delta
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Rename(Value):
    """Move ``source``'s value and deadline to ``target``, replacing it unless
    ``only_if_absent`` (Redis RENAME / RENAMENX)."""

    __slots__ = ("now_ms", "only_if_absent", "request_id", "source", "target")
    FIELDS = ("source", "target", "only_if_absent", "request_id", "now_ms")

    def __init__(self, source: bytes, target: bytes, only_if_absent: bool = False,
                 request_id: bytes = b"", now_ms: int = 0) -> None:
        self.source: Final[bytes] = source
        self.target: Final[bytes] = target
        self.only_if_absent: Final[bool] = only_if_absent
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Copy(Value):
    """Copy ``source``'s value and deadline to ``target``; an existing target only with
    ``replace`` (Redis COPY)."""

    __slots__ = ("now_ms", "replace_target", "request_id", "source", "target")
    FIELDS = ("source", "target", "replace_target", "request_id", "now_ms")

    def __init__(self, source: bytes, target: bytes, replace_target: bool = False,
                 request_id: bytes = b"", now_ms: int = 0) -> None:
        self.source: Final[bytes] = source
        self.target: Final[bytes] = target
        self.replace_target: Final[bool] = replace_target
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Read(Value):
    """A read inside a transaction: the key's live entry at that point of it (its
    result's ``entry``; None when absent). Changes nothing."""

    __slots__ = ("key", "now_ms", "request_id")
    FIELDS = ("key", "request_id", "now_ms")

    def __init__(self, key: bytes, request_id: bytes = b"", now_ms: int = 0) -> None:
        self.key: Final[bytes] = key
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class TypedOp(Value):
    """A command on a hash, list, set or sorted set, as its Redis command line (the
    name in lower case first): ``core/typed`` runs it at apply time on every replica.
    A read one changes nothing (it answers at its point in a transaction)."""

    __slots__ = ("args", "now_ms", "request_id")
    FIELDS = ("args", "request_id", "now_ms")

    def __init__(self, args: tuple[bytes, ...], request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.args: Final[tuple[bytes, ...]] = args
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class LeaseGrant(Value):
    """Start lease ``lease_id`` (0: the entry's index, or the next id after it not in
    use), running out ``ttl_ms`` after ``now_ms``. The result's ``affected`` is the id;
    CONDITION_FAILED when the id asked for is in use."""

    __slots__ = ("lease_id", "now_ms", "request_id", "ttl_ms")
    FIELDS = ("lease_id", "ttl_ms", "request_id", "now_ms")

    def __init__(self, lease_id: int, ttl_ms: int, request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.lease_id: Final[int] = lease_id
        self.ttl_ms: Final[int] = ttl_ms
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class LeaseKeepAlive(Value):
    """Move the lease's deadline to ``now_ms`` plus its TTL (NOT_FOUND: no such lease,
    or it ran out: a keep-alive never brings a lease back)."""

    __slots__ = ("lease_id", "now_ms", "request_id")
    FIELDS = ("lease_id", "request_id", "now_ms")

    def __init__(self, lease_id: int, request_id: bytes = b"", now_ms: int = 0) -> None:
        self.lease_id: Final[int] = lease_id
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class LeaseRevoke(Value):
    """End the lease and delete its keys (``affected``: how many; NOT_FOUND: no such
    lease)."""

    __slots__ = ("lease_id", "now_ms", "request_id")
    FIELDS = ("lease_id", "request_id", "now_ms")

    def __init__(self, lease_id: int, request_id: bytes = b"", now_ms: int = 0) -> None:
        self.lease_id: Final[int] = lease_id
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class LeaseExpire(Value):
    """Revoke those of ``lease_ids`` whose deadline is not after ``now_ms``: proposed
    by the leader only, checked again here (a lease kept alive since stays)."""

    __slots__ = ("lease_ids", "now_ms", "request_id")
    FIELDS = ("lease_ids", "request_id", "now_ms")

    def __init__(self, lease_ids: tuple[int, ...], request_id: bytes = b"", now_ms: int = 0
                 ) -> None:
        self.lease_ids: Final[tuple[int, ...]] = lease_ids
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms


class Target(enum.IntEnum):
    """What a transaction's compare looks at (etcd's compare targets)."""

    VALUE = 0
    VERSION = 1
    CREATE_REVISION = 2
    MOD_REVISION = 3
    EXISTS = 4  # 1 when the key is live, 0 when not


class Relation(enum.IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


class Compare(Value):
    """One condition of a transaction: the key's ``target`` stands in ``relation`` to
    ``number`` (or to ``value`` for VALUE). An absent key has value b"" and every
    number 0, as in etcd."""

    __slots__ = ("key", "number", "relation", "target", "value")
    FIELDS = ("key", "target", "relation", "number", "value")

    def __init__(self, key: bytes, target: Target, relation: Relation, number: int = 0,
                 value: bytes = b"") -> None:
        self.key: Final[bytes] = key
        self.target: Final[Target] = target
        self.relation: Final[Relation] = relation
        self.number: Final[int] = number
        self.value: Final[bytes] = value


class Txn(Value):
    """Several operations applied as one log entry, at one revision, by every replica
    alike (DATA-MODEL.md section 1). If every compare holds (and no watched key
    changed), ``ops`` apply, else ``failure``; each op sees the effects of the ops
    before it, and has its own result in the ``TxnResult``.

    Two failure modes. Redis's (EXEC): an op that fails (a wrong number, a missing key)
    has its own failed result and the others still apply - Redis never rolls back.
    ``atomic`` (HTTP, etcd): the first op that fails undoes every change of the
    transaction, which answers with that op's index (``failed_at``)."""

    __slots__ = ("atomic", "compares", "failure", "now_ms", "ops", "request_id", "watched")
    FIELDS = ("ops", "request_id", "now_ms", "watched", "compares", "failure", "atomic")

    def __init__(self, ops: tuple[Op, ...], request_id: bytes = b"", now_ms: int = 0,
                 watched: tuple[tuple[bytes, int, int], ...] = (),
                 compares: tuple[Compare, ...] = (), failure: tuple[Op, ...] = (),
                 atomic: bool = False) -> None:
        self.ops: Final[tuple[Op, ...]] = ops
        self.request_id: Final[bytes] = request_id
        self.now_ms: Final[int] = now_ms
        # Redis's WATCH: (key, its mod revision then - 0: absent, the revision it was
        # watched at); if any changed since, nothing applies.
        self.watched: Final[tuple[tuple[bytes, int, int], ...]] = watched
        self.compares: Final[tuple[Compare, ...]] = compares
        self.failure: Final[tuple[Op, ...]] = failure
        self.atomic: Final[bool] = atomic


# What a transaction may hold: the commands a client can send, and reads.
Op = (Put | Delete | Expire | IncrBy | Append | MultiPut | Flush | SetRange | IncrByFloat
      | Rename | Copy | Read | TypedOp)
Command = (Noop | Put | Delete | Expire | IncrBy | Append | MultiPut | DeleteExpired | Evict
           | Flush | SetRange | IncrByFloat | Rename | Copy | Read | Txn | TypedOp
           | LeaseGrant | LeaseKeepAlive | LeaseRevoke | LeaseExpire)
OP_TYPES: Final = (Put, Delete, Expire, IncrBy, Append, MultiPut, Flush, SetRange, IncrByFloat,
                   Rename, Copy, Read, TypedOp)


class Outcome(enum.IntEnum):
    """How a command ended. Only OK changed the keyspace (for batches: at least one key)."""

    OK = 0
    CONDITION_FAILED = 1
    NOT_FOUND = 2
    NOT_INTEGER = 3
    OVERFLOW = 4  # INCR past the signed 64-bit range; INCRBYFLOAT to NaN or infinity
    NOT_FLOAT = 5
    TXN_FAILED = 6  # an atomic transaction's op failed: nothing of it applied
    WRONG_TYPE = 7  # a string op on a hash, list...; a typed op on another type
    ERROR = 8  # a typed op refused its arguments (the reply is Redis's error text)
    NO_LEASE = 9  # a put named a lease that does not exist (or ran out)


# For the per-request paths: on Python 3.11 reading a member off its enum class
# (``Outcome.OK``) goes through EnumType's attribute hook, ~90 ns each time.
OUTCOME_OK: Final = Outcome.OK


class Entry(Value):
    """A key's stored state. Revisions are log indexes and only grow.

    Entries and results are plain classes, compiled to native ones: apply builds one or
    two per write and every read builds one, and from compiled code a native object is
    built in ~50 ns, a NamedTuple in ~250 ns and a frozen dataclass in over 1 us. They
    are values: their fields are ``Final`` (mypy rejects any assignment outside
    ``__init__``, and compiled they are read-only) and they compare by their fields."""

    __slots__ = ("create_revision", "expires_at_ms", "key", "kind", "mod_revision", "value",
                 "version")
    FIELDS = ("key", "value", "version", "create_revision", "mod_revision", "expires_at_ms",
              "kind")

    def __init__(self, key: bytes, value: bytes, version: int, create_revision: int,
                 mod_revision: int, expires_at_ms: int | None, kind: int = 0) -> None:
        self.key: Final[bytes] = key
        self.value: Final[bytes] = value  # b"" for a key that holds no string
        self.version: Final[int] = version
        self.create_revision: Final[int] = create_revision
        self.mod_revision: Final[int] = mod_revision
        self.expires_at_ms: Final[int | None] = expires_at_ms
        self.kind: Final[int] = kind  # a containers.Kind: 0 for a string


class Result(Value):
    """What ``apply`` returns: the outcome, the index it was applied at, the key's
    state after (``entry``) and before (``previous``), and how many keys a batch or
    an expire changed (``affected``). A value, as Entry is."""

    __slots__ = ("affected", "entry", "outcome", "previous", "revision")
    FIELDS: ClassVar[tuple[str, ...]] = ("outcome", "revision", "entry", "previous", "affected")

    def __init__(self, outcome: Outcome, revision: int, entry: Entry | None = None,
                 previous: Entry | None = None, affected: int = 0) -> None:
        self.outcome: Final[Outcome] = outcome
        self.revision: Final[int] = revision
        self.entry: Final[Entry | None] = entry
        self.previous: Final[Entry | None] = previous
        self.affected: Final[int] = affected

    @property
    def ok(self) -> bool:
        return self.outcome is OUTCOME_OK


class TxnResult(Result):
    """A transaction's result: OK at its revision, with ``results``, one per op."""

    __slots__ = ("failed_at", "results", "succeeded")
    FIELDS = ("outcome", "revision", "affected", "results", "succeeded", "failed_at")

    def __init__(self, revision: int, results: tuple[Result, ...], affected: int = 0,
                 succeeded: bool = True, failed_at: int = -1) -> None:
        super().__init__(OUTCOME_OK if failed_at < 0 else Outcome.TXN_FAILED, revision, None,
                         None, affected)
        self.results: Final[tuple[Result, ...]] = results
        # False: a compare did not hold or a watched key changed (``failure`` ran)
        self.succeeded: Final[bool] = succeeded
        self.failed_at: Final[int] = failed_at  # atomic: the op that failed (all undone)


class TypedResult(Result):
    """A typed op's result: its ``reply`` (``core/typed/replies.py``; for ERROR and
    WRONG_TYPE, the error text), and the keyspace ``events`` it caused, (event, key,
    class) as Redis names them."""

    __slots__ = ("events", "reply")
    FIELDS = ("outcome", "revision", "reply", "events")

    def __init__(self, outcome: Outcome, revision: int, reply: object,
                 events: tuple[tuple[bytes, bytes, str], ...] = ()) -> None:
        super().__init__(outcome, revision, None, None, 1 if events else 0)
        self.reply: Final[object] = reply
        self.events: Final[tuple[tuple[bytes, bytes, str], ...]] = events


# --- codec -------------------------------------------------------------------------

_TAGS: Final[dict[type, int]] = {
    Noop: 0,
    Put: 1,
    Delete: 2,
    Expire: 3,
    IncrBy: 4,
    Append: 5,
    MultiPut: 6,
    DeleteExpired: 7,
    Evict: 8,
    # 9: an Expire with a condition (the tag 3 form has none, as version 1 wrote it)
    Flush: 10,
    SetRange: 11,
    IncrByFloat: 12,
    Rename: 13,
    Copy: 14,
    Read: 15,
    Txn: 16,
    TypedOp: 17,
    LeaseGrant: 18,
    LeaseKeepAlive: 19,
    LeaseRevoke: 20,
    LeaseExpire: 21,
    # 22: a Put with a lease (the tag 1 form has none, as version 1 wrote it)
}
_I64: Final = struct.Struct("<q")
_HEAD: Final = struct.Struct("<BB")
_PUT_FIXED: Final = struct.Struct("<BqBBqq")  # has_ttl, expires_at, keep_ttl, cond, expected, now


class CodecError(ValueError):
    """Raised when bytes do not decode to a command of a known version."""


def _b(out: bytearray, data: bytes) -> None:
    out += u32(len(data))
    out += data


_PUT_HEAD: Final = _HEAD.pack(CODEC_VERSION, 1)
_MULTI_PUT_HEAD: Final = _HEAD.pack(CODEC_VERSION, 6)
_MULTI_PUT_FIXED: Final = struct.Struct("<IBq")


def encode(cmd: Command) -> bytes:
    """Encode a command to its versioned binary form."""
    if type(cmd) is Put and not cmd.lease:  # the hot path, flattened: the general bytes
        rid, key, value, exp = cmd.request_id, cmd.key, cmd.value, cmd.expires_at_ms
        return b"".join((
            _PUT_HEAD, u32(len(rid)), rid, u32(len(key)), key, u32(len(value)), value,
            _PUT_FIXED.pack(exp is not None, exp or 0, cmd.keep_ttl | cmd.string_only << 1,
                            cmd.cond, cmd.expected_mod_revision, cmd.now_ms),
        ))
    if type(cmd) is MultiPut:  # a RESP pipeline's SETs: flattened the same way
        rid = cmd.request_id
        parts = [_MULTI_PUT_HEAD, u32(len(rid)), rid,
                 _MULTI_PUT_FIXED.pack(len(cmd.items), cmd.only_if_none_exist, cmd.now_ms)]
        for key, value in cmd.items:
            parts.append(u32(len(key)))
            parts.append(key)
            parts.append(u32(len(value)))
            parts.append(value)
        return b"".join(parts)
    if type(cmd) is TypedOp:  # a typed write (LPUSH, HSET...): flattened the same way
        return _encode_typed(cmd)
    if type(cmd) is Txn:
        return _encode_txn(cmd)
    out = bytearray(_HEAD.pack(CODEC_VERSION, _TAGS[type(cmd)]))
    _b(out, cmd.request_id)
    if isinstance(cmd, Put):
        _b(out, cmd.key)
        _b(out, cmd.value)
        exp = cmd.expires_at_ms
        out += _PUT_FIXED.pack(
            exp is not None, exp or 0, cmd.keep_ttl | cmd.string_only << 1, cmd.cond,
            cmd.expected_mod_revision, cmd.now_ms
        )
        if cmd.lease:
            out[1] = _LEASED_PUT_TAG
            out += _I64.pack(cmd.lease)
    elif isinstance(cmd, Delete):
        _b(out, cmd.key)
        out += _BQQ.pack(cmd.cond | cmd.string_only << 7, cmd.expected_mod_revision, cmd.now_ms)
    elif isinstance(cmd, Expire):
        _b(out, cmd.key)
        exp = cmd.expires_at_ms
        out += _BQQ.pack((exp is not None) | cmd.string_only << 1, exp or 0, cmd.now_ms)
        if cmd.when:
            out[1] = _EXPIRE_WHEN_TAG
            out.append(cmd.when)
    elif isinstance(cmd, IncrBy):
        _b(out, cmd.key)
        out += struct.pack("<qq", cmd.delta, cmd.now_ms)
    elif isinstance(cmd, Append):
        _b(out, cmd.key)
        _b(out, cmd.value)
        out += _I64.pack(cmd.now_ms)
    elif isinstance(cmd, SetRange):
        _b(out, cmd.key)
        _b(out, cmd.value)
        out += _QQ.pack(cmd.offset, cmd.now_ms)
    elif isinstance(cmd, IncrByFloat):
        _b(out, cmd.key)
        _b(out, cmd.delta)
        out += _I64.pack(cmd.now_ms)
    elif isinstance(cmd, Rename | Copy):
        _b(out, cmd.source)
        _b(out, cmd.target)
        flag = cmd.only_if_absent if isinstance(cmd, Rename) else cmd.replace_target
        out += _BQ.pack(flag, cmd.now_ms)
    elif isinstance(cmd, Read):
        _b(out, cmd.key)
        out += _I64.pack(cmd.now_ms)
    elif isinstance(cmd, LeaseGrant):
        out += _QQQ.pack(cmd.lease_id, cmd.ttl_ms, cmd.now_ms)
    elif isinstance(cmd, LeaseKeepAlive | LeaseRevoke):
        out += _QQ.pack(cmd.lease_id, cmd.now_ms)
    elif isinstance(cmd, LeaseExpire):
        out += _IQ.pack(len(cmd.lease_ids), cmd.now_ms)
        for lease_id in cmd.lease_ids:
            out += _I64.pack(lease_id)
    elif isinstance(cmd, DeleteExpired | Evict):
        out += struct.pack("<Iq", len(cmd.keys), cmd.now_ms)
        for key in cmd.keys:
            _b(out, key)
    else:
        out += _I64.pack(cmd.now_ms)
    return bytes(out)


def _encode_typed(cmd: TypedOp) -> bytes:
    return _frame_record(_TYPED_HEAD, cmd.request_id, cmd.now_ms, cmd.args)


def _encode_txn(cmd: Txn) -> bytes:
    rid = cmd.request_id
    parts = [_TXN_HEAD, u32(len(rid)), rid, _pack_iq(len(cmd.ops), cmd.now_ms)]
    _blobs(parts, cmd.ops)
    parts.append(u32(len(cmd.watched)))
    for key, mod, since in cmd.watched:
        parts += (u32(len(key)), key, _QQ.pack(mod, since))
    parts.append(u32(len(cmd.compares)))
    for compare in cmd.compares:
        key, value = compare.key, compare.value
        parts += (u32(len(key)), key,
                  _COMPARE.pack(compare.target, compare.relation, compare.number),
                  u32(len(value)), value)
    parts.append(u32(len(cmd.failure)))
    _blobs(parts, cmd.failure)
    parts.append(b"\x01" if cmd.atomic else b"\x00")
    return b"".join(parts)


def _blobs(parts: list[bytes], ops: tuple[Op, ...]) -> None:
    """Each op's encoding, its length first."""
    parts.append(_join_frames([encode(op) for op in ops]))


_EXPIRE_WHEN_TAG: Final = 9
_LEASED_PUT_TAG: Final = 22
_QQQ: Final = struct.Struct("<qqq")
_BQQ: Final = struct.Struct("<Bqq")
_QQ: Final = struct.Struct("<qq")
_IBQ: Final = struct.Struct("<IBq")
_IQ: Final = struct.Struct("<Iq")
_U8: Final = struct.Struct("<B")
_COMPARE: Final = struct.Struct("<BBq")
_TARGETS: Final = frozenset(int(t) for t in Target)
_RELATIONS: Final = frozenset(int(r) for r in Relation)
_BQ: Final = struct.Struct("<Bq")
_pack_iq: Final = _IQ.pack
_frame_record: Final = frames.record  # (Final: C statics, not a lookup per typed op)
_join_frames: Final = frames.join
_TYPED_HEAD: Final = _HEAD.pack(CODEC_VERSION, _TAGS[TypedOp])
_TXN_HEAD: Final = _HEAD.pack(CODEC_VERSION, _TAGS[Txn])
_EXPIRE_WHENS: Final = frozenset(int(w) for w in ExpireWhen if w)


def decode(data: bytes) -> Command:
    """Decode bytes made by :func:`encode`; raise CodecError on anything else."""
    r = BinaryReader(data, CodecError)
    version, tag = r.fixed(_HEAD)
    if version != CODEC_VERSION:
        raise CodecError(f"unknown command codec version {version}")
    rid = r.blob()
    cmd: Command
    if tag == 1 or tag == _LEASED_PUT_TAG:
        key, value = r.blob(), r.blob()
        has_ttl, exp, keep, cond, expected, now = r.fixed(_PUT_FIXED)
        lease = r.fixed(_I64)[0] if tag == _LEASED_PUT_TAG else 0
        cmd = Put(key, value, exp if has_ttl else None, bool(keep & 1), Cond(cond), expected, rid,
                  now, bool(keep & 2), lease)
    elif tag == 2:
        key = r.blob()
        cond, expected, now = r.fixed(_BQQ)
        cmd = Delete(key, Cond(cond & 0x7F), expected, rid, now, bool(cond & 0x80))
    elif tag in (3, _EXPIRE_WHEN_TAG):
        key = r.blob()
        has_ttl, exp, now = r.fixed(_BQQ)
        when = ExpireWhen.ALWAYS
        if tag == _EXPIRE_WHEN_TAG:
            (raw_when,) = r.fixed(_U8)
            if raw_when not in _EXPIRE_WHENS:
                raise CodecError(f"unknown expire condition {raw_when}")
            when = ExpireWhen(raw_when)
        cmd = Expire(key, exp if has_ttl & 1 else None, rid, now, when, bool(has_ttl & 2))
    elif tag == 4:
        key = r.blob()
        delta, now = r.fixed(_QQ)
        cmd = IncrBy(key, delta, rid, now)
    elif tag == 5:
        key, value = r.blob(), r.blob()
        (now,) = r.fixed(_I64)
        cmd = Append(key, value, rid, now)
    elif tag == 6:
        n, nx, now = r.fixed(_IBQ)
        items = tuple((r.blob(), r.blob()) for _ in range(n))
        cmd = MultiPut(items, bool(nx), rid, now)
    elif tag in (7, 8):
        n, now = r.fixed(_IQ)
        keys = tuple(r.blob() for _ in range(n))
        cmd = DeleteExpired(keys, rid, now) if tag == 7 else Evict(keys, rid, now)
    elif tag == 11:
        key, value = r.blob(), r.blob()
        offset, now = r.fixed(_QQ)
        cmd = SetRange(key, offset, value, rid, now)
    elif tag == 12:
        key, text = r.blob(), r.blob()
        (now,) = r.fixed(_I64)
        cmd = IncrByFloat(key, text, rid, now)
    elif tag in (13, 14):
        source, target = r.blob(), r.blob()
        flag, now = r.fixed(_BQ)
        cmd = Rename(source, target, bool(flag), rid, now) if tag == 13 else \
            Copy(source, target, bool(flag), rid, now)
    elif tag == 15:
        key = r.blob()
        (now,) = r.fixed(_I64)
        cmd = Read(key, rid, now)
    elif tag == 16:
        n, now = r.fixed(_IQ)
        ops = list(_decode_ops(r, n))
        (count,) = r.fixed(U32)
        watched = []
        for _ in range(count):
            watched_key = r.blob()
            mod, since = r.fixed(_QQ)
            watched.append((watched_key, mod, since))
        (count,) = r.fixed(U32)
        compares = []
        for _ in range(count):
            compare_key = r.blob()
            what, relation, number = r.fixed(_COMPARE)
            if what not in _TARGETS or relation not in _RELATIONS:
                raise CodecError(f"unknown compare {what}/{relation}")
            compares.append(Compare(compare_key, Target(what), Relation(relation), number,
                                    r.blob()))
        failure = _decode_ops(r)
        (atomic,) = r.fixed(_U8)
        cmd = Txn(tuple(ops), rid, now, tuple(watched), tuple(compares), failure, bool(atomic))
    elif tag == 17:
        n, now = r.fixed(_IQ)
        if n < 1:
            raise CodecError("a typed op without a command name")
        cmd = TypedOp(tuple(r.blob() for _ in range(n)), rid, now)
    elif tag == 18:
        lease_id, ttl_ms, now = r.fixed(_QQQ)
        cmd = LeaseGrant(lease_id, ttl_ms, rid, now)
    elif tag in (19, 20):
        lease_id, now = r.fixed(_QQ)
        cmd = LeaseKeepAlive(lease_id, rid, now) if tag == 19 else LeaseRevoke(lease_id, rid, now)
    elif tag == 21:
        n, now = r.fixed(_IQ)
        cmd = LeaseExpire(tuple(r.fixed(_I64)[0] for _ in range(n)), rid, now)
    elif tag in (0, 10):
        (now,) = r.fixed(_I64)
        cmd = Noop(rid, now) if tag == 0 else Flush(rid, now)
    else:
        raise CodecError(f"unknown command tag {tag}")
    if not r.at_end:
        raise CodecError("trailing bytes after command")
    return cmd


def _decode_ops(r: BinaryReader, count: int | None = None) -> tuple[Op, ...]:
    """``count`` encoded ops (None: a u32 count first), each a command a client may put
    in a transaction."""
    if count is None:
        (count,) = r.fixed(U32)
    ops: list[Op] = []
    for _ in range(count):
        op = decode(r.blob())
        if not isinstance(op, OP_TYPES):
            raise CodecError(f"a transaction cannot hold a {type(op).__name__}")
        ops.append(op)
    return tuple(ops)
