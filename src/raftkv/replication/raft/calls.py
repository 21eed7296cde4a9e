"""Calls to the leader's service: what a node asks of whoever leads now (a blocked
pop, parked on the leader: ``service/blocking.py``), over the peer link.

The caller sends a CALL frame (``call u64 | payload``); the leader hands the payload
to the service's ``LeaderCalls.serve`` and answers CALL_REPLY (``call u64 | status u8
| body``) when that resolves: ANSWER with the answer, MOVED when the leader no longer
leads (or never did), FAILED with a reason. A call the leader never answers - the
leadership moves, the link to the leader drops - fails with Unavailable on the caller's
side, which sends it again to the next leader: the payload says what to do and the
service on the leader makes a repeat harmless. A node that leads serves its own
clients without a call (so one to itself fails); when it stops leading, the service
is told (``step_down``) so it drops what it served as the leader.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Final

from raftkv.errors import CommitTimeout, NotLeader, Unavailable
from raftkv.replication.raft.core import Role
from raftkv.replication.raft.node import RaftNode
from raftkv.replication.raft.transport import CALL, CALL_REPLY, PeerLink, PeerNetwork
from raftkv.service.ports import LeaderCalls

_CALL: Final = struct.Struct("<Q")
_ANSWER, _MOVED, _FAILED = 0, 1, 2


class Calls:
    """Both ends of the calls for one node: ``call`` and ``on_reply`` as any node,
    ``serve`` as the leader."""

    def __init__(self, node: RaftNode, network: PeerNetwork) -> None:
        self.node = node
        self.network = network
        self.service: LeaderCalls | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[bytes]]] = {}  # call -> leader
        self._led = False  # whether this node led at the last change of leadership

    def call(self, payload: bytes) -> asyncio.Future[bytes]:
        core = self.node.core
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        leader, call = core.leader, self.network.next_call_id()
        if leader is None or leader == core.id or not self.network.send_frame(
                leader, CALL, _CALL.pack(call) + payload):
            future.set_exception(Unavailable("no leader is reachable; try again shortly"))
            return future
        self._pending[call] = (leader, future)
        future.add_done_callback(lambda _: self._pending.pop(call, None))
        return future

    def on_reply(self, call: int, payload: bytes) -> None:
        entry = self._pending.pop(call, None)
        if entry is None or entry[1].done() or not payload:
            return
        future, status, body = entry[1], payload[0], payload[1:]
        if status == _ANSWER:
            future.set_result(body)
        elif status == _MOVED:
            future.set_exception(Unavailable(body.decode(errors="replace")))
        else:
            future.set_exception(CommitTimeout(body.decode(errors="replace")))

    def follow_leadership(self) -> None:
        """The leadership changed: calls sent to another node than the leader now fail
        (to be sent again), and a node that stopped leading tells its service."""
        core = self.node.core
        self._fail_sent_to(lambda leader: leader != core.leader, "the leadership moved")
        leads = core.role == Role.LEADER
        if self._led and not leads and self.service is not None:
            self.service.step_down()
        self._led = leads

    def peer_unreachable(self, node_id: str) -> None:
        """Every link to ``node_id`` dropped: its answers cannot arrive."""
        self._fail_sent_to(lambda leader: leader == node_id, f"the link to {node_id} dropped")

    def _fail_sent_to(self, which: Callable[[str], bool], reason: str) -> None:
        for call, (leader, future) in list(self._pending.items()):
            if which(leader):
                del self._pending[call]
                if not future.done():
                    future.set_exception(Unavailable(reason))

    def serve(self, link: PeerLink, call: int, payload: bytes) -> None:
        """As the leader: hand a call to the service and answer when it resolves."""
        def reply(status: int, body: bytes) -> None:
            link.send(CALL_REPLY, _CALL.pack(call) + bytes([status]) + body)

        service = self.service
        if self.node.core.role != Role.LEADER or service is None:
            reply(_MOVED, f"{self.node.core.id} does not lead".encode())
            return
        try:
            answer = service.serve(payload)
        except ValueError as exc:
            reply(_FAILED, f"malformed call: {exc}".encode())
            return
        except (Unavailable, NotLeader) as exc:
            reply(_MOVED, str(exc).encode())
            return

        def done(f: asyncio.Future[bytes]) -> None:
            exc = f.exception() if not f.cancelled() else Unavailable("cancelled")
            if exc is None:
                reply(_ANSWER, f.result())
            elif isinstance(exc, Unavailable | NotLeader):
                reply(_MOVED, str(exc).encode())
            else:
                reply(_FAILED, str(exc).encode())

        answer.add_done_callback(done)

    def close(self) -> None:
        """The node stops: calls still waiting fail, to be sent again elsewhere."""
        self._fail_sent_to(lambda _: True, "the node stopped")
