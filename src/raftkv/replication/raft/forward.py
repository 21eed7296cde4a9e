"""Leader forwarding: a follower's writes go to the leader over the peer link.

The follower sends a FORWARD frame (``call u64 | encoded command``); the command
always carries a request id, so a duplicate delivery applies once. The leader
proposes it and answers FORWARD_REPLY (``call u64 | outcome u8 | body``): APPLIED
with the index it was applied at, NOT_APPLIED (it was not the leader, or its log
failed: safe to retry) or UNKNOWN (the outcome is unknown) with a reason. The
follower waits until it has applied that index itself and answers from its own state
machine - deterministic, so the same result, and the client then reads its own
write on that follower.

A write still unanswered when the leader changes (killed, deposed, or it said
NOT_APPLIED) follows the leadership: the follower sends it again, same request id,
to the new leader - or proposes it itself if it is now the leader - so it applies
once wherever it lands, and a client of a follower sees a failover as a slower
write, not an error. A write that finds no leader waits for one the same way. Only a
write unanswered for the whole commit timeout fails: not applied if no leader ever
saw it, else with its outcome unknown.
"""

from __future__ import annotations

import asyncio
import os
import struct

from raftkv.core.commands import Command, Result, decode, encode
from raftkv.errors import CommitTimeout, NotLeader, StorageError, Unavailable
from raftkv.replication.raft.node import RaftNode
from raftkv.replication.raft.transport import FORWARD, FORWARD_REPLY, PeerLink, PeerNetwork

_CALL = struct.Struct("<Q")
_APPLIED, _NOT_APPLIED, _UNKNOWN = 0, 1, 2  # outcomes of a forwarded write
FOLLOW_LEADER_S = 0.25  # how often an unanswered write checks who leads now (besides
# at every change of leader: ``follow_leadership``)


