"""The RESP server: the listener, and one asyncio.Protocol per client that parses its
requests, runs them through ``dispatch`` and writes the replies in order.

Pipelining: every command parsed from one ``data_received`` is dispatched at once
and all their ready replies leave in one write, in order. Writes in that batch go to
the log together, so they share one group commit. A read that follows a write still
waiting on its commit waits its turn (Redis runs a pipeline sequentially, so GET
after SET must see the SET): the rule is ``fronts/ordering.py``'s, shared with HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from typing import Any, Final, cast

from raftkv.config import Config
from raftkv.deferred import Deferred
from raftkv.fronts.ordering import InOrder
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client, ServerState
from raftkv.fronts.resp.commands.pubsub import leave_all
from raftkv.fronts.resp.commands.server import REDIS_VERSION
from raftkv.fronts.resp.dispatch import TABLE, audit, dispatch
from raftkv.fronts.resp.pipeline import batch_run
from raftkv.fronts.resp.pubsub import PubSub
from raftkv.fronts.resp.reader import ProtocolError, QueryBufferFull, RequestReader
from raftkv.fronts.resp.spec import Reply
from raftkv.service.audit import AuditLog
from raftkv.service.auth import Authenticator, Identify
from raftkv.service.service import KVService

log = logging.getLogger("raftkv.resp")
_monotonic: Final = time.monotonic  # (compiled: a C static, not a module lookup per call)


def _is_write(args: list[bytes]) -> bool:
    row = TABLE.get(args[0].lower())
    return row is not None and "write" in row.flags


class RespServer:
    def __init__(self, service: KVService, config: Config, authenticator: Authenticator,
                 pubsub: PubSub, tls: ssl.SSLContext | None = None,
                 identify: Identify | None = None, audit: AuditLog | None = None) -> None:
        self.state = ServerState(service, config, authenticator, pubsub, TABLE, REDIS_VERSION)
        self.tls = tls  # the listening context (tls.py): the port speaks TLS only
        self.identify = identify  # a TLS client's certificate -> its principal
        self.audit = audit  # with an audit log, commands run one by one (no batches)
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._waiting: dict[asyncio.Future[Any], list[Connection]] = {}

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), host, port,
                                                backlog=2048, reuse_address=True,
                                                ssl=self.tls)
        port = cast(Any, self._server).sockets[0].getsockname()[1]  # (a list on uvloop)
        self.state.port = port
        return port

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
                log.exception("RESP connection %d failed to flush its replies", conn.client.id)

    async def run(self) -> None:
        """Once a second, until cancelled: close clients idle past ``timeout`` (as
        Redis's ``timeout`` setting does; subscribers are never idle)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            timeout_s = self.state.idle_timeout_s
            if not timeout_s:
                continue
            for client in list(self.state.clients):
                if not (client.subscriptions or client.patterns or client.blocked) and \
                        now - client.last_active > timeout_s:
                    client.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.state.clients):
            client.close()
        if self._server is not None:
            await self._server.wait_closed()


