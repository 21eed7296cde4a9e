"""The change history: the most recent changes to the keyspace, in revision order
(DATA-MODEL.md section 3).

Every change to a key is an event ``(revision, key, kind, value, create_revision,
version)``: a put (the new value; None for a hash, list, set or sorted set), a typed
op (``value`` is Redis's event name, ``lpush``...), a delete, an expiry, an eviction,
or a flush of every key (key ``b""``). A put and a typed op carry the key's create
revision and version after it (etcd's watch events show them); a removal carries 0s. The state machine records them as it applies entries, so the history is
derived from the log: a replica replaying the log rebuilds it, and a snapshot does not
carry it - a state machine restored from one starts with an empty history compacted
at the snapshot's index.

The plain puts of one entry (a MultiPut: MSET, a pipeline's SETs) are held together,
packed into one bytes object with each key's create revision and version
(``PutBatch``): one slot for the lot, expanded into events only when they are read. A
run of typed writes to one key in one entry (a queue's pushes) is one slot too
(``TypedRun``): the key, its create revision, its first version and each op's name.

It is bounded by events and by bytes (keys and values); the oldest go first. The
**compaction revision** says how far back it is complete: every change after it is
here. Asking for changes after an older revision is answered with ``Compacted``,
carrying the compaction revision and the current one - never a silent gap.

WATCH reads it: a key absent at WATCH and at EXEC changed in between if it was removed
after the WATCH, which ``removed_after`` answers for as long as the history reaches
back that far (and says "changed", the safe side, once it does not).
"""

from __future__ import annotations

import enum
import struct
from typing import Final

from raftkv.core.binary import BinaryReader, u32

DEFAULT_MAX_EVENTS: Final = 10_000
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024
EVENT_OVERHEAD_BYTES: Final = 100  # the tuple and its slot, counted against max_bytes
TRIM_SHARE: Final = 16  # a trim leaves this share of each bound free


class EventKind(enum.IntEnum):
    PUT = 0
    TYPED = 1
    DELETE = 2  # DELETE, EXPIRE and EVICT remove the key
    EXPIRE = 3
    EVICT = 4
    FLUSH = 5


# The kinds as plain ints, for the write path (an enum member costs a lookup and its
# hash a Python call; the events compare equal to EventKind's members all the same).
PUT: Final = 0
TYPED: Final = 1
DELETE: Final = 2
EXPIRE: Final = 3
EVICT: Final = 4
FLUSH: Final = 5

# revision, key, kind, value, create revision, version
Event = tuple[int, bytes, int, "bytes | None", int, int]


class Compacted(Exception):
    """The changes asked for are older than the history keeps."""

    def __init__(self, compacted: int, current: int) -> None:
        super().__init__(f"history is compacted up to revision {compacted}; the current "
                         f"revision is {current}")
        self.compacted = compacted
        self.current = current


class Batch:
    """One slot for many events of one revision, expanded when they are read."""

    __slots__ = ("count", "nbytes", "revision")

    def __init__(self, revision: int, count: int, nbytes: int) -> None:
        self.revision = revision
        self.count = count  # events
        self.nbytes = nbytes  # what they count against max_bytes

    def events(self, prefix: bytes | None) -> list[Event]:
        raise NotImplementedError


class TypedRun(Batch):
    """A run of typed writes to one key at one revision (``Ctx``): each op's event
    name; the versions follow one another from ``version``."""

    __slots__ = ("create", "key", "names", "version")

    def __init__(self, revision: int, key: bytes, names: list[bytes], create: int,
                 version: int) -> None:
        super().__init__(revision, len(names),
                         sum(len(key) + len(name) + EVENT_OVERHEAD_BYTES for name in names))
        self.key = key
        self.names = names
        self.create = create
        self.version = version  # the first op's

    def events(self, prefix: bytes | None) -> list[Event]:
        key = self.key
        if prefix is not None and not key.startswith(prefix):
            return []
        revision, create, version = self.revision, self.create, self.version
        return [(revision, key, TYPED, name, create, version + at)
                for at, name in enumerate(self.names)]


class PutBatch(Batch):
    """The plain puts one entry applied, at one revision, as one bytes object: each
    key and value (``u32`` length first), and per put the key's create revision and
    version after it (``metas``: two little-endian int64s each).

    A slot of each put's own objects (its key, value and tuple) would keep thousands of
    small objects alive for as long as the history holds them, scattered through the
    allocator's pools; the write path then allocates from colder memory, which cost a
    pipelined SET a fifth of its throughput here. Two objects stay alive instead."""

    __slots__ = ("data", "metas")

    def __init__(self, revision: int, items: tuple[tuple[bytes, bytes], ...],
                 metas: list[int], nbytes: int) -> None:
        super().__init__(revision, len(items), nbytes)
        parts: list[bytes] = []
        for key, value in items:
            parts.append(u32(len(key)))
            parts.append(key)
            parts.append(u32(len(value)))
            parts.append(value)
        self.data = b"".join(parts)
        self.metas = struct.pack(f"<{len(metas)}q", *metas)  # (one C loop for them all)

    def events(self, prefix: bytes | None) -> list[Event]:
        revision, metas = self.revision, struct.unpack(f"<{2 * self.count}q", self.metas)
        reader = BinaryReader(self.data, ValueError)
        out: list[Event] = []
        for i in range(self.count):
            key, value = reader.blob(), reader.blob()
            if prefix is None or key.startswith(prefix):
                out.append((revision, key, PUT, value, metas[2 * i], metas[2 * i + 1]))
        return out


