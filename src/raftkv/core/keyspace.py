"""The keyspace: keys in order, their values and revisions, and an index of deadlines.

Memory is the constraint that shapes this module. Each key's state is packed into
one ``bytes``: a header (mod_revision, create_revision, expires_at_ms, version;
compact when it can be) followed by the value, instead of an object with five int
fields (a slotted object plus its ints costs ~120 bytes more per key here). A
:class:`~raftkv.core.table.Table`, a hash table in C, holds each key and its packed
state side by side, so a get waits on memory twice where a dict would wait four
times.

Ordered iteration (prefix scans, cursors, Redis SCAN) uses a ``SortedList`` of keys.
New keys go to a small pending set first and are merged into the sorted list in one
batch when an ordered read needs them, so the write path is a dict store plus a set
add; deletes remove from whichever of the two holds the key.

A key that holds a hash, list, set or sorted set has a full header whose first byte
is ``TYPED | kind`` and no value: its container (``containers.py``) lives in a side
map, copied on write after each snapshot (see ``writable``).

Expiry is hidden, never acted on, here: reads take ``now_ms`` and treat a key whose
deadline is not after it as absent. Deleting expired keys is a logged command
(``DeleteExpired``); :meth:`Keyspace.due` finds candidates in deadline order, in
O(expired) work, from the deadline index.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from sortedcontainers import SortedList

from raftkv.core.commands import Entry
from raftkv.core.containers import PACKED_BASE_BYTES, Container, unpark
from raftkv.core.history import EVENT_OVERHEAD_BYTES, History, PutBatch
from raftkv.core.table import DEADLINE_AT, TYPED, Table

# Two layouts of the header, told apart by the first byte. Most keys have no TTL,
# revisions below 2**32 and fewer than 65,536 versions: they get the 11-byte compact
# header, which keeps a key with a 16-byte value in a 64-byte object instead of 80.
COMPACT: Final = struct.Struct("<BIIH")  # 0, mod_revision, create_revision, version
FULL: Final = struct.Struct("<BQQQI")  # 1, mod_revision, create_revision, expires_at_ms, version
COMPACT_BYTES: Final = COMPACT.size
FULL_BYTES: Final = FULL.size
# bound once: compiled code calls a Final directly, where ``COMPACT.unpack_from`` (or
# ``.pack``) looks the method up on every call
unpack_compact: Final = COMPACT.unpack_from
unpack_full: Final = FULL.unpack_from
_pack_compact: Final = COMPACT.pack
_pack_full: Final = FULL.pack
_unpack_deadline: Final = struct.Struct("<17xQ").unpack_from  # a FULL header's deadline alone
NO_DEADLINE: Final = 0


def pack(value: bytes, mod_revision: int, create_revision: int, expires_at_ms: int | None,
         version: int, kind: int = 0) -> bytes:
    """The stored form of one key's state (``kind``: a containers.Kind, whose container
    is kept beside it; then ``value`` is empty)."""
    if kind:
        return _pack_full(TYPED | kind, mod_revision, create_revision,
                          expires_at_ms or NO_DEADLINE, version)
    if not expires_at_ms and mod_revision < 2**32 and version < 2**16:
        return _pack_compact(0, mod_revision, create_revision, version) + value
    return _pack_full(1, mod_revision, create_revision, expires_at_ms or NO_DEADLINE,
                      version) + value


def kind_of(packed: bytes) -> int:
    """The containers.Kind a packed entry holds (0: a string)."""
    first = packed[0]
    return first & 0x0F if first >= TYPED else 0


def header(packed: bytes) -> tuple[int, int, int, int, int]:
    """(mod_revision, create_revision, deadline or 0, version, header length)."""
    if packed[0] == 0:
        _, mod, create, version = unpack_compact(packed)
        return mod, create, NO_DEADLINE, version, COMPACT_BYTES
    _, mod, create, deadline, version = unpack_full(packed)
    return mod, create, deadline, version, FULL_BYTES


def unpack(key: bytes, packed: bytes) -> Entry:
    mod, create, expires, version, offset = header(packed)
    return Entry(key, packed[offset:], version, create, mod, expires or None, kind_of(packed))


def deadline_of(packed: bytes) -> int:
    """The absolute deadline in ms of a packed entry, 0 when it has none."""
    if packed[0] == 0:
        return NO_DEADLINE
    deadline: int = _unpack_deadline(packed)[0]
    return deadline


def value_length(packed: bytes) -> int:
    return len(packed) - (COMPACT_BYTES if packed[0] == 0 else FULL_BYTES)


def held(raw: bytes, value: Container | bytes, epoch: int) -> Container:
    """The container of a typed key whose packed entry is ``raw``: ``value`` itself, or
    the one that its packed form, parked in the keyspace, stands for."""
    if isinstance(value, bytes):
        return unpark(kind_of(raw), value, epoch)
    return value


def _nbytes(value: Container | bytes) -> int:
    """A held container's ``nbytes`` (a parked one's as its object's would be)."""
    return len(value) + PACKED_BASE_BYTES if isinstance(value, bytes) else value.nbytes


