"""The ports the service owns: what it needs from replication, declared here so the
service never imports a concrete replicator (hraftd's "store interface" habit)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from raftkv.core.commands import Command, Result
from raftkv.core.state_machine import StateMachine


class Consistency(enum.StrEnum):
    """How fresh a read must be (etcd's serializable/linearizable, plus a leader read)."""

    LINEARIZABLE = "linearizable"  # confirmed leadership (ReadIndex) before reading
    LEADER = "leader"  # the leader's applied state, no confirmation round
    STALE = "stale"  # any node's applied state


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What /health and /readyz report about this node's log."""

    node_id: str
    role: str  # "leader" | "follower" | "candidate"
    leader_id: str | None
    term: int
    commit_index: int
    applied_index: int
    last_heartbeat_ago_ms: int | None
    recovered: bool = True
    member: bool = True  # False: a cluster node not (yet) in the configuration
    failed: bool = False  # the log cannot be written: nothing more is acknowledged


@dataclass(frozen=True, slots=True)
class SnapshotStats:
    index: int
    size_bytes: int
    duration_s: float


class Replicator(Protocol):
    """Turns commands into durable, ordered, applied results.

    ``submit_nowait`` returns a future that resolves with the command's Result once
    it is durable (per --fsync; in a cluster: committed by a majority) and applied;
    given ``future``, it resolves that one instead (a caller that handed out a future
    before it had a command saves the hop of copying one outcome into another).
    It raises, or the future fails with, errors from ``raftkv.errors``: NotLeader,
    Unavailable (not applied), CommitTimeout (outcome unknown), StorageError.
    """

    state_machine: StateMachine
    observers: list[Callable[[Command, Result], None]]  # called after each apply, in order

    def submit_nowait(self, command: Command, future: asyncio.Future[Result] | None = None
                      ) -> asyncio.Future[Result]: ...

    def read_barrier(self, consistency: Consistency) -> asyncio.Future[None] | None:
        """None when a read of the local state is already at the asked consistency;
        else a future that resolves when it is."""

    def status(self) -> ReplicaStatus: ...

    async def snapshot(self) -> SnapshotStats | None:
        """Write a snapshot now and trim the log it covers; None when it failed."""

    def can_propose(self) -> bool:
        """True when this node orders writes (the single node, or the Raft leader)."""

    def serve_calls(self, calls: LeaderCalls) -> None:
        """Who answers other nodes' ``call_leader`` while this node leads (set once,
        at start)."""

    def call_leader(self, payload: bytes) -> asyncio.Future[bytes]:
        """Send ``payload`` to the leader's ``LeaderCalls.serve`` on another node and
        resolve with its answer. Raises, or fails with, Unavailable when no other node
        answers - this node leads (its caller serves itself), none is known, the link
        to it dropped, or the leadership moved before it answered: the caller may send
        it again - and CommitTimeout when the leader's handler failed."""

    @property
    def membership(self) -> Membership | None:
        """The cluster's membership; None on a single node."""

    @property
    def accept_peer(self) -> AcceptPeer | None:
        """Takes over a peer's HTTP upgrade (the peer links); None on a single node."""

    async def run(self) -> None:
        """The replicator's own loops, until cancelled. Raises when the log can no longer
        be written (a failed fsync, a dead Raft loop): the node must stop."""

    async def hand_over(self) -> None:
        """Before a planned stop, while ``run`` still runs: a Raft leader hands its
        leadership to the most caught-up voter, so the cluster need not wait out an
        election timeout."""

    async def close(self) -> None:
        """After ``run`` ended: stop taking writes, make the log durable, release files."""


class LeaderCalls(Protocol):
    """What the service serves on the leader for other nodes: the blocked pops parked
    there (DATA-MODEL.md section 5)."""

    def serve(self, payload: bytes) -> asyncio.Future[bytes]:
        """Answer a call; fail with Unavailable to have the caller send it again."""

    def step_down(self) -> None:
        """This node no longer leads: fail what ``serve`` still works on, with
        Unavailable, and start nothing more."""


# Takes over an upgraded HTTP connection (headers, transport, bytes already read after
# the request): None when it did, else (status, reason) for the HTTP server to refuse.
AcceptPeer: TypeAlias = "Callable[[dict[bytes, bytes], asyncio.Transport, bytes], tuple[int, str] | None]"


class Membership(Protocol):
    """A cluster's membership, changed through the leader (cluster nodes only)."""

    def members(self) -> list[dict[str, Any]]: ...

    def change_membership(self, change: str, node_id: str) -> asyncio.Future[Any]:
        """``add-learner`` or ``remove``; resolves once the change is committed."""

    def transfer_leadership(self, to: str) -> None: ...