class History:
    """Not thread-safe: the state machine's loop owns it.

    The events are a plain list (append and trim are native calls in the compiled
    module, where a deque's are method lookups): past a bound it drops the oldest in
    one slice, down to ``TRIM_SHARE`` below the bound, so a full history pays for a
    trim once per many events rather than per event."""

    __slots__ = ("_bytes", "_count", "_events", "_flushed", "_recorded", "_removed",
                 "compacted", "max_bytes", "max_events")

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: list[Event | Batch] = []
        self._count = 0  # events held (a batch counts its items)
        self._bytes = 0
        self._recorded = 0  # slots ever filled (``mark`` and ``undo`` count in it)
        self._removed: dict[bytes, int] = {}  # key -> its last removal still held
        self._flushed = 0  # revision of the last flush
        self.compacted = 0  # the history holds every change after this revision

    def __len__(self) -> int:
        return self._count

    def record(self, revision: int, key: bytes, kind: int, value: bytes | None = None,
               create_revision: int = 0, version: int = 0) -> None:
        """Add an event (``kind``: one of the ints above)."""
        self._events.append((revision, key, kind, value, create_revision, version))
        self._recorded += 1
        self._count += 1
        self._bytes += _size(key, value)
        if kind >= DELETE:
            if kind == FLUSH:
                self._flushed = revision
                self._removed.clear()
            else:
                self._removed[key] = revision
        if self._count > self.max_events or self._bytes > self.max_bytes:
            self._trim()

    def record_batch(self, batch: Batch) -> None:
        """Add the plain puts of one entry (the write path of pipelined SETs), or a run
        of typed writes to one key."""
        self._events.append(batch)
        self._recorded += 1
        self._count += batch.count
        self._bytes += batch.nbytes
        if self._count > self.max_events or self._bytes > self.max_bytes:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest slots until both bounds hold with a margin of
        1/TRIM_SHARE of each (at least one slot)."""
        events, removed = self._events, self._removed
        keep_events = self.max_events - self.max_events // TRIM_SHARE
        keep_bytes = self.max_bytes - self.max_bytes // TRIM_SHARE
        count, size, dropped = self._count, self._bytes, 0
        while dropped < len(events) and (count > keep_events or size > keep_bytes):
            slot = events[dropped]
            dropped += 1
            if isinstance(slot, Batch):
                count -= slot.count
                size -= slot.nbytes
                self.compacted = slot.revision
                continue
            revision, key, kind, value, _, _ = slot
            count -= 1
            size -= _size(key, value)
            self.compacted = revision
            if DELETE <= kind <= EVICT and removed.get(key) == revision:
                del removed[key]
        del events[:dropped]
        self._count, self._bytes = count, size

    def mark(self) -> int:
        """Where the history ends now (to ``undo`` back to)."""
        return self._recorded

    def undo(self, mark: int) -> None:
        """Forget what was recorded since ``mark`` (an atomic transaction undone; what
        a trim already dropped is gone anyway). Removals forgotten this way may leave
        ``removed_after`` saying "changed": the safe side."""
        events = self._events
        for _ in range(min(self._recorded - mark, len(events))):
            slot = events.pop()
            if isinstance(slot, Batch):
                self._count -= slot.count
                self._bytes -= slot.nbytes
            else:
                self._count -= 1
                self._bytes -= _size(slot[1], slot[3])
        self._recorded = mark

    def reset(self, revision: int) -> None:
        """Empty, complete only after ``revision`` (a snapshot was restored there)."""
        self._events.clear()
        self._count = 0
        self._bytes = 0
        self._removed.clear()
        self._flushed = 0
        self.compacted = revision

    def removed_after(self, key: bytes, since: int) -> bool:
        """Whether ``key`` may have been removed (deleted, expired, evicted, flushed)
        after revision ``since``: True when it was, and when the history no longer
        reaches back to ``since``."""
        return since < self.compacted or self._flushed > since \
            or self._removed.get(key, 0) > since

    def after(self, revision: int, current: int, prefix: bytes | None = None,
              limit: int | None = None) -> list[Event]:
        """The events after ``revision`` (of keys starting with ``prefix``; a flush
        always), oldest first, at most ``limit``; Compacted when the history does not
        reach back to ``revision``."""
        if revision < self.compacted:
            raise Compacted(self.compacted, current)
        out: list[Event] = []
        for slot in reversed(self._events):  # (the recent end is what watchers ask for)
            if isinstance(slot, Batch):
                if slot.revision <= revision:
                    break
                out.extend(reversed(slot.events(prefix)))
                continue
            if slot[0] <= revision:
                break
            if prefix is None or slot[1].startswith(prefix) or slot[2] == FLUSH:
                out.append(slot)
        out.reverse()
        return out if limit is None else out[:limit]


def _size(key: bytes, value: bytes | None) -> int:
    """What an event counts against ``max_bytes``."""
    return len(key) + (len(value) if value is not None else 0) + EVENT_OVERHEAD_BYTES
