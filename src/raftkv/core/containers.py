"""The values a key can hold besides a string: hash, list, set, sorted set and stream
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

import bisect
import enum
import math
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final, Protocol

from raftkv.core import order, packed
from raftkv.core.binary import U32, BinaryReader
from raftkv.core.sorted_keys import SortedKeys


class Kind(enum.IntEnum):
    """What a key holds (Redis's TYPE)."""

    STRING = 0
    HASH = 1
    LIST = 2
    SET = 3
    ZSET = 4
    STREAM = 5


KIND_NAMES: Final = {Kind.STRING: b"string", Kind.HASH: b"hash", Kind.LIST: b"list",
                     Kind.SET: b"set", Kind.ZSET: b"zset", Kind.STREAM: b"stream"}

# Per-element overhead over the payload bytes (CPython objects and their slots),
# measured with tracemalloc on 100k-element containers (benchmarks/memory_types.py).
HASH_FIELD_OVERHEAD: Final = 118
LIST_ITEM_OVERHEAD: Final = 42
SET_MEMBER_OVERHEAD: Final = 125
ZSET_MEMBER_OVERHEAD: Final = 159  # (over twice the member: its order key repeats it)
STREAM_ENTRY_OVERHEAD: Final = 160  # (an estimate: the id tuple, the fields list)
PENDING_OVERHEAD: Final = 200
# and per container, what a short one costs beyond its elements (the List object and
# its list; the sorted list's own lists and index), measured on 50k 10-element ones
LIST_BASE_BYTES: Final = 280
# and a packed hash, list or sorted set, beyond its packed bytes: its bytes object's
# header (the keyspace holds the packed form alone, Keyspace._containers)
PACKED_BASE_BYTES: Final = 33
ZSET_BASE_BYTES: Final = 480
# Redis 7.0's thresholds (hash- and zset-max-listpack-entries and -value,
# set-max-intset-entries): OBJECT ENCODING answers with the encoding Redis 7.0 would
# use, for clients that look (lists are always quicklists there).
SMALL_ENTRIES: Final = 128
SMALL_VALUE_BYTES: Final = 64
SMALL_INTSET: Final = 512
_EXACT_INT: Final = 2.0**53  # (every integer below it is a float exactly)
_SCORE_BYTES: Final = order.SCORE_BYTES  # an order key's score, before its member
_HASH: Final = int(Kind.HASH)  # (as plain ints: compiled, a comparison is a C one)
_LIST: Final = int(Kind.LIST)
# The C modules' functions, bound once (Final: compiled, each is a C static, where
# ``packed.find(...)`` looked the module and then the function up on every call)
_order_key: Final = order.key
_count_strings: Final = packed.count
_packed_find: Final = packed.find
_packed_pack: Final = packed.pack
_packed_unpack: Final = packed.unpack
_packed_pack_pairs: Final = packed.pack_pairs
_packed_unpack_pairs: Final = packed.unpack_pairs
_packed_put_pair: Final = packed.put_pair
_packed_drop_pair: Final = packed.drop_pair
_packed_push: Final = packed.push
_packed_pop: Final = packed.pop


class Hash:
    """Fields in an insertion-ordered dict, or, for a small hash at rest, *packed*:
    every field and value after its length in one byte, in a single bytes object, as
    Redis keeps a small hash in a listpack (a dict and two bytes objects per field
    cost five times as much; ``packed.c``). ``settle``, called when the keyspace
    stores the hash after a write, packs it while it is small. ``set`` and ``delete``
    edit the packed form; a change it cannot hold (a long value, a 129th field)
    unpacks it until the next ``settle``. Reads look a field up in the packed form
    (``get``) or read a dict unpacked for them (``view``). Packing keeps the order,
    so every replica still iterates the same way."""

    __slots__ = ("_count", "_fields", "_packed", "epoch", "nbytes")
    KIND: Final = Kind.HASH

    def __init__(self, epoch: int, fields: dict[bytes, bytes] | None = None,
                 blob: bytes = b"", count: int = 0) -> None:
        self.epoch = epoch
        self._packed = blob  # (the packed form, or b"")
        self._count = count
        if fields is None and count:
            self._fields: dict[bytes, bytes] | None = None
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        else:
            self._fields = fields if fields is not None else {}
            self.nbytes = _hash_bytes(self._fields)

    def __len__(self) -> int:
        return len(self._fields) if self._fields is not None else self._count

    def copy(self, epoch: int) -> Hash:
        if self._fields is None:
            return Hash(epoch, None, self._packed, self._count)
        return Hash(epoch, dict(self._fields))

    def get(self, field: bytes) -> bytes | None:
        if self._fields is not None:
            return self._fields.get(field)
        return _packed_find(self._packed, field)

    def view(self) -> dict[bytes, bytes]:
        """The fields, to read (a packed hash unpacks into a new dict)."""
        if self._fields is not None:
            return self._fields
        return _packed_unpack_pairs(self._packed)

    def _open(self) -> dict[bytes, bytes]:
        fields = self._fields
        if fields is None:
            fields = self._fields = _packed_unpack_pairs(self._packed)
            # the payload is the packed bytes less a length byte per string
            self.nbytes = (len(self._packed) - 2 * self._count
                           + self._count * HASH_FIELD_OVERHEAD)
            self._packed = b""
        return fields

    def set(self, field: bytes, value: bytes) -> bool:
        """Store ``value`` under ``field``; True when the field is new."""
        if self._fields is None and self._count < SMALL_ENTRIES and \
                len(field) <= SMALL_VALUE_BYTES and len(value) <= SMALL_VALUE_BYTES:
            self._packed, previous = _packed_put_pair(self._packed, field, value)
            self._count += previous is None
            self.nbytes = len(self._packed) + PACKED_BASE_BYTES
            return previous is None
        fields = self._open()
        old = fields.get(field)
        fields[field] = value
        if old is None:
            self.nbytes += len(field) + len(value) + HASH_FIELD_OVERHEAD
            return True
        self.nbytes += len(value) - len(old)
        return False

    def delete(self, field: bytes) -> bool:
        if self._fields is None:
            if len(field) > SMALL_VALUE_BYTES:
                return False  # (no packed field is that long)
            self._packed, previous = _packed_drop_pair(self._packed, field)
            self._count -= previous is not None
            self.nbytes = len(self._packed) + PACKED_BASE_BYTES
            return previous is not None
        old = self._fields.pop(field, None)
        if old is None:
            return False
        self.nbytes -= len(field) + len(old) + HASH_FIELD_OVERHEAD
        return True

    def is_packed(self) -> bool:
        return self._fields is None

    def settle(self) -> bytes | None:
        """Pack the hash if it is small (see the class doc); the packed form, which the
        keyspace holds in place of this object (``unpark`` makes it again), or None."""
        fields = self._fields
        if fields is None:
            return self._packed
        if not fields:
            return None
        blob = _packed_pack_pairs(fields, SMALL_ENTRIES, SMALL_VALUE_BYTES)
        if blob is not None:
            self._packed, self._count, self._fields = blob, len(fields), None
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        return blob

    def encoding(self) -> bytes:
        """Redis's name: a hash small enough to pack is a listpack there too."""
        fields = self._fields
        small = fields is None or (len(fields) <= SMALL_ENTRIES and all(
            len(f) <= SMALL_VALUE_BYTES and len(v) <= SMALL_VALUE_BYTES
            for f, v in fields.items()))
        return b"listpack" if small else b"hashtable"


def _hash_bytes(fields: dict[bytes, bytes]) -> int:
    return sum(len(f) + len(v) + HASH_FIELD_OVERHEAD for f, v in fields.items())


class List:
    """Items in a Python list while the list is small (a deque reserves 64 slots a
    block: most of a short list's memory), in a deque once it is long, where pushes
    and pops at the head must stay O(1). A small list at rest is packed, as a small
    hash is (``Hash``): ``settle`` packs it, ``push`` and ``pop`` edit the packed form,
    any other change unpacks it, ``view`` reads it."""

    __slots__ = ("_count", "_items", "_packed", "epoch", "nbytes")
    KIND: Final = Kind.LIST

    def __init__(self, epoch: int, items: Iterable[bytes] = (), blob: bytes = b"",
                 count: int = 0) -> None:
        self.epoch = epoch
        self._packed = blob  # (the packed form, or b"")
        self._count = count
        if count:
            self._items: list[bytes] | deque[bytes] | None = None
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        else:
            self._items = _sized(list(items))
            self.nbytes = _list_bytes(self._items)

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else self._count

    def copy(self, epoch: int) -> List:
        if self._items is None:
            return List(epoch, (), self._packed, self._count)
        return List(epoch, self._items)

    def view(self) -> list[bytes] | deque[bytes]:
        """The items, to read (a packed list unpacks into a new list)."""
        if self._items is not None:
            return self._items
        return _packed_unpack(self._packed)

    def _open(self) -> list[bytes] | deque[bytes]:
        items = self._items
        if items is None:
            items = self._items = _packed_unpack(self._packed)
            # the payload is the packed bytes less a length byte per item
            self.nbytes = (LIST_BASE_BYTES + len(self._packed) - self._count
                           + self._count * LIST_ITEM_OVERHEAD)
            self._packed = b""
        return items

    def push(self, item: bytes, left: bool) -> None:
        if self._items is None and self._count < SMALL_ENTRIES and \
                len(item) <= SMALL_VALUE_BYTES:
            self._packed = _packed_push(self._packed, item, left)
            self._count += 1
            self.nbytes = len(self._packed) + PACKED_BASE_BYTES
            return
        items = self._open()
        if isinstance(items, list) and len(items) >= SMALL_ENTRIES:
            items = self._items = deque(items)
        if not left:
            items.append(item)
        elif isinstance(items, deque):
            items.appendleft(item)
        else:
            items.insert(0, item)
        self.nbytes += len(item) + LIST_ITEM_OVERHEAD

    def pop(self, left: bool) -> bytes:
        if self._items is None:
            item, self._packed = _packed_pop(self._packed, left)
            self._count -= 1
            self.nbytes = len(self._packed) + PACKED_BASE_BYTES
            return item
        items = self._open()
        if not left:
            item = items.pop()
        elif isinstance(items, deque):
            item = items.popleft()
        else:
            item = items.pop(0)
        self.nbytes -= len(item) + LIST_ITEM_OVERHEAD
        return item

    def insert(self, index: int, item: bytes) -> None:
        self._open().insert(index, item)
        self.nbytes += len(item) + LIST_ITEM_OVERHEAD

    def set(self, index: int, item: bytes) -> None:
        items = self._open()
        self.nbytes += len(item) - len(items[index])
        items[index] = item

    def replace_all(self, items: Iterable[bytes]) -> None:
        self._packed = b""
        self._items = _sized(list(items))
        self.nbytes = _list_bytes(self._items)

    def is_packed(self) -> bool:
        return self._items is None

    def settle(self) -> bytes | None:
        """Pack the list if it is small; the packed form or None (``Hash.settle``)."""
        items = self._items
        if items is None:
            return self._packed
        if not items:
            return None
        blob = _packed_pack(items, SMALL_ENTRIES, SMALL_VALUE_BYTES)
        if blob is not None:
            self._packed, self._count, self._items = blob, len(items), None
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        return blob

    def encoding(self) -> bytes:
        return b"quicklist"


def _list_bytes(items: list[bytes] | deque[bytes]) -> int:
    return LIST_BASE_BYTES + sum(len(item) + LIST_ITEM_OVERHEAD for item in items)


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

    def settle(self) -> bytes | None:
        """Nothing to pack: kept as it is."""
        return None

    def encoding(self) -> bytes:
        if len(self.items) <= SMALL_INTSET and all(_is_int64_text(m) for m in self.items):
            return b"intset"
        return b"hashtable"


class ZSet:
    """Members with float scores, ordered by (score, member) as Redis orders them: a
    dict of scores beside a sorted list of their order keys (``_order_key``), or, for
    a small sorted set at rest, *packed* as a hash is (``packed.c``): each member, then
    its score as text, in (score, member) order. ``settle`` packs it while it is
    small. ``set``, ``delete`` and ``pop`` edit the packed form; a change it cannot
    hold (a long member, a 129th) unpacks it until the next ``settle``. ``score``,
    ``at``, ``rank`` and ``bisect`` read it in place; ``scores`` and ``order`` unpack a
    copy to read.

    Whatever iterates members goes by ``order``: the dict's order depends on the set's
    history (packed or not, restored from a snapshot or not), ``order``'s never."""

    __slots__ = ("_count", "_order", "_packed", "_scores", "epoch", "nbytes")
    KIND: Final = Kind.ZSET

    def __init__(self, epoch: int, scores: dict[bytes, float] | None = None,
                 blob: bytes = b"", count: int = 0) -> None:
        self.epoch = epoch
        self._packed = blob  # (the packed form, or b"")
        self._count = count
        self._scores: dict[bytes, float] | None = None
        self._order: SortedKeys | None = None  # of _order_key(score, member)
        if scores is None and count:
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        else:
            self._fill(scores if scores is not None else {})

    def _fill(self, scores: dict[bytes, float]) -> None:
        order = SortedKeys(_order_key(s, m) for m, s in scores.items())
        self._scores = dict(scores)
        self._order = order
        self.nbytes = ZSET_BASE_BYTES + sum(2 * len(m) + ZSET_MEMBER_OVERHEAD for m in scores)

    def __len__(self) -> int:
        return len(self._scores) if self._scores is not None else self._count

    def copy(self, epoch: int) -> ZSet:
        if self._scores is None:
            return ZSet(epoch, None, self._packed, self._count)
        return ZSet(epoch, self._scores)

    def score(self, member: bytes) -> float | None:
        if self._scores is not None:
            return self._scores.get(member)
        text = _packed_find(self._packed, member)
        return None if text is None else float(text)

    @property
    def scores(self) -> dict[bytes, float]:
        """member -> score, to read."""
        if self._scores is not None:
            return self._scores
        return _unpack_scores(self._packed)

    @property
    def order(self) -> Ranked:
        """(score, member) in order, to read (a packed one's as a new list)."""
        if self._order is not None:
            assert self._scores is not None
            return _Ranked(self._order, self._scores)
        strings = _packed_unpack(self._packed)
        return [(float(strings[i + 1]), strings[i]) for i in range(0, len(strings), 2)]

    def bisect(self, score: float) -> int:
        """The rank of the first member whose score is ``score`` or more."""
        if self._order is not None:
            found: int = self._order.bisect_left(_order_key(score, b""))
            return found
        return _position(_packed_unpack(self._packed), score, b"")

    def _open(self) -> tuple[dict[bytes, float], SortedKeys]:
        scores, order = self._scores, self._order
        if scores is None or order is None:
            self._fill(_unpack_scores(self._packed))
            self._packed, self._count = b"", 0
            scores, order = self._scores, self._order
            assert scores is not None and order is not None
        return scores, order

    def set(self, member: bytes, score: float) -> bool:
        """Give ``member`` ``score``; True when the member is new."""
        if self._scores is None and len(member) <= SMALL_VALUE_BYTES:
            strings = _packed_unpack(self._packed)
            at = _find_member(strings, member)
            if at < 0 and self._count < SMALL_ENTRIES:
                self._repack(_put_member(strings, member, score))
                self._count += 1
                return True
            if at >= 0:
                if float(strings[at + 1]) == score:
                    return False
                del strings[at:at + 2]
                self._repack(_put_member(strings, member, score))
                return False
        scores, order = self._open()
        old = scores.get(member)
        if old is not None:
            if old == score:
                return False
            order.remove(_order_key(old, member))
        else:
            self.nbytes += 2 * len(member) + ZSET_MEMBER_OVERHEAD
        scores[member] = score
        order.add(_order_key(score, member))
        return old is None

    def delete(self, member: bytes) -> bool:
        if self._scores is None:
            strings = _packed_unpack(self._packed)
            at = _find_member(strings, member)
            if at < 0:
                return False
            self._drop(strings, at)
            return True
        scores, order = self._open()
        old = scores.pop(member, None)
        if old is None:
            return False
        order.remove(_order_key(old, member))
        self.nbytes -= 2 * len(member) + ZSET_MEMBER_OVERHEAD
        return True

    def pop(self, highest: bool) -> tuple[float, bytes]:
        """Take the (score, member) with the lowest rank, or the highest (not empty)."""
        if self._scores is None:
            strings = _packed_unpack(self._packed)
            at = len(strings) - 2 if highest else 0
            member, text = strings[at], strings[at + 1]
            self._drop(strings, at)
            return float(text), member
        order, scores = self._order, self._scores
        assert order is not None and scores is not None
        member = order.pop(-1 if highest else 0)[_SCORE_BYTES:]
        self.nbytes -= 2 * len(member) + ZSET_MEMBER_OVERHEAD
        return scores.pop(member), member

    def _drop(self, strings: list[bytes], at: int) -> None:
        """Pack the packed form's ``strings`` again without the pair at ``at``."""
        del strings[at:at + 2]
        self._repack(strings)
        self._count -= 1

    def _repack(self, strings: list[bytes]) -> None:
        blob = _packed_pack(strings, 2 * SMALL_ENTRIES, SMALL_VALUE_BYTES)
        assert blob is not None  # (the callers keep within the limits)
        self._packed = blob
        self.nbytes = len(blob) + PACKED_BASE_BYTES

    def at(self, rank: int) -> tuple[float, bytes]:
        """The (score, member) at ``rank`` (negative from the end), read in place."""
        if self._order is not None:
            assert self._scores is not None
            return _pair(self._order[rank], self._scores)
        strings = _packed_unpack(self._packed)
        pair = 2 * (rank if rank >= 0 else self._count + rank)
        return float(strings[pair + 1]), strings[pair]

    def rank(self, member: bytes) -> int | None:
        if self._order is None:
            at = _find_member(_packed_unpack(self._packed), member)
            return None if at < 0 else at // 2
        score = self.score(member)
        return None if score is None else self._order.index(_order_key(score, member))

    def is_packed(self) -> bool:
        return self._scores is None

    def settle(self) -> bytes | None:
        """Pack the sorted set if it is small; the packed form or None (``Hash.settle``)."""
        order = self._order
        if order is None:
            return self._packed
        if not order or len(order) > SMALL_ENTRIES:
            return None
        strings: list[bytes] = []
        for score, member in self.order:
            strings.append(member)
            strings.append(_score_text(score))
        blob = _packed_pack(strings, 2 * SMALL_ENTRIES, SMALL_VALUE_BYTES)
        if blob is not None:
            self._packed, self._count = blob, len(order)
            self._scores = self._order = None
            self.nbytes = len(blob) + PACKED_BASE_BYTES
        return blob

    def encoding(self) -> bytes:
        scores = self._scores
        small = scores is None or (len(scores) <= SMALL_ENTRIES and all(
            len(m) <= SMALL_VALUE_BYTES for m in scores))
        return b"listpack" if small else b"skiplist"


def _score_text(score: float) -> bytes:
    """A score as the shortest text ``float`` reads back exactly: an integer's digits
    (as Redis's listpack keeps an integral score as an integer), else ``repr``."""
    if -_EXACT_INT < score < _EXACT_INT and score == int(score) and \
            (score != 0.0 or math.copysign(1.0, score) > 0):
        return b"%d" % int(score)
    return repr(score).encode()


def _pair(key: bytes, scores: dict[bytes, float]) -> tuple[float, bytes]:
    """The (score, member) an order key stands for (the score from the dict: the key's
    bits lost -0.0's sign)."""
    member = key[_SCORE_BYTES:]
    return scores[member], member


class Ranked(Protocol):
    """A sorted set's (score, member) pairs in order: to index and iterate."""

    def __len__(self) -> int: ...

    def __getitem__(self, rank: int) -> tuple[float, bytes]: ...

    def __iter__(self) -> Iterator[tuple[float, bytes]]: ...


class _Ranked:
    """An unpacked sorted set's pairs, read through its order keys."""

    __slots__ = ("_order", "_scores")

    def __init__(self, order: SortedKeys, scores: dict[bytes, float]) -> None:
        self._order = order
        self._scores = scores

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, rank: int) -> tuple[float, bytes]:
        return _pair(self._order[rank], self._scores)

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        scores = self._scores
        for key in self._order:
            yield _pair(key, scores)


