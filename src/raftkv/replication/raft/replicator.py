"""The Replicator a cluster node serves with: a RaftNode behind the service's port.

``RaftReplicator`` puts a RaftNode (and its peer network) behind the service's
``Replicator`` port, so the service and the fronts do not change between one node
and a cluster. On a follower, writes go to the leader through ``forward.py``. It
also answers for the cluster's membership (learners promoted once caught up), and a
leader that stops on purpose hands its leadership over first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from raftkv.core.commands import Command, Result
from raftkv.errors import InvalidArgument, NotLeader, Unavailable
from raftkv.replication.raft.calls import Calls
from raftkv.replication.raft.core import Role
from raftkv.replication.raft.forward import Forwarding
from raftkv.replication.raft.messages import Message
from raftkv.replication.raft.node import RaftNode
from raftkv.replication.raft.transport import PeerLink, PeerNetwork
from raftkv.service.ports import (
    AcceptPeer,
    Consistency,
    LeaderCalls,
    Membership,
    ReplicaStatus,
    SnapshotStats,
)

log = logging.getLogger("raftkv.raft")

PROMOTE_CHECK_S = 0.5


class RaftReplicator:
    """The service's Replicator port over a RaftNode (and its peer network)."""

    def __init__(self, node: RaftNode, network: PeerNetwork | None = None,
                 on_start: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        self.node = node
        self.network = network
        self.state_machine = node.state_machine
        self.observers = node.observers
        self.membership: Membership | None = self
        self.accept_peer: AcceptPeer | None = network.accept if network is not None else None
        self._on_start = on_start  # run once beside the loops (founding or joining)
        self._forwarding = Forwarding(node, network) if network is not None else None
        self._calls = Calls(node, network) if network is not None else None
        if self._forwarding is not None:
            node.on_leadership = self._follow_leadership

    async def run(self) -> None:
        """The node's Ready loop and ticker, the peer links, learner promotion and
        ``on_start``, until cancelled; a dead Raft loop ends it with the error."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.node.run())
            if self.network is not None:
                tasks.create_task(self.network.run(self))
            tasks.create_task(self._promote_learners())
            if self._on_start is not None:
                tasks.create_task(self._on_start())

    # --- what the peer network hands over (PeerHandler) --------------------------------

    def on_message(self, message: Message) -> None:
        self.node.receive(message)

    def on_peer_unreachable(self, node_id: str) -> None:
        self.node.peer_unreachable(node_id)
        if self._calls is not None:
            self._calls.peer_unreachable(node_id)

    def on_forward(self, link: PeerLink, call: int, payload: bytes) -> None:
        if self._forwarding is not None:
            self._forwarding.serve(link, call, payload)

    def on_forward_reply(self, call: int, payload: bytes) -> None:
        if self._forwarding is not None:
            self._forwarding.on_reply(call, payload)

    def on_call(self, link: PeerLink, call: int, payload: bytes) -> None:
        if self._calls is not None:
            self._calls.serve(link, call, payload)

    def on_call_reply(self, call: int, payload: bytes) -> None:
        if self._calls is not None:
            self._calls.on_reply(call, payload)

    def _follow_leadership(self) -> None:
        assert self._forwarding is not None and self._calls is not None
        self._forwarding.follow_leadership()
        self._calls.follow_leadership()

    # --- the Replicator port ----------------------------------------------------------

    def serve_calls(self, calls: LeaderCalls) -> None:
        if self._calls is not None:
            self._calls.service = calls

    def call_leader(self, payload: bytes) -> asyncio.Future[bytes]:
        if self._calls is None:
            raise Unavailable("no peers to call")
        return self._calls.call(payload)

    def submit_nowait(self, command: Command, future: asyncio.Future[Result] | None = None
                      ) -> asyncio.Future[Result]:
        forwarding = self._forwarding
        if forwarding is None or self.node.core.role == Role.LEADER:
            return self.node.propose(command, future)
        return forwarding.forward(command, future)

    def read_barrier(self, consistency: Consistency) -> asyncio.Future[None] | None:
        if consistency is Consistency.STALE:
            return None
        core = self.node.core
        if consistency is Consistency.LEADER and core.role == Role.LEADER:
            return None
        if core.role != Role.LEADER and self.network is None:
            raise NotLeader("reads at this consistency are served by the leader", core.leader)
        if core.role != Role.LEADER and core.leader is None:
            raise Unavailable("no leader is known; try again shortly")
        return self.node.read_index()  # on a follower: the leader confirms the index

    def can_propose(self) -> bool:
        return self.node.core.role == Role.LEADER

    def status(self) -> ReplicaStatus:
        node, core = self.node, self.node.core.status()
        heard = node.heartbeat_at
        ago = (None if core.role == Role.LEADER or heard is None
               else int((time.monotonic() - heard) * 1000))
        role = "candidate" if core.role in (Role.PRE_CANDIDATE, Role.CANDIDATE) else core.role
        return ReplicaStatus(core.id, role, core.leader, core.term, core.commit,
                             self.state_machine.applied_index, ago, member=core.member,
                             failed=node.failed is not None)

    async def snapshot(self) -> SnapshotStats | None:
        return await self.node.snapshot_now()

    async def close(self) -> None:
        """After ``run`` ended: close the links, make the log durable, and fail the
        forwarded writes still waiting (their outcome is unknown)."""
        if self.network is not None:
            await self.network.close()
        await self.node.close()
        if self._forwarding is not None:
            self._forwarding.close()
        if self._calls is not None:
            self._calls.close()

    async def hand_over(self, wait_s: float = 2.0) -> None:
        """A leader that stops on purpose (SIGTERM) hands over to its most caught-up
        reachable voter first, so the cluster does not wait out an election timeout."""
        network, core = self.network, self.node.core.status()
        if core.role != Role.LEADER or network is None or self.node.failed is not None:
            return
        candidates = [(match, v) for v, match in core.match.items()
                      if v in core.voters and network.reachable(v)]
        if not candidates:
            return
        _, to = max(candidates)
        self.node.transfer_leadership(to)
        deadline = time.monotonic() + wait_s
        while self.can_propose() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if not self.can_propose():
            log.info("handed leadership over before stopping", extra={"to": to})

    # --- membership -------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        core = self.node.core.status()
        return [{
            "id": node_id,
            "role": "voter" if node_id in core.voters else "learner",
            "isLeader": node_id == core.leader,
            "reachable": node_id == core.id or (self.network is not None
                                                and self.network.reachable(node_id)),
            "matchIndex": core.last_index if node_id == core.id else core.match.get(node_id),
            "url": None if node_id == core.id or self.network is None
            else self.network.url_of(node_id),  # (this node's: the caller knows it)
        } for node_id in sorted({*core.voters, *core.learners})]

    def change_membership(self, change: str, node_id: str) -> asyncio.Future[Any]:
        """``add-learner`` or ``remove`` (``promote`` happens by itself once caught up)."""
        core = self.node.core.status()
        if core.role != Role.LEADER:
            raise NotLeader(f"membership changes are made on the leader "
                            f"({core.leader or 'unknown'})", core.leader)
        return self.node.propose_conf_change(change, node_id)

    def transfer_leadership(self, to: str) -> None:
        core = self.node.core.status()
        if core.role != Role.LEADER:
            raise NotLeader(f"leadership is transferred by the leader "
                            f"({core.leader or 'unknown'})", core.leader)
        if to not in core.voters or to == core.id:
            raise InvalidArgument(f"{to} is not another voter of this cluster")
        self.node.transfer_leadership(to)

    async def _promote_learners(self) -> None:
        """On the leader: a learner whose log has caught up with the commit index
        becomes a voter (etcd's learner promotion, done for the admin)."""
        while True:
            await asyncio.sleep(PROMOTE_CHECK_S)
            core = self.node.core.status()
            if core.role != Role.LEADER:
                continue
            for learner in core.learners:
                if core.match.get(learner, -1) >= core.commit:
                    try:
                        await self.node.propose_conf_change("promote", learner)
                        log.info("promoted a caught-up learner", extra={"nodeId": learner})
                    except Exception as exc:  # retried next round
                        log.info("promotion of %s deferred: %s", learner, exc)
                    break
