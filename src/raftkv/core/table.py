"""The keyspace's map of key -> packed entry.

This file is the reference: what each method means, in plain Python over a dict.
What runs is ``table.c``, built into an extension module of the same name, which
Python imports instead of this file. The C table stores each key and its packed
entry side by side in one block, so a get on a large keyspace waits on memory
twice where a dict waits four times (see table.c). Without the extension (a
``RAFTKV_PURE`` install, or the ``.so`` files removed to debug) this file runs, and
the tests hold the two to the same behaviour.

A packed entry is a header followed by the value (``keyspace.py`` packs them): first
byte 0, ``COMPACT_BYTES`` long, no deadline; first byte 1, ``FULL_BYTES`` long, with
the deadline (ms, 0 for none) as a little-endian u64 at ``DEADLINE_AT``; first byte
``TYPED`` or more, a full header and no value: the key holds a hash, list, set or sorted
set (``containers.py``), which ``value`` refuses with WrongType and ``values`` reads as
None (Redis's GET and MGET).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from raftkv.errors import WrongType

COMPACT_BYTES: Final = 11
FULL_BYTES: Final = 29
DEADLINE_AT: Final = 17
TYPED: Final = 0x10


def _value_of(packed: bytes, now_ms: int, strict: bool) -> bytes | None:
    if packed[0] == 0:
        return packed[COMPACT_BYTES:]
    deadline = int.from_bytes(packed[DEADLINE_AT:DEADLINE_AT + 8], "little")
    if deadline and now_ms >= 0 and deadline <= now_ms:
        return None
    if packed[0] >= TYPED:
        if strict:
            raise WrongType("the key holds a value of another type")
        return None
    return packed[FULL_BYTES:]


class Table:
    """Map of bytes key -> packed entry. Not thread-safe."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        """The packed entry, or None."""
        return self._entries.get(_key(key))

    def value(self, key: bytes, now_ms: int) -> bytes | None:
        """The value alone, or None when the key is absent or its deadline is not
        after ``now_ms``; WrongType when it holds no string."""
        packed = self._entries.get(_key(key))
        return None if packed is None else _value_of(packed, now_ms, True)

    def values(self, keys: Sequence[bytes], now_ms: int) -> list[bytes | None]:
        """``value`` of each key, None for a key that holds no string."""
        out: list[bytes | None] = []
        for key in keys:
            packed = self._entries.get(_key(key))
            out.append(None if packed is None else _value_of(packed, now_ms, False))
        return out

    def prefetch(self, keys: Sequence[bytes]) -> None:
        """Nothing here: the C table brings the keys' memory into the CPU's cache, so
        that a batch of writes that then reads them one by one waits on memory once."""
        for key in keys:
            _key(key)

    def put(self, key: bytes, packed: bytes) -> None:
        """Store the packed entry under ``key``."""
        if not isinstance(packed, bytes):
            raise TypeError(f"entries are bytes, not {type(packed).__name__}")
        if not packed or len(packed) < (COMPACT_BYTES if packed[0] == 0 else FULL_BYTES):
            raise ValueError("an entry starts with a whole header")
        self._entries[_key(key)] = packed

    def pop(self, key: bytes) -> bytes | None:
        """Remove ``key``; its packed entry, or None when it was absent."""
        return self._entries.pop(_key(key), None)

    def update(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """``put`` each (key, packed) pair."""
        for key, packed in pairs:
            self.put(key, packed)

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, packed) pair, in no particular order."""
        return list(self._entries.items())

    def copy(self) -> Table:
        """A table with the same entries (cheap: the entries are immutable)."""
        twin = Table()
        twin._entries = self._entries.copy()
        return twin

    def clear(self) -> None:
        self._entries.clear()


def _key(key: bytes) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError(f"keys are bytes, not {type(key).__name__}")
    return key