class Connection(asyncio.Protocol):
    """One client's socket: bytes in through the reader, commands to ``dispatch`` with
    the connection's ``Client``, replies out in request order."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        state = server.state
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.client = client = Client(state, server.next_id(), self._write, self.close)
        self.reader = RequestReader(state.max_multibulk_len, state.max_bulk_bytes,
                                    state.query_buffer_limit_bytes)
        self.reader.limited = self.client.principal is None  # Redis's unauthenticated limits
        self._queue: InOrder[list[bytes], bytes] = InOrder(
            self._run_in_turn, self._watch, self._failed, lambda: client.close_after_reply)
        self._last_words: bytes | None = None  # written when the queue drains, then close
        self._closed = False

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        client = self.client
        peer = transport.get_extra_info("peername")
        client.addr = f"{peer[0]}:{peer[1]}" if peer else ""
        local = transport.get_extra_info("sockname")
        client.laddr = f"{local[0]}:{local[1]}" if local else ""
        sock = transport.get_extra_info("socket")
        client.fd = sock.fileno() if hasattr(sock, "fileno") else -1
        state = self.state
        state.stats.connections_received += 1
        if len(state.clients) >= state.max_clients:
            state.stats.rejected_connections += 1
            transport.write(p.error_reply("ERR max number of clients reached"))  # type: ignore[attr-defined]
            transport.close()
            self._closed = True
            return
        state.clients.add(client)
        identify = self.server.identify
        if identify is not None and state.authenticator.enabled:
            principal = identify(transport)
            if principal is not None:  # its certificate authenticates it: no AUTH needed
                client.principal = principal
                self.reader.limited = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.state.clients.discard(self.client)
        leave_all(self.client)
        if self.client.blocked is not None:  # nobody to answer: stop waiting
            self.client.service.unblock(self.client.blocked)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        client = self.client
        client.last_active = _monotonic()
        reader = self.reader
        reader.max_query_bytes = self.state.query_buffer_limit_bytes  # (CONFIG SET may change it)
        while True:
            limited = reader.limited  # (then one command per feed: AUTH lifts the limits)
            broken: ProtocolError | None = None
            try:
                commands = reader.feed(data)
            except ProtocolError as exc:  # Redis runs what came before the broken part
                commands, broken = exc.commands, exc
            if commands:
                self._run(commands)
                if limited and client.principal is not None:
                    reader.limited = False
            if broken is not None:
                self._hang_up(None if isinstance(broken, QueryBufferFull)
                              else p.error_reply(f"ERR {broken}"))
                return
            if not (limited and commands) or self._closed:
                return
            data = b""

    def _hang_up(self, last_words: bytes | None) -> None:
        """Close once every reply before it is out, ``last_words`` last."""
        if self._queue:
            self._last_words = last_words or b""
            return
        if last_words:
            self._write(last_words)
        self.close()

    def _run(self, commands: list[list[bytes]]) -> None:
        """Run a batch of commands by the pipelining rule of ``fronts/ordering.py`` and
        write every reply that is ready in one write. Writes go to the log at once, in
        order (one group commit for the batch); a read behind an unfinished write
        waits its turn. Runs of plain SETs or GETs are answered together
        (``pipeline.py``)."""
        queue, client = self._queue, self.client
        out: list[bytes] = []
        audit_log = self.server.audit
        batching = len(commands) > 1 and audit_log is None
        i, count = 0, len(commands)
        while i < count and not client.close_after_reply:
            args = commands[i]
            if queue and queue.must_wait(_is_write(args)):
                queue.wait_turn(args, _is_write(args))
                i += 1
                continue
            batch = batch_run(client, commands, i) if batching else None
            if batch is not None:
                reply, i = batch
            else:
                reply = dispatch(client, args)
                if audit_log is not None:
                    reply = audit(audit_log, client, args, reply)
                i += 1
            if not queue and type(reply) is bytes:
                out.append(reply)  # the common case: nothing before it is waiting
                continue
            queue.add(args, reply, client.writing)
            if isinstance(reply, Deferred):
                self._watch(reply)
        # (What was queued leaves from flush_ready: a queue's head is always a reply
        # still waiting on its future, watched, so nothing in it is ready yet.)
        if out:
            self._write(b"".join(out))
        self._after_replies()

    def _run_in_turn(self, args: list[bytes]) -> Reply:
        reply = dispatch(self.client, args)
        audit_log = self.server.audit
        return reply if audit_log is None else audit(audit_log, self.client, args, reply)

    def _watch(self, reply: Deferred[bytes]) -> None:
        self.server.wake_when_done(reply.future, self)

    @staticmethod
    def _failed(args: list[bytes], exc: BaseException) -> bytes:
        log.error("RESP reply failed: %r", exc)  # (a deferred reply renders its own errors)
        return p.error_reply("ERR internal error")

    def flush_ready(self) -> None:
        """Write the replies that are ready, in order."""
        out = [entry.reply for entry in self._queue.ready()]
        if out:
            self._write(b"".join(out))
        self._after_replies()

    def _after_replies(self) -> None:
        if self._queue:
            return
        if self.client.close_after_reply:
            self.close()
        elif self._last_words is not None:
            self._hang_up(self._last_words)

    # --- output -----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()
