"""A sorted list of byte strings: an unpacked sorted set's order keys
(``containers.ZSet``, ``order.py``), kept in byte order, duplicates allowed.

This file is the reference, in plain Python: one list, kept sorted with ``bisect``, so
each insertion moves every later key. What runs is ``sorted_keys.c``, built into an
extension module of the same name, which Python imports instead of this file. It keeps
the keys in chunks of at most a thousand, so an insertion moves the rest of one chunk
only, and finds a key in two binary searches (the chunks' last keys, then one chunk)
with ``memcmp``. Before it, ``sortedcontainers.SortedList`` did the same in Python: an
add and a remove cost ZADD over half of its time (benchmarks/README.md). The tests hold
the two to the same behaviour (``tests/property/test_sorted_keys.py``).

Iterating while the list changes raises ``RuntimeError``, as iterating a dict does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


def _checked(key: object) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError("a sorted key is bytes")
    return key


class SortedKeys:
    __slots__ = ("_changes", "_keys")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        self._keys = sorted(_checked(key) for key in keys)
        self._changes = 0  # (iterators compare it, to refuse a list that changed)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: int) -> bytes:
        """The key at ``index`` (negative from the end)."""
        if not isinstance(index, int):
            raise TypeError("a sorted key's index is an integer")
        if not -len(self._keys) <= index < len(self._keys):
            raise IndexError("sorted key index out of range")
        return self._keys[index]

    def __iter__(self) -> Iterator[bytes]:
        changes = self._changes
        for key in self._keys:
            if self._changes != changes:
                raise RuntimeError("the sorted keys changed during iteration")
            yield key
        if self._changes != changes:
            raise RuntimeError("the sorted keys changed during iteration")

    def add(self, key: bytes) -> None:
        """Insert ``key`` after any equal to it."""
        bisect.insort_right(self._keys, _checked(key))
        self._changes += 1

    def remove(self, key: bytes) -> None:
        """Remove one ``key``; ValueError if there is none."""
        at = self.index(key)
        del self._keys[at]
        self._changes += 1

    def pop(self, index: int = -1) -> bytes:
        """Remove and return the key at ``index``."""
        key = self[index]
        del self._keys[index]
        self._changes += 1
        return key

    def bisect_left(self, key: bytes) -> int:
        """How many keys sort before ``key``."""
        return bisect.bisect_left(self._keys, _checked(key))

    def index(self, key: bytes) -> int:
        """The position of the first ``key``; ValueError if there is none."""
        at = self.bisect_left(key)
        if at == len(self._keys) or self._keys[at] != key:
            raise ValueError("the key is not in the sorted keys")
        return at
