"""UDP ping/status: a datagram ``PING`` gets one small JSON datagram back.

Anything else is ignored, and the reply is bounded (ids are at most 64 bytes), so
the responder can never amplify traffic: a reply is a few hundred bytes at most."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from raftkv.service.ports import ReplicaStatus

MAX_REPLY_BYTES = 512


class UdpPing(asyncio.DatagramProtocol):
    def __init__(self, status: Callable[[], ReplicaStatus]) -> None:
        self.status = status
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip().upper() != b"PING" or self.transport is None:
            return
        s = self.status()
        reply = orjson.dumps({"id": s.node_id, "state": s.role, "term": s.term,
                              "leaderId": s.leader_id})
        if len(reply) <= MAX_REPLY_BYTES:
            self.transport.sendto(reply, addr)
            self.answered += 1


async def listen(host: str, port: int, status: Callable[[], ReplicaStatus]
                 ) -> asyncio.DatagramTransport:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: UdpPing(status), local_addr=(host, port))
    return transport