def _find_member(strings: list[bytes], member: bytes) -> int:
    """Where ``member`` is in a packed sorted set's strings, or -1."""
    for at in range(0, len(strings), 2):
        if strings[at] == member:
            return at
    return -1


def _position(strings: list[bytes], score: float, member: bytes) -> int:
    """The rank at which (score, member) goes among a packed sorted set's strings:
    after every pair below it (with ``member`` b"", before every pair of ``score``)."""
    low, high = 0, len(strings) // 2
    while low < high:
        middle = (low + high) // 2
        there = float(strings[2 * middle + 1])
        if there < score or (there == score and strings[2 * middle] < member):
            low = middle + 1
        else:
            high = middle
    return low


def _put_member(strings: list[bytes], member: bytes, score: float) -> list[bytes]:
    """``strings`` with (member, score) in its place by (score, member)."""
    at = 2 * _position(strings, score, member)
    strings[at:at] = [member, _score_text(score)]
    return strings


def _unpack_scores(blob: bytes) -> dict[bytes, float]:
    strings = _packed_unpack(blob)
    return {strings[i]: float(strings[i + 1]) for i in range(0, len(strings), 2)}


StreamID = tuple[int, int]  # (milliseconds, sequence)


class Pending:
    """An entry delivered to a consumer of a group and not yet acknowledged."""

    __slots__ = ("consumer", "count", "delivered_ms")

    def __init__(self, consumer: bytes, delivered_ms: int, count: int) -> None:
        self.consumer = consumer
        self.delivered_ms = delivered_ms
        self.count = count


