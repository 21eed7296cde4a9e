"""The RESP server: one asyncio.Protocol per client, sharing a RespServer.

Pipelining: every command parsed from one ``data_received`` is dispatched at once
and all their replies leave in one write, in order. Writes in that batch go to the
log together, so they share one group commit. A read that follows a write still
waiting on its commit is deferred until that write applied (Redis runs a pipeline
sequentially, so GET after SET must see the SET).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from raftkv.config import Config
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.admin import REDIS_VERSION
from raftkv.fronts.resp.commands import (
    TABLE,
    Later,
    ScanCursors,
    batch_run,
    dispatch,
)
from raftkv.fronts.resp.pubsub import KeyspaceEvents, PubSub
from raftkv.fronts.resp.reader import ProtocolError, QueryBufferFull, RequestReader
from raftkv.service.auth import OPEN, Authenticator, Principal
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService

log = logging.getLogger("raftkv.resp")


@dataclass
class RespStats:
    commands: int = 0
    connections_received: int = 0
    rejected_connections: int = 0
    keyspace_hits: int = 0
    keyspace_misses: int = 0


class RespServer:
    def __init__(self, service: KVService, config: Config, authenticator: Authenticator,
                 pubsub: PubSub) -> None:
        self.service: KVService = service
        self.config: Config = config
        self.authenticator = authenticator
        self.pubsub = pubsub
        self.events: KeyspaceEvents = KeyspaceEvents(pubsub, service)
        if config.keyspace_notifications:
            self.events.configure("KEA")
        self.cursors = ScanCursors()
        self.stats = RespStats()
        self.connections: set[Connection] = set()
        # CONFIG SET may change the first three at run time
        self.max_clients: int = config.resp.max_clients
        self.query_buffer_limit_bytes: int = config.resp.query_buffer_limit_bytes
        self.idle_timeout_s: float = config.resp.idle_timeout_s
        self.max_multibulk_len: int = config.resp.max_multibulk_len
        self.max_bulk_bytes: int = config.max_value_bytes  # proto-max-bulk-len
        self.redis_version = REDIS_VERSION
        self.started: float = time.monotonic()
        self.port: int = 0
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._waiting: dict[asyncio.Future[Any], list[Connection]] = {}

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), host, port,
                                                backlog=2048, reuse_address=True)
        self.port = cast(Any, self._server).sockets[0].getsockname()[1]  # (a list on uvloop)
        self._sweeper = loop.create_task(self._sweep_idle())
        return self.port

    def next_id(self) -> int:
        return next(self._ids)

    def wake_when_done(self, future: asyncio.Future[Any], conn: Connection) -> None:
        """Flush ``conn``'s ready replies when ``future`` is done.

        Many connections wait on one future (a loop turn's batch of plain SETs): the
        future gets one done callback that wakes them all in order, instead of one
        loop callback per connection."""
        waiting = self._waiting.get(future)
        if waiting is None:
            waiting = self._waiting[future] = []
            future.add_done_callback(self._wake)
        waiting.append(conn)

    def _wake(self, future: asyncio.Future[Any]) -> None:
        for conn in self._waiting.pop(future):
            try:
                conn.flush_ready()
            except Exception:  # one connection's failure must not strand the others
                log.exception("RESP connection %d failed to flush its replies", conn.id)

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            timeout_s = self.idle_timeout_s
            if not timeout_s:
                continue
            for conn in list(self.connections):
                if not (conn.subscriptions or conn.patterns) and \
                        now - conn.last_active > timeout_s:
                    conn.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: this front's counters start again from zero."""
        self.stats = RespStats()


class Connection(asyncio.Protocol):
    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.service = server.service
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader(server.max_multibulk_len, server.max_bulk_bytes,
                                    server.query_buffer_limit_bytes)
        self.id = server.next_id()
        self.name: bytes | None = None
        self.principal: Principal | None = None if server.authenticator.enabled else OPEN
        self.reader.limited = self.principal is None  # Redis's unauthenticated limits
        self.subscriptions: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.consistency = Consistency.LINEARIZABLE
        self.enc = p.RESP2  # HELLO 3 switches to RESP3
        self.close_after_reply = False
        self.created = self.last_active = time.monotonic()
        self.addr = self.laddr = ""
        self.fd = -1
        self.last_command = "NULL"
        self._pending: deque[list[Any]] = deque()  # [args, reply or None (deferred)]
        self._deferred = 0  # entries in _pending not yet dispatched
        self._last_words: bytes | None = None  # written when _pending drains, then close
        self._closed = False

    @property
    def subscription_count(self) -> int:
        return len(self.subscriptions) + len(self.patterns)

    def principal_may_read(self, key: bytes) -> bool:
        return self.principal is not None and self.principal.may_read(key)

    def describe(self) -> bytes:
        """One line of CLIENT LIST, with Redis 7.0's fields in its order (the buffer and
        memory fields are not measured here and read 0)."""
        now = time.monotonic()
        pubsub = self.subscriptions or self.patterns
        principal = self.principal
        user = "default" if principal is None or principal is OPEN else principal.name
        return (f"id={self.id} addr={self.addr} laddr={self.laddr} fd={self.fd} "
                f"name={(self.name or b'').decode(errors='replace')} "
                f"age={int(now - self.created)} idle={int(now - self.last_active)} "
                f"flags={'P' if pubsub else 'N'} db=0 sub={len(self.subscriptions)} "
                f"psub={len(self.patterns)} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 "
                f"multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "
                f"cmd={self.last_command} user={user} redir=-1 "
                f"resp={self.enc.version}").encode()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = f"{peer[0]}:{peer[1]}" if peer else ""
        local = transport.get_extra_info("sockname")
        self.laddr = f"{local[0]}:{local[1]}" if local else ""
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if hasattr(sock, "fileno") else -1
        server = self.server
        server.stats.connections_received += 1
        if len(server.connections) >= server.max_clients:
            server.stats.rejected_connections += 1
            transport.write(p.error_reply("ERR max number of clients reached"))  # type: ignore[attr-defined]
            transport.close()
            self._closed = True
            return
        server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        pubsub = self.server.pubsub
        for channel in self.subscriptions:
            pubsub.remove(pubsub.channels, self, channel)
        for pattern in self.patterns:
            pubsub.remove(pubsub.patterns, self, pattern)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self.last_active = time.monotonic()
        reader = self.reader
        while True:
            limited = reader.limited  # (then one command per feed: AUTH lifts the limits)
            broken: ProtocolError | None = None
            try:
                commands = reader.feed(data)
            except ProtocolError as exc:  # Redis runs what came before the broken part
                commands, broken = exc.commands, exc
            if commands:
                self._run(commands)
            if broken is not None:
                self._hang_up(None if isinstance(broken, QueryBufferFull)
                              else p.error_reply(f"ERR {broken}"))
                return
            if not (limited and commands) or self._closed:
                return
            data = b""

    def _hang_up(self, last_words: bytes | None) -> None:
        """Close once every reply before it is out, ``last_words`` last."""
        if self._pending:
            self._last_words = last_words or b""
            return
        if last_words:
            self._write(last_words)
        self.close()

    def _run(self, commands: list[list[bytes]]) -> None:
        pending = self._pending
        if not pending:
            # The common case: run the batch, one write for all its replies.
            out: list[bytes] = []
            batching = len(commands) > 1 and self._may_batch()
            i, count = 0, len(commands)
            while i < count:
                batch = batch_run(self, commands, i) if batching else None
                if batch is not None:
                    reply, i = batch
                else:
                    reply = dispatch(self, commands[i])
                    i += 1
                if type(reply) is bytes:
                    out.append(reply)
                    if self.close_after_reply:
                        break
                    continue
                self._wait_for(reply)  # type: ignore[arg-type]
                if i < count:
                    self._queue_rest(commands[i:])
                break
            if out:
                self._write(b"".join(out))
            if self.close_after_reply and not pending:
                self.close()
            return
        self._queue_rest(commands)

    def _may_batch(self) -> bool:
        """Runs of plain SETs or GETs may be answered together (``batch_run``) when
        every check ``dispatch`` makes would pass for each of them."""
        principal = self.principal
        return (principal is not None and principal.unrestricted and not self.subscriptions
                and not self.patterns)

    def _wait_for(self, reply: Later) -> None:
        self._pending.append([None, reply])
        self.server.wake_when_done(reply.future, self)

    def _queue_rest(self, commands: list[list[bytes]]) -> None:
        """Writes go to the log now, in order; reads wait behind unfinished writes."""
        pending = self._pending
        batching = len(commands) > 1 and self._may_batch()
        i, count = 0, len(commands)
        while i < count:
            args = commands[i]
            spec = TABLE.get(args[0].lower())
            if self._deferred or spec is None or "write" not in spec.flags:
                pending.append([args, None])
                self._deferred += 1
                i += 1
                continue
            batch = batch_run(self, commands, i) if batching else None
            if batch is not None:
                reply, i = batch
            else:
                reply = dispatch(self, args)
                i += 1
            if type(reply) is bytes:
                pending.append([None, reply])
            else:
                self._wait_for(reply)  # type: ignore[arg-type]

    def flush_ready(self) -> None:
        """Write the replies that are ready, in order."""
        pending = self._pending
        out: list[bytes] = []
        while pending:
            head = pending[0]
            reply = head[1]
            if reply is None:  # deferred: every command before it has finished
                self._deferred -= 1
                reply = head[1] = dispatch(self, head[0])
                if isinstance(reply, Later):
                    self.server.wake_when_done(reply.future, self)
            if isinstance(reply, Later):
                if not reply.future.done():
                    break
                reply = reply.resolve()
            out.append(reply)
            pending.popleft()
            if self.close_after_reply:
                pending.clear()
        if out:
            self._write(b"".join(out))
        if self.close_after_reply and not pending:
            self.close()
        elif self._last_words is not None and not pending:
            self._hang_up(self._last_words)

    # --- output -----------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        """Pub/Sub delivery: at most once, never queued beyond the socket buffer."""
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()