class Forwarding:
    """Both ends of forwarding for one node: ``forward`` and ``on_reply`` as a
    follower, ``serve`` as the leader."""

    def __init__(self, node: RaftNode, network: PeerNetwork) -> None:
        self.node = node
        self.network = network
        self.state_machine = node.state_machine
        self._calls: dict[int, tuple[bytes, asyncio.Future[Result]]] = {}
        self._sent: dict[int, tuple[str | None, Command]] = {}  # call -> (sent to, what)
        self._never_sent: set[int] = set()  # calls no leader has seen yet: not applied


    def forward(self, command: Command, future: asyncio.Future[Result] | None = None
                ) -> asyncio.Future[Result]:
        """Send ``command`` to the leader; the future (``future``, when given) resolves
        with its result once this node has applied it too. With no leader known or
        reachable it waits for one (``_follow_leader``), up to the commit timeout."""
        network, leader = self.network, self.node.core.leader
        if not command.request_id:  # so a duplicate delivery applies once
            command = command.replace(request_id=os.urandom(12))
        call = network.next_call_id()
        sent = leader is not None and network.send_frame(
            leader, FORWARD, _CALL.pack(call) + encode(command))
        loop = asyncio.get_running_loop()
        if future is None:
            future = loop.create_future()
        self._calls[call] = (command.request_id, future)
        self._sent[call] = (leader if sent else None, command)
        if not sent:
            self._never_sent.add(call)
        loop.call_later(self.node.commit_timeout_s, self._expire_call, call)
        loop.call_later(FOLLOW_LEADER_S, self._follow_leader, call)
        return future

    def follow_leadership(self) -> None:
        """The leader changed (or became known): send every unanswered write to it now."""
        for call in list(self._sent):
            self._resend(call)

    def _follow_leader(self, call: int) -> None:
        """Send an unanswered write again if the leadership moved since it was sent (a
        fallback: a change of leader does it at once)."""
        if self._resend(call):
            asyncio.get_running_loop().call_later(FOLLOW_LEADER_S, self._follow_leader, call)

    def _resend(self, call: int) -> bool:
        """Send the write to the current leader if it has not been yet (or propose it
        here, if this node leads now); False once it no longer waits here."""
        sent = self._sent.get(call)
        entry = self._calls.get(call)
        if sent is None or entry is None or entry[1].done():
            self._sent.pop(call, None)
            return False
        sent_to, command = sent
        leader = self.node.core.leader
        if leader is not None and leader != sent_to:
            if leader == self.node.core.id:  # this node leads now: propose it here
                del self._calls[call], self._sent[call]
                self._never_sent.discard(call)
                try:
                    self.node.propose(command, entry[1])
                except (NotLeader, StorageError) as exc:
                    entry[1].set_exception(Unavailable(str(exc)))
                return False
            if self.network.send_frame(leader, FORWARD, _CALL.pack(call) + encode(command)):
                self._sent[call] = (leader, command)
                self._never_sent.discard(call)
        return True

    def _expire_call(self, call: int) -> None:
        self._sent.pop(call, None)
        entry = self._calls.pop(call, None)
        if call in self._never_sent:
            self._never_sent.discard(call)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(Unavailable("no leader could be reached in time; the "
                                                   "write was not applied"))
            return
        if entry is not None and not entry[1].done():
            entry[1].set_exception(CommitTimeout("the leader did not answer in time; the "
                                                 "outcome is unknown"))

    def on_reply(self, call: int, payload: bytes) -> None:
        entry = self._calls.get(call)
        if entry is None:
            return
        request_id, future = entry
        outcome, body = payload[0], payload[1:]
        if outcome == _APPLIED:
            (index,) = _CALL.unpack_from(body)
            self._sent.pop(call, None)

            def answer(_: object) -> None:
                self._calls.pop(call, None)
                if future.done():
                    return
                result = self.state_machine.result_for(request_id)
                if result is None:
                    future.set_exception(CommitTimeout("applied, but its result is no "
                                                       "longer tracked"))
                else:
                    future.set_result(result)

            self.node.wait_applied(index).add_done_callback(answer)
            return
        if outcome == _NOT_APPLIED and call in self._sent:  # send it to the next leader
            answered_by, command = self._sent[call]
            self._sent[call] = (None, command)
            if self.node.core.leader not in (None, answered_by):
                self._resend(call)  # (else at the next change of leader)
            return
        self._calls.pop(call, None)
        self._sent.pop(call, None)
        if not future.done():
            future.set_exception(CommitTimeout(body.decode(errors="replace")))

    def serve(self, link: PeerLink, call: int, payload: bytes) -> None:
        """As the leader: propose a forwarded command and answer the follower."""
        def reply(outcome: int, body: bytes) -> None:
            link.send(FORWARD_REPLY, _CALL.pack(call) + bytes([outcome]) + body)

        try:
            command = decode(payload)
            future = self.node.propose(command)
        except NotLeader as exc:
            reply(_NOT_APPLIED, f"{self.node.core.id} is no longer the leader ({exc})".encode())
            return
        except StorageError as exc:
            reply(_NOT_APPLIED, str(exc).encode())
            return
        except ValueError as exc:
            reply(_NOT_APPLIED, f"malformed forwarded command: {exc}".encode())
            return

        def done(f: asyncio.Future[Result]) -> None:
            exc = f.exception() if not f.cancelled() else CommitTimeout("cancelled")
            if exc is None:
                reply(_APPLIED, _CALL.pack(self.state_machine.applied_index))
            elif isinstance(exc, Unavailable | NotLeader):
                reply(_NOT_APPLIED, str(exc).encode())
            else:
                reply(_UNKNOWN, str(exc).encode())

        future.add_done_callback(done)

    def close(self) -> None:
        """Fail the forwarded writes still waiting: their outcome is unknown."""
        for _, future in self._calls.values():
            if not future.done():
                future.set_exception(CommitTimeout("the node stopped before the leader "
                                                   "answered; the outcome is unknown"))