class Consumer:
    __slots__ = ("active_ms", "seen_ms")

    def __init__(self, seen_ms: int, active_ms: int) -> None:
        self.seen_ms = seen_ms  # its last command
        self.active_ms = active_ms  # its last read that delivered something (-1: never)


class Group:
    """A consumer group: the last ID it delivered, how many entries it has read, its
    pending entries (by ID) and its consumers (in the order they appeared)."""

    __slots__ = ("consumers", "entries_read", "last_id", "pending")

    def __init__(self, last_id: StreamID, entries_read: int) -> None:
        self.last_id = last_id
        self.entries_read = entries_read  # -1: not known (Redis's "lag" is then nil)
        self.pending: dict[StreamID, Pending] = {}
        self.consumers: dict[bytes, Consumer] = {}

    def copy(self) -> Group:
        group = Group(self.last_id, self.entries_read)
        group.pending = {i: Pending(p.consumer, p.delivered_ms, p.count)
                         for i, p in self.pending.items()}
        group.consumers = {n: Consumer(c.seen_ms, c.active_ms)
                           for n, c in self.consumers.items()}
        return group

    def pending_ids(self) -> list[StreamID]:
        return sorted(self.pending)


class Stream:
    """Entries in ID order (IDs only grow: ``last_id`` is the last ever given, even
    once that entry is deleted), each a flat list of fields and values, and the
    consumer groups. Unlike the other types, an empty stream is kept."""

    __slots__ = ("entries", "entries_added", "epoch", "groups", "ids", "last_id",
                 "max_deleted_id", "nbytes")
    KIND: Final = Kind.STREAM

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.ids: list[StreamID] = []
        self.entries: dict[StreamID, list[bytes]] = {}
        self.last_id: StreamID = (0, 0)
        self.max_deleted_id: StreamID = (0, 0)
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}
        self.nbytes = LIST_BASE_BYTES

    def __len__(self) -> int:
        return len(self.ids)

    def copy(self, epoch: int) -> Stream:
        other = Stream(epoch)
        other.ids = list(self.ids)
        other.entries = dict(self.entries)  # (the field lists are never changed in place)
        other.last_id, other.max_deleted_id = self.last_id, self.max_deleted_id
        other.entries_added, other.nbytes = self.entries_added, self.nbytes
        other.groups = {name: group.copy() for name, group in self.groups.items()}
        return other

    def add(self, entry_id: StreamID, fields: list[bytes]) -> None:
        self.ids.append(entry_id)
        self.entries[entry_id] = fields
        self.last_id = entry_id
        self.entries_added += 1
        self.nbytes += sum(len(f) for f in fields) + STREAM_ENTRY_OVERHEAD

    def delete(self, entry_id: StreamID) -> bool:
        fields = self.entries.pop(entry_id, None)
        if fields is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, entry_id)]
        self.max_deleted_id = max(self.max_deleted_id, entry_id)
        self.nbytes -= sum(len(f) for f in fields) + STREAM_ENTRY_OVERHEAD
        return True

    def trim_first(self, count: int) -> None:
        """Remove the ``count`` oldest entries (XTRIM, XADD MAXLEN/MINID)."""
        for entry_id in self.ids[:count]:
            fields = self.entries.pop(entry_id)
            self.nbytes -= sum(len(f) for f in fields) + STREAM_ENTRY_OVERHEAD
        del self.ids[:count]  # (trimming leaves no tombstone: max_deleted_id stays)

    def between(self, low: StreamID, high: StreamID) -> list[StreamID]:
        """The IDs from ``low`` to ``high``, both included, in order."""
        return self.ids[bisect.bisect_left(self.ids, low):bisect.bisect_right(self.ids, high)]

    def settle(self) -> bytes | None:
        """Nothing to pack: kept as it is."""
        return None

    def encoding(self) -> bytes:
        return b"stream"


