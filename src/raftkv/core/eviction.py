"""Eviction under a key-count or memory limit, approximated by sampling as Redis does.

The decision happens here, outside ``apply``: the leader (or the single node) asks
:class:`Evictor` for victims and proposes an ``Evict`` command, so every replica
deletes the same keys at the same index. Access recency and frequency live in an
:class:`AccessTracker` that only the deciding node keeps; it is not replicated.

Policies mirror Redis's ``maxmemory-policy`` names:

* ``noeviction``     - refuse writes that would grow the keyspace past the limit
* ``allkeys-lru``    - among a random sample of all keys, evict the least recently used
* ``allkeys-lfu``    - among a sample, the least frequently used (Redis's log counter)
* ``allkeys-random`` - any key, at random
* ``volatile-lru``, ``volatile-lfu``, ``volatile-random`` - the same, among keys with a TTL
* ``volatile-ttl``   - the keys closest to their deadline
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass
from typing import Final

from raftkv.core.keyspace import Keyspace

ESTIMATED_OVERHEAD_BYTES_PER_KEY: Final = 150
LFU_INIT: Final = 5
LFU_LOG_FACTOR: Final = 10
LFU_DECAY_MS: Final = 60_000


class Policy(enum.StrEnum):
    """In the order Redis lists them."""

    VOLATILE_LRU = "volatile-lru"
    VOLATILE_LFU = "volatile-lfu"
    VOLATILE_RANDOM = "volatile-random"
    VOLATILE_TTL = "volatile-ttl"
    ALLKEYS_LRU = "allkeys-lru"
    ALLKEYS_LFU = "allkeys-lfu"
    ALLKEYS_RANDOM = "allkeys-random"
    NOEVICTION = "noeviction"

    @property
    def tracks_access(self) -> bool:
        """Whether it needs each read's time and frequency (the LRU and LFU policies)."""
        return self.value.endswith(("-lru", "-lfu"))


@dataclass(frozen=True, slots=True)
class Limits:
    """``max_keys`` / ``max_memory_bytes`` of 0 mean unlimited."""

    policy: Policy = Policy.NOEVICTION
    max_keys: int = 0
    max_memory_bytes: int = 0
    sample_size: int = 5


def estimated_memory_bytes(keyspace: Keyspace) -> int:
    """Payload bytes plus a fixed per-key overhead (measured: see benchmarks/)."""
    return keyspace.data_bytes + ESTIMATED_OVERHEAD_BYTES_PER_KEY * len(keyspace)


class AccessTracker:
    """Last access time and a logarithmic frequency counter per key (Redis LFU)."""

    __slots__ = ("_last_ms", "_lfu", "_rng", "enabled")

    def __init__(self, enabled: bool, rng: random.Random) -> None:
        self.enabled = enabled
        self._rng = rng
        self._last_ms: dict[bytes, int] = {}
        self._lfu: dict[bytes, int] = {}

    def touch(self, key: bytes, now_ms: int) -> None:
        if not self.enabled:
            return
        counter = self.frequency(key, now_ms)
        if counter < 255:
            p = 1.0 / (max(counter - LFU_INIT, 0) * LFU_LOG_FACTOR + 1)
            if self._rng.random() < p:
                counter += 1
        self._lfu[key] = counter
        self._last_ms[key] = now_ms

    def forget(self, key: bytes) -> None:
        self._last_ms.pop(key, None)
        self._lfu.pop(key, None)

    def clear(self) -> None:
        self._last_ms.clear()
        self._lfu.clear()

    def last_access_ms(self, key: bytes) -> int:
        return self._last_ms.get(key, 0)

    def frequency(self, key: bytes, now_ms: int) -> int:
        """The LFU counter after decay: one step per idle minute, as in Redis."""
        counter = self._lfu.get(key, LFU_INIT)
        idle_ms = now_ms - self._last_ms.get(key, now_ms)
        return max(0, counter - idle_ms // LFU_DECAY_MS)


class Evictor:
    """Chooses keys to evict; never mutates the keyspace itself."""

    __slots__ = ("_rng", "limits", "tracker")

    def __init__(self, limits: Limits, tracker: AccessTracker, rng: random.Random) -> None:
        self.limits = limits
        self.tracker = tracker
        self._rng = rng

    def excess(self, keyspace: Keyspace, incoming_bytes: int = 0) -> int:
        """How many keys must go to be within the limits (0 when within), counting a
        pending write of ``incoming_bytes`` as already stored."""
        limits = self.limits
        over = 0
        if limits.max_keys and len(keyspace) + (1 if incoming_bytes else 0) > limits.max_keys:
            over = len(keyspace) + (1 if incoming_bytes else 0) - limits.max_keys
        if limits.max_memory_bytes:
            used = estimated_memory_bytes(keyspace) + incoming_bytes
            if used > limits.max_memory_bytes and len(keyspace):
                per_key = max(1, used // max(1, len(keyspace)))
                over = max(over, math.ceil((used - limits.max_memory_bytes) / per_key))
        return over

    def choose(self, keyspace: Keyspace, now_ms: int, count: int) -> list[bytes]:
        """Up to ``count`` distinct victims by the policy; empty under noeviction."""
        policy = self.limits.policy
        if policy is Policy.NOEVICTION or count <= 0:
            return []
        if policy is Policy.VOLATILE_TTL:
            return keyspace.earliest_deadlines(count)
        victims: list[bytes] = []
        seen: set[bytes] = set()
        volatile = policy.value.startswith("volatile-")
        population = keyspace.volatile_count if volatile else len(keyspace)
        size = 1 if policy.value.endswith("-random") else self.limits.sample_size
        while len(victims) < count and len(seen) < population:
            sample = {self._sample(keyspace, volatile, population)
                      for _ in range(size)} - seen
            if not sample:
                continue
            if policy.value.endswith("-lfu"):
                best = min(sample, key=lambda k: (self.tracker.frequency(k, now_ms), k))
            else:  # (a random policy's sample has one key)
                best = min(sample, key=lambda k: (self.tracker.last_access_ms(k), k))
            seen.add(best)
            victims.append(best)
        return victims

    def _sample(self, keyspace: Keyspace, volatile: bool, population: int) -> bytes:
        position = self._rng.randrange(population)
        return keyspace.volatile_key_at(position) if volatile else keyspace.key_at(position)
