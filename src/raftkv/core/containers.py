"""The values a key can hold besides a string: hash, list, set and sorted set
(DATA-MODEL.md section 2), and their image codec.

A container is mutable, but only inside the state machine, and only through
``Keyspace.writable``: copy-on-write by epoch. Each container remembers the epoch it
was made in; taking a snapshot (or starting an atomic transaction) moves the
keyspace to a new epoch, and the first write to an older container after that copies
it first. So a snapshot is a shallow copy of the key -> container map, taken on the
loop in O(keys), and the containers it shares are never changed under it.

Every container keeps ``nbytes``, its payload plus a per-element overhead, up to date
as it changes: the keyspace's memory accounting (eviction's ``max_memory_bytes``)
adds it to the key's own bytes.

Iteration orders are part of determinism: a hash is an insertion-ordered dict and a
set a list of members (never a ``set``, whose order depends on the process's hash
seed), so every replica, and a replica restored from a snapshot, sees the same order.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from sortedcontainers import SortedList

from raftkv.core.binary import U32, BinaryReader


class Kind(enum.IntEnum):
    """What a key holds (Redis's TYPE)."""

    STRING = 0
    HASH = 1
    LIST = 2
    SET = 3
    ZSET = 4


KIND_NAMES: Final = {Kind.STRING: b"string", Kind.HASH: b"hash", Kind.LIST: b"list",
                     Kind.SET: b"set", Kind.ZSET: b"zset"}

# Per-element overhead over the payload bytes (CPython objects and their slots),
# measured with tracemalloc on 100k-element containers (benchmarks/memory_types.py).
HASH_FIELD_OVERHEAD: Final = 118
LIST_ITEM_OVERHEAD: Final = 42
SET_MEMBER_OVERHEAD: Final = 125
ZSET_MEMBER_OVERHEAD: Final = 198
# and per container, what a short one costs beyond its elements (the List object and
# its list; the sorted list's own lists and index), measured on 50k 10-element ones
LIST_BASE_BYTES: Final = 280
ZSET_BASE_BYTES: Final = 480
# Redis 7.0's thresholds (hash- and zset-max-listpack-entries and -value,
# set-max-intset-entries): OBJECT ENCODING answers with the encoding Redis 7.0 would
# use, for clients that look (lists are always quicklists there).
SMALL_ENTRIES: Final = 128
SMALL_VALUE_BYTES: Final = 64
SMALL_INTSET: Final = 512


class Hash:
    __slots__ = ("epoch", "fields", "nbytes")
    KIND: Final = Kind.HASH

    def __init__(self, epoch: int, fields: dict[bytes, bytes] | None = None) -> None:
        self.epoch = epoch
        self.fields: dict[bytes, bytes] = fields if fields is not None else {}
        self.nbytes = sum(len(f) + len(v) + HASH_FIELD_OVERHEAD for f, v in self.fields.items())

    def __len__(self) -> int:
        return len(self.fields)

    def copy(self, epoch: int) -> Hash:
        return Hash(epoch, dict(self.fields))

    def set(self, field: bytes, value: bytes) -> bool:
        """Store ``value`` under ``field``; True when the field is new."""
        old = self.fields.get(field)
        self.fields[field] = value
        if old is None:
            self.nbytes += len(field) + len(value) + HASH_FIELD_OVERHEAD
            return True
        self.nbytes += len(value) - len(old)
        return False

    def delete(self, field: bytes) -> bool:
        old = self.fields.pop(field, None)
        if old is None:
            return False
        self.nbytes -= len(field) + len(old) + HASH_FIELD_OVERHEAD
        return True

    def encoding(self) -> bytes:
        small = len(self.fields) <= SMALL_ENTRIES and all(
            len(f) <= SMALL_VALUE_BYTES and len(v) <= SMALL_VALUE_BYTES
            for f, v in self.fields.items())
        return b"listpack" if small else b"hashtable"


class List:
    """Items in a Python list while the list is small (a deque reserves 64 slots a
    block: most of a short list's memory), in a deque once it is long, where pushes
    and pops at the head must stay O(1)."""

    __slots__ = ("epoch", "items", "nbytes")
    KIND: Final = Kind.LIST

    def __init__(self, epoch: int, items: Iterable[bytes] = ()) -> None:
        self.epoch = epoch
        self.items: list[bytes] | deque[bytes] = _sized(list(items))
        self.nbytes = LIST_BASE_BYTES + sum(len(item) + LIST_ITEM_OVERHEAD
                                            for item in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def copy(self, epoch: int) -> List:
        return List(epoch, self.items)

    def push(self, item: bytes, left: bool) -> None:
        items = self.items
        if isinstance(items, list) and len(items) >= SMALL_ENTRIES:
            items = self.items = deque(items)
        if not left:
            items.append(item)
        elif isinstance(items, deque):
            items.appendleft(item)
        else:
            items.insert(0, item)
        self.nbytes += len(item) + LIST_ITEM_OVERHEAD

    def pop(self, left: bool) -> bytes:
        items = self.items
        if not left:
            item = items.pop()
        elif isinstance(items, deque):
            item = items.popleft()
        else:
            item = items.pop(0)
        self.nbytes -= len(item) + LIST_ITEM_OVERHEAD
        return item

    def insert(self, index: int, item: bytes) -> None:
        self.items.insert(index, item)
        self.nbytes += len(item) + LIST_ITEM_OVERHEAD

    def set(self, index: int, item: bytes) -> None:
        self.nbytes += len(item) - len(self.items[index])
        self.items[index] = item

    def replace_all(self, items: Iterable[bytes]) -> None:
        self.items = _sized(list(items))
        self.nbytes = LIST_BASE_BYTES + sum(len(item) + LIST_ITEM_OVERHEAD
                                            for item in self.items)

    def encoding(self) -> bytes:
        return b"quicklist"


def _sized(items: list[bytes]) -> list[bytes] | deque[bytes]:
    """``items`` as a List holds them: a list while small, a deque past that."""
    return items if len(items) <= SMALL_ENTRIES else deque(items)


class Set:
    """Members in a list, with each member's position in a dict: a random member is
    one index away (SPOP, SRANDMEMBER), and a removal moves the last member into the
    hole. The order is the same on every replica: it depends on the ops alone."""

    __slots__ = ("epoch", "items", "nbytes", "positions")
    KIND: Final = Kind.SET

    def __init__(self, epoch: int, members: Iterable[bytes] = ()) -> None:
        self.epoch = epoch
        self.positions: dict[bytes, int] = {}
        self.items: list[bytes] = []
        self.nbytes = 0
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, member: object) -> bool:
        return member in self.positions

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.items)

    def copy(self, epoch: int) -> Set:
        twin = Set(epoch)
        twin.positions = dict(self.positions)
        twin.items = list(self.items)
        twin.nbytes = self.nbytes
        return twin

    def add(self, member: bytes) -> bool:
        if member in self.positions:
            return False
        self.positions[member] = len(self.items)
        self.items.append(member)
        self.nbytes += len(member) + SET_MEMBER_OVERHEAD
        return True

    def discard(self, member: bytes) -> bool:
        position = self.positions.pop(member, None)
        if position is None:
            return False
        last = self.items.pop()
        if position < len(self.items):
            self.items[position] = last
            self.positions[last] = position
        self.nbytes -= len(member) + SET_MEMBER_OVERHEAD
        return True

    def encoding(self) -> bytes:
        if len(self.items) <= SMALL_INTSET and all(_is_int64_text(m) for m in self.items):
            return b"intset"
        return b"hashtable"