Container = Hash | List | Set | ZSet | Stream


def kept(container: Container | None) -> bool:
    """Whether a key holding ``container`` stays: a non-empty one, or any stream."""
    return container is not None and (bool(len(container)) or container.KIND is Kind.STREAM)


def empty(kind: Kind, epoch: int) -> Container:
    if kind is Kind.HASH:
        return Hash(epoch)
    if kind is Kind.LIST:
        return List(epoch)
    if kind is Kind.SET:
        return Set(epoch)
    if kind is Kind.STREAM:
        return Stream(epoch)
    return ZSet(epoch)


def unpark(kind: int, blob: bytes, epoch: int) -> Hash | List | ZSet:
    """The container of ``kind`` whose packed form (what its ``settle`` gave) the
    keyspace holds."""
    count = _count_strings(blob)
    if kind == _HASH:
        return Hash(epoch, None, blob, count // 2)
    if kind == _LIST:
        return List(epoch, (), blob, count)
    return ZSet(epoch, None, blob, count // 2)


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


_ID: Final = struct.Struct("<QQ")
_GROUP: Final = struct.Struct("<QQqII")  # last id, entries read, pending, consumers
_PENDING: Final = struct.Struct("<QQqQ")  # id, delivered at, count
_CONSUMER: Final = struct.Struct("<qq")


def encode_container(container: Container) -> bytes:
    parts: list[bytes] = [_KIND_COUNT.pack(container.KIND, len(container))]
    pack_len = U32.pack
    if isinstance(container, Stream):
        parts += (_ID.pack(*container.last_id), _ID.pack(*container.max_deleted_id),
                  struct.pack("<QI", container.entries_added, len(container.groups)))
        for entry_id in container.ids:
            fields = container.entries[entry_id]
            parts += (_ID.pack(*entry_id), pack_len(len(fields)))
            for field in fields:
                parts += (pack_len(len(field)), field)
        for name, group in container.groups.items():
            parts += (pack_len(len(name)), name, _GROUP.pack(
                *group.last_id, group.entries_read, len(group.pending), len(group.consumers)))
            for entry_id, pending in group.pending.items():
                parts += (_PENDING.pack(*entry_id, pending.delivered_ms, pending.count),
                          pack_len(len(pending.consumer)), pending.consumer)
            for consumer_name, consumer in group.consumers.items():
                parts += (pack_len(len(consumer_name)), consumer_name,
                          _CONSUMER.pack(consumer.seen_ms, consumer.active_ms))
    elif isinstance(container, Hash):
        for field, value in container.view().items():
            parts += (pack_len(len(field)), field, pack_len(len(value)), value)
    elif isinstance(container, ZSet):
        for score, member in container.order:
            parts += (pack_len(len(member)), member, _F64.pack(score))
    elif isinstance(container, List):
        for item in container.view():
            parts += (pack_len(len(item)), item)
    else:
        for item in container.items:
            parts += (pack_len(len(item)), item)
    return b"".join(parts)


def decode_container(r: BinaryReader, epoch: int) -> Container:
    kind, count = r.fixed(_KIND_COUNT)
    if kind == Kind.HASH:
        restored = Hash(epoch, {r.blob(): r.blob() for _ in range(count)})
        restored.settle()
        return restored
    if kind == Kind.LIST:
        restored_list = List(epoch, [r.blob() for _ in range(count)])
        restored_list.settle()
        return restored_list
    if kind == Kind.SET:
        return Set(epoch, [r.blob() for _ in range(count)])
    if kind == Kind.STREAM:
        return _decode_stream(r, epoch, count)
    if kind == Kind.ZSET:
        scores: dict[bytes, float] = {}
        for _ in range(count):
            member = r.blob()
            scores[member] = r.double()
        restored_zset = ZSet(epoch, scores)
        restored_zset.settle()
        return restored_zset
    raise r.error(f"unknown container kind {kind}")


def _decode_stream(r: BinaryReader, epoch: int, count: int) -> Stream:
    stream = Stream(epoch)
    last, deleted = r.fixed(_ID), r.fixed(_ID)
    added, groups = r.fixed(struct.Struct("<QI"))
    for _ in range(count):
        entry_id = r.fixed(_ID)
        (nfields,) = r.fixed(U32)
        stream.add((entry_id[0], entry_id[1]), [r.blob() for _ in range(nfields)])
    stream.last_id, stream.max_deleted_id = (last[0], last[1]), (deleted[0], deleted[1])
    stream.entries_added = added
    for _ in range(groups):
        name = r.blob()
        ms, seq, entries_read, npending, nconsumers = r.fixed(_GROUP)
        group = stream.groups[name] = Group((ms, seq), entries_read)
        for _ in range(npending):
            ims, iseq, delivered, times = r.fixed(_PENDING)
            group.pending[(ims, iseq)] = Pending(r.blob(), delivered, times)
        for _ in range(nconsumers):
            consumer_name = r.blob()
            seen, active = r.fixed(_CONSUMER)
            group.consumers[consumer_name] = Consumer(seen, active)
    return stream