def _parked(value: Container | bytes) -> Container | bytes:
    if isinstance(value, bytes):
        return value
    parked = value.settle()
    return value if parked is None else parked


def is_live(packed: bytes, now_ms: int) -> bool:
    deadline = deadline_of(packed)
    return deadline == NO_DEADLINE or deadline > now_ms


class Keyspace:
    """Ordered map of key -> packed entry with a deadline index. Not thread-safe."""

    __slots__ = ("_containers", "_data_bytes", "_deadlines", "_entries", "_pending", "_sorted",
                 "epoch", "value", "values")

    def __init__(self) -> None:
        self._entries = Table()
        # The hot reads are the table's own methods, with no call of ours around them:
        # value(key, now_ms), the value alone (a GET), or None when absent or expired;
        # values(keys, now_ms), value() of each key (MGET, a pipeline's run of GETs),
        # looked up together so the CPU waits on their cache misses at once.
        self.value: Final = self._entries.value
        self.values: Final = self._entries.values
        self._sorted: SortedList = SortedList()
        self._pending: set[bytes] = set()
        self._deadlines: SortedList = SortedList()  # of (expires_at_ms, key)
        self._data_bytes = 0
        # A small hash, list or sorted set at rest is held as its packed form alone (what
        # its ``settle`` gave): the object would cost more than the form. Reading one
        # makes an object for the read; ``writable`` puts one back in its place until
        # ``store_container`` parks it again.
        self._containers: dict[bytes, Container | bytes] = {}
        self.epoch = 0  # containers made in an older epoch are copied before a write

    # --- reads -------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys stored, including expired keys not yet deleted (as Redis DBSIZE counts)."""
        return len(self._entries)

    @property
    def data_bytes(self) -> int:
        """Sum of key and value lengths: the raw payload the keyspace holds."""
        return self._data_bytes

    @property
    def volatile_count(self) -> int:
        """Keys that have a deadline."""
        return len(self._deadlines)

    def raw(self, key: bytes) -> bytes | None:
        """The packed entry, expired or not."""
        return self._entries.get(key)

    def get(self, key: bytes, now_ms: int) -> Entry | None:
        """The key's entry, or None when absent or expired at ``now_ms``."""
        packed = self._entries.get(key)
        if packed is None:
            return None
        if packed[0] == 0:  # compact header: no deadline
            _, mod, create, version = unpack_compact(packed)
            return Entry(key, packed[COMPACT_BYTES:], version, create, mod, None)
        first, mod, create, expires, version = unpack_full(packed)
        if expires and expires <= now_ms:
            return None
        return Entry(key, packed[FULL_BYTES:], version, create, mod, expires or None,
                     first & 0x0F if first >= TYPED else 0)

    def container(self, key: bytes) -> Container | None:
        """The container a typed key holds (expired or not), for reading only."""
        value = self._containers.get(key)
        if isinstance(value, bytes):
            raw = self._entries.get(key)
            assert raw is not None
            return held(raw, value, self.epoch)
        return value

    @property
    def container_count(self) -> int:
        return len(self._containers)

    def scan(self, now_ms: int, prefix: bytes = b"", after: bytes | None = None,
             limit: int = 100) -> list[Entry]:
        """Up to ``limit`` live entries in key order, starting after ``after``."""
        out: list[Entry] = []
        for key in self.iter_keys(prefix, after):
            entry = self.get(key, now_ms)
            if entry is not None:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    def iter_keys(self, prefix: bytes = b"", after: bytes | None = None) -> Iterator[bytes]:
        """Stored keys (expired ones too) with ``prefix``, in order, strictly after ``after``.

        The iterator reads a fresh position after every key, so keys added or removed
        while it runs are seen or skipped by their order alone (Redis SCAN's guarantee:
        a key present for the whole iteration is returned exactly once)."""
        self._merge_pending()
        if after is not None and after >= prefix:
            start, inclusive = after, False
        else:
            start, inclusive = prefix, True
        while True:
            found = None
            for key in self._sorted.irange(start, None, (inclusive, True)):
                found = key
                break
            if found is None or not found.startswith(prefix):
                return
            yield found
            self._merge_pending()
            start, inclusive = found, False

    def due(self, now_ms: int, limit: int) -> list[bytes]:
        """Keys whose deadline is not after ``now_ms``, earliest first, at most ``limit``."""
        out: list[bytes] = []
        for deadline, key in self._deadlines:
            if deadline > now_ms or len(out) >= limit:
                break
            out.append(key)
        return out

    def earliest_deadlines(self, count: int) -> list[bytes]:
        """The ``count`` keys that expire soonest (for volatile-ttl eviction)."""
        return [key for _, key in self._deadlines.islice(0, count)]

    def key_at(self, position: int) -> bytes:
        """The key at ``position`` in key order (for sampling: O(log n))."""
        self._merge_pending()
        key: bytes = self._sorted[position]
        return key

    def volatile_key_at(self, position: int) -> bytes:
        key: bytes = self._deadlines[position][1]
        return key

    def copy_entries(self) -> Table:
        """A point-in-time copy: cheap (entries are immutable and shared) and safe to
        read off the loop."""
        return self._entries.copy()

    def copy_containers(self) -> dict[bytes, Container | bytes]:
        """A point-in-time copy of the containers: a new epoch begins, so a write to
        any of them copies it first and the copy returned here never changes."""
        self.epoch += 1
        return dict(self._containers)

    # --- writes ------------------------------------------------------------------

    def store(self, key: bytes, packed: bytes, old: bytes | None, old_deadline: int,
              new_deadline: int) -> None:
        """Store ``packed`` under ``key``. ``old`` is what ``raw(key)`` returned and the
        deadlines are the old and new entries' (0: none); the caller has them unpacked."""
        self._entries.put(key, packed)
        # value_length, inlined: this runs for every write
        size = len(packed) - (COMPACT_BYTES if packed[0] == 0 else FULL_BYTES)
        if old is None:
            self._pending.add(key)
            self._data_bytes += len(key) + size
        else:
            self._data_bytes += size - len(old) + (COMPACT_BYTES if old[0] == 0 else FULL_BYTES)
            if old[0] >= TYPED and packed[0] < TYPED:  # a string replaces a hash, list...
                self._data_bytes -= _nbytes(self._containers.pop(key))
        if old_deadline != new_deadline:
            if old_deadline:
                self._deadlines.remove((old_deadline, key))
            if new_deadline:
                self._deadlines.add((new_deadline, key))

    def store_plain(self, items: tuple[tuple[bytes, bytes], ...], revision: int,
                    now_ms: int, history: History) -> None:
        """Store each value without a TTL at ``revision``, in order: a live key keeps its
        create revision and gains a version, an absent or expired one starts over (a
        batch of Redis ``SET key value``); they are put events in ``history``, as one
        batch. ``store`` and ``pack`` inlined: this is the write path of pipelined
        SETs."""
        entries, pending, deadlines = self._entries, self._pending, self._deadlines
        get, put, compact, full = entries.get, entries.put, _pack_compact, _pack_full
        grown = 0
        metas: list[int] = []  # each key's create revision and version, for the history
        held = len(items) * EVENT_OVERHEAD_BYTES  # what the history counts for them
        entries.prefetch([key for key, _ in items])  # (so their memory waits overlap)
        for key, value in items:
            old = get(key)
            if old is None:
                pending.add(key)
                grown += len(key)
                version, create = 1, revision
            else:
                if old[0] == 0:
                    _, _, old_create, old_version = unpack_compact(old)
                    deadline = NO_DEADLINE
                    grown -= len(old) - COMPACT_BYTES
                else:
                    first, _, old_create, deadline, old_version = unpack_full(old)
                    grown -= len(old) - FULL_BYTES
                    if first >= TYPED:  # a string replaces a hash, list...
                        grown -= _nbytes(self._containers.pop(key))
                    if deadline:  # a full header may have none (a version past 2**16)
                        deadlines.remove((deadline, key))
                if deadline == NO_DEADLINE or deadline > now_ms:
                    version, create = old_version + 1, old_create
                else:
                    version, create = 1, revision
            if revision < 2**32 and version < 2**16:
                put(key, compact(0, revision, create, version) + value)
            else:
                put(key, full(1, revision, create, NO_DEADLINE, version) + value)
            grown += len(value)
            held += len(key) + len(value)
            metas.append(create)
            metas.append(version)
        self._data_bytes += grown
        history.record_batch(PutBatch(revision, items, metas, held))

    def writable(self, key: bytes, raw: bytes) -> Container:
        """The container of ``key``, to change: copied first if a snapshot (or an
        atomic transaction's undo journal) may still hold it. The caller stores the
        key's new header with ``store_container`` after changing it. ``raw`` is its
        packed entry (what ``raw(key)`` returns)."""
        value = self._containers[key]
        if isinstance(value, bytes):  # (a parked form is immutable: nothing to copy)
            container = held(raw, value, self.epoch)
            self._containers[key] = container
            return container
        if value.epoch != self.epoch:
            value = value.copy(self.epoch)
            self._containers[key] = value
        return value

    def store_container(self, key: bytes, packed: bytes, old: bytes | None,
                        container: Container, old_nbytes: int) -> None:
        """Store a typed key's header and container. ``old`` is what ``raw(key)``
        returned before and ``old_nbytes`` the container's ``nbytes`` then (0 if new).
        A small hash, list or sorted set is packed here, at rest (``settle``)."""
        parked = container.settle()
        self._entries.put(key, packed)
        self._containers[key] = container if parked is None else parked
        if old is None:
            self._pending.add(key)
            self._data_bytes += len(key)
        else:
            self._data_bytes -= value_length(old)
        self._data_bytes += container.nbytes - old_nbytes
        if old is not None and old[0] != 0 and \
                old[DEADLINE_AT:DEADLINE_AT + 8] == packed[DEADLINE_AT:DEADLINE_AT + 8]:
            return  # the same deadline (the common case: a typed op keeps it)
        old_deadline, new_deadline = (deadline_of(old) if old is not None else 0,
                                      deadline_of(packed))
        if old_deadline != new_deadline:
            if old_deadline:
                self._deadlines.remove((old_deadline, key))
            if new_deadline:
                self._deadlines.add((new_deadline, key))

    def remove(self, key: bytes) -> bytes | None:
        """Remove ``key``; return its packed entry, or None if it was absent."""
        old = self._entries.pop(key)
        if old is None:
            return None
        if old[0] >= TYPED:
            self._data_bytes -= _nbytes(self._containers.pop(key))
        if key in self._pending:
            self._pending.discard(key)
        else:
            self._sorted.remove(key)
        self._data_bytes -= len(key) + value_length(old)
        deadline = deadline_of(old)
        if deadline:
            self._deadlines.remove((deadline, key))
        return old

    def clear(self) -> None:
        self._entries.clear()
        self._sorted.clear()
        self._pending.clear()
        self._deadlines.clear()
        self._data_bytes = 0
        self._containers = {}

    def load(self, items: Iterable[tuple[bytes, bytes]],
             containers: Mapping[bytes, Container | bytes] | None = None) -> None:
        """Replace the contents with ``items``, whose keys are unique, and the
        containers of their typed keys; fastest when they come in key order."""
        self.clear()
        pairs = list(items)
        self._entries.update(pairs)
        if len(self._entries) != len(pairs):
            self.clear()
            raise ValueError("a key appears twice in the entries to load")
        self._containers = {key: _parked(value) for key, value in (containers or {}).items()}
        typed = sum(1 for _, packed in pairs if packed[0] >= TYPED)
        if typed != len(self._containers) or any(
                self._entries.get(key) is None for key in self._containers):
            self.clear()
            raise ValueError("the containers do not match the typed keys")
        self._data_bytes += sum(_nbytes(value) for value in self._containers.values())
        self._sorted = SortedList(k for k, _ in pairs)
        self._deadlines = SortedList(
            (d, k) for k, p in pairs if p[0] != 0 and (d := deadline_of(p))
        )
        self._data_bytes += sum(len(k) + value_length(p) for k, p in pairs)

    def _merge_pending(self) -> None:
        if self._pending:
            self._sorted.update(self._pending)
            self._pending.clear()