class ZSet:
    """Members with float scores, ordered by (score, member) as Redis orders them."""

    __slots__ = ("epoch", "nbytes", "order", "scores")
    KIND: Final = Kind.ZSET

    def __init__(self, epoch: int, scores: dict[bytes, float] | None = None) -> None:
        self.epoch = epoch
        self.scores: dict[bytes, float] = scores if scores is not None else {}
        self.order: SortedList = SortedList((s, m) for m, s in self.scores.items())
        self.nbytes = ZSET_BASE_BYTES + sum(len(m) + ZSET_MEMBER_OVERHEAD for m in self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def copy(self, epoch: int) -> ZSet:
        return ZSet(epoch, dict(self.scores))

    def set(self, member: bytes, score: float) -> bool:
        """Give ``member`` ``score``; True when the member is new."""
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return False
            self.order.remove((old, member))
        else:
            self.nbytes += len(member) + ZSET_MEMBER_OVERHEAD
        self.scores[member] = score
        self.order.add((score, member))
        return old is None

    def delete(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.order.remove((old, member))
        self.nbytes -= len(member) + ZSET_MEMBER_OVERHEAD
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.order.index((score, member))

    def encoding(self) -> bytes:
        small = len(self.scores) <= SMALL_ENTRIES and all(
            len(m) <= SMALL_VALUE_BYTES for m in self.scores)
        return b"listpack" if small else b"skiplist"


Container = Hash | List | Set | ZSet


def empty(kind: Kind, epoch: int) -> Container:
    if kind is Kind.HASH:
        return Hash(epoch)
    if kind is Kind.LIST:
        return List(epoch)
    if kind is Kind.SET:
        return Set(epoch)
    return ZSet(epoch)


def _is_int64_text(member: bytes) -> bool:
    if not member or len(member) > 20:
        return False
    try:
        number = int(member)
    except ValueError:
        return False
    return str(number).encode() == member and -2**63 <= number < 2**63


# --- image codec: kind u8 | count u32 | elements ----------------------------------
# hash: (field, value) blobs; list and set: item blobs in order; zset: (member blob,
# score f64), in (score, member) order. A blob is u32 length | bytes.

_F64: Final = struct.Struct("<d")
_KIND_COUNT: Final = struct.Struct("<BI")


def encode_container(container: Container) -> bytes:
    parts: list[bytes] = [_KIND_COUNT.pack(container.KIND, len(container))]
    pack_len = U32.pack
    if isinstance(container, Hash):
        for field, value in container.fields.items():
            parts += (pack_len(len(field)), field, pack_len(len(value)), value)
    elif isinstance(container, ZSet):
        for score, member in container.order:
            parts += (pack_len(len(member)), member, _F64.pack(score))
    else:
        for item in container.items:
            parts += (pack_len(len(item)), item)
    return b"".join(parts)


def decode_container(r: BinaryReader, epoch: int) -> Container:
    kind, count = r.fixed(_KIND_COUNT)
    if kind == Kind.HASH:
        return Hash(epoch, {r.blob(): r.blob() for _ in range(count)})
    if kind == Kind.LIST:
        return List(epoch, [r.blob() for _ in range(count)])
    if kind == Kind.SET:
        return Set(epoch, [r.blob() for _ in range(count)])
    if kind == Kind.ZSET:
        scores: dict[bytes, float] = {}
        for _ in range(count):
            member = r.blob()
            scores[member] = r.double()
        return ZSet(epoch, scores)
    raise r.error(f"unknown container kind {kind}")
