"""Leases: replicated time-to-live for groups of keys (DATA-MODEL.md section 6).

A lease has an id, a TTL and an absolute deadline, decided from the proposer's clock
as key TTLs are (``now_ms + ttl_ms`` of the entry that granted or kept it alive), and
the keys attached to it. A keep-alive moves the deadline; a revocation deletes every
attached key in the same entry. Only the leader proposes the revocation of an
expired lease, and the entry checks the deadline again when it applies, so a lease
kept alive meanwhile survives. Because deadlines are absolute, a new leader neither
forgives nor extends a lease: it revokes at the same deadline the old one would have.

A key is attached by a put that names the lease, and detached by a put that does not
(etcd's rule), by its deletion, its expiry or its eviction.
"""

from __future__ import annotations

from typing import Final

MAX_TTL_MS: Final = 10 * 365 * 24 * 3600 * 1000
# A shorter lease could not be kept alive across a keep-alive's round trip and a
# leader change (etcd raises such TTLs to its own minimum; raftkv refuses them).
MIN_TTL_MS: Final = 1000


class Lease:
    __slots__ = ("deadline_ms", "keys", "lease_id", "ttl_ms")

    def __init__(self, lease_id: int, ttl_ms: int, deadline_ms: int,
                 keys: set[bytes] | None = None) -> None:
        self.lease_id = lease_id
        self.ttl_ms = ttl_ms
        self.deadline_ms = deadline_ms
        self.keys: set[bytes] = keys if keys is not None else set()

    def copy(self) -> Lease:
        return Lease(self.lease_id, self.ttl_ms, self.deadline_ms, set(self.keys))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lease) and (
            self.lease_id, self.ttl_ms, self.deadline_ms, self.keys) == (
            other.lease_id, other.ttl_ms, other.deadline_ms, other.keys)

    def __repr__(self) -> str:
        return (f"Lease({self.lease_id}, ttl_ms={self.ttl_ms}, "
                f"deadline_ms={self.deadline_ms}, keys={len(self.keys)})")


class Leases:
    """Every lease, and which lease each attached key is on. Not thread-safe: the state
    machine's loop owns it."""

    __slots__ = ("by_id", "of_key")

    def __init__(self) -> None:
        self.by_id: dict[int, Lease] = {}
        self.of_key: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def grant(self, lease_id: int, ttl_ms: int, deadline_ms: int) -> None:
        self.by_id[lease_id] = Lease(lease_id, ttl_ms, deadline_ms)

    def attach(self, key: bytes, lease_id: int) -> None:
        """Put ``key`` on lease ``lease_id`` (0: on none), off any other."""
        held = self.of_key.get(key)
        if held == lease_id:
            return
        if held is not None:
            self.detach(key)
        if lease_id:
            self.by_id[lease_id].keys.add(key)
            self.of_key[key] = lease_id

    def detach(self, key: bytes) -> None:
        lease_id = self.of_key.pop(key, None)
        if lease_id is not None:
            self.by_id[lease_id].keys.discard(key)

    def detach_all(self) -> None:
        """Every key is gone (a flush): the leases stay, empty."""
        self.of_key.clear()
        for lease in self.by_id.values():
            lease.keys.clear()

    def revoke(self, lease_id: int) -> list[bytes]:
        """End the lease; its keys, in order, for the caller to delete."""
        lease = self.by_id.pop(lease_id)
        for key in lease.keys:
            del self.of_key[key]
        return sorted(lease.keys)

    def due(self, now_ms: int, limit: int) -> list[int]:
        """Up to ``limit`` leases whose deadline is not after ``now_ms``."""
        out = []
        for lease in self.by_id.values():
            if lease.deadline_ms <= now_ms:
                out.append(lease.lease_id)
                if len(out) >= limit:
                    break
        return out

    def copy(self) -> dict[int, Lease]:
        """A copy for a snapshot (the keys sets copied too)."""
        return {lease_id: lease.copy() for lease_id, lease in self.by_id.items()}

    def load(self, leases: dict[int, Lease]) -> None:
        self.by_id = {lease_id: lease.copy() for lease_id, lease in leases.items()}
        self.of_key = {key: lease.lease_id for lease in self.by_id.values()
                       for key in lease.keys}
