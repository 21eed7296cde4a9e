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
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from raftkv.config import Config
from raftkv.core.eviction import estimated_memory_bytes
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.commands import (
    REDIS_VERSION,
    TABLE,
    Later,
    ScanCursors,
    batch_run,
    dispatch,
    uptime_s,
)
from raftkv.fronts.resp.pubsub import PubSub
from raftkv.service.auth import OPEN, Authenticator, Principal
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService

log = logging.getLogger("raftkv.resp")
IDLE_TIMEOUT_S = 300.0


@dataclass
class RespStats:
    commands: int = 0
    connections_received: int = 0
    rejected_connections: int = 0
    keyspace_hits: int = 0
    keyspace_misses: int = 0


class RespServer:
    def __init__(self, service: KVService, config: Config, authenticator: Authenticator,
                 pubsub: PubSub, max_clients: int = 10_000) -> None:
        self.service = service
        self.config = config
        self.authenticator = authenticator
        self.pubsub = pubsub
        self.cursors = ScanCursors()
        self.stats = RespStats()
        self.connections: set[Connection] = set()
        self.max_clients = max_clients
        self.max_request_bytes = config.max_value_bytes * 2 + 1024 * 1024
        self.redis_version = REDIS_VERSION
        self.started = time.monotonic()
        self.port = 0
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
            for conn in list(self.connections):
                if not (conn.subscriptions or conn.patterns) and \
                        now - conn.last_active > IDLE_TIMEOUT_S:
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

    def info(self, sections: set[bytes]) -> bytes:
        everything = bool(sections & {b"all", b"everything"})
        default = everything or b"default" in sections
        sm = self.service.state_machine
        keyspace = sm.keyspace
        status = self.service.status()
        blocks: list[tuple[bytes, list[tuple[str, object]]]] = [
            (b"server", [("redis_version", self.redis_version.decode()),
                         ("raftkv_node_id", status.node_id), ("redis_mode", "standalone"),
                         ("process_id", os.getpid()), ("tcp_port", self.port),
                         ("uptime_in_seconds", uptime_s(self.started))]),
            (b"clients", [("connected_clients", len(self.connections)),
                          ("maxclients", self.max_clients),
                          ("pubsub_clients", sum(1 for c in self.connections
                                                 if c.subscriptions or c.patterns))]),
            (b"memory", [("used_memory", estimated_memory_bytes(keyspace)),
                         ("used_memory_rss", _rss_bytes()),
                         ("maxmemory", self.config.eviction.max_memory_bytes),
                         ("maxmemory_policy", str(self.config.eviction.policy))]),
            (b"persistence", [("loading", 0), ("aof_enabled", 1),
                              ("raftkv_fsync", str(self.config.fsync)),
                              ("raftkv_applied_index", sm.applied_index)]),
            (b"stats", [("total_connections_received", self.stats.connections_received),
                        ("total_commands_processed", self.stats.commands),
                        ("rejected_connections", self.stats.rejected_connections),
                        ("expired_keys", sm.expired_total), ("evicted_keys", sm.evicted_total),
                        ("keyspace_hits", self.stats.keyspace_hits),
                        ("keyspace_misses", self.stats.keyspace_misses),
                        ("pubsub_channels", len(self.pubsub.channels)),
                        ("pubsub_patterns", len(self.pubsub.patterns))]),
            (b"replication", [("role", "master" if status.role == "leader" else "slave"),
                              ("raftkv_role", status.role),
                              ("raftkv_leader_id", status.leader_id or ""),
                              ("raftkv_term", status.term),
                              ("raftkv_commit_index", status.commit_index),
                              ("connected_slaves", 0)]),
            (b"keyspace", [("db0", f"keys={len(keyspace)},expires={keyspace.volatile_count},"
                                   f"avg_ttl=0")] if len(keyspace) else []),
        ]
        out = []
        for name, fields in blocks:
            if default or name in sections:
                out.append(b"# " + name.capitalize() + b"\r\n" + b"".join(
                    f"{k}:{v}\r\n".encode() for k, v in fields))
        return b"\r\n".join(out)

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: this front's counters start again from zero."""
        self.stats = RespStats()

    def config_parameters(self) -> dict[bytes, bytes]:
        """What CONFIG GET shows, under Redis's parameter names (redis-benchmark and
        monitoring tools read them). raftkv is configured at start-up only."""
        cfg = self.config
        return {
            b"appendonly": b"yes",  # every write goes through the log
            b"appendfsync": str(cfg.fsync).encode(),  # Redis's three names, too
            b"bind": cfg.host.encode(),
            b"databases": b"1",
            b"maxclients": b"%d" % self.max_clients,
            b"maxmemory": b"%d" % cfg.eviction.max_memory_bytes,
            b"maxmemory-policy": str(cfg.eviction.policy).encode(),
            b"notify-keyspace-events": b"KEA" if cfg.keyspace_notifications else b"",
            b"port": b"%d" % self.port,
            b"proto-max-bulk-len": b"%d" % cfg.max_value_bytes,
            b"save": b"",  # snapshots follow the log's size, not save points
            b"timeout": b"%d" % IDLE_TIMEOUT_S,
        }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class Connection(asyncio.Protocol):
    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.service = server.service
        self.transport: asyncio.Transport | None = None
        self.parser = p.RequestParser(server.max_request_bytes)
        self.id = server.next_id()
        self.name: bytes | None = None
        self.principal: Principal | None = None if server.authenticator.enabled else OPEN
        self.subscriptions: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.consistency = Consistency.LINEARIZABLE
        self.enc = p.RESP2  # HELLO 3 switches to RESP3
        self.close_after_reply = False
        self.last_active = time.monotonic()
        self.addr = ""
        self._pending: deque[list[Any]] = deque()  # [args, reply or None (deferred)]
        self._deferred = 0  # entries in _pending not yet dispatched
        self._closed = False

    @property
    def subscription_count(self) -> int:
        return len(self.subscriptions) + len(self.patterns)

    def principal_may_read(self, key: bytes) -> bool:
        return self.principal is not None and self.principal.may_read(key)

    def describe(self) -> bytes:
        return (f"id={self.id} addr={self.addr} name={(self.name or b'').decode()} db=0 "
                f"sub={len(self.subscriptions)} psub={len(self.patterns)}").encode()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = f"{peer[0]}:{peer[1]}" if peer else ""
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
        try:
            commands = self.parser.feed(data)
        except p.ProtocolError as exc:
            self.flush_ready()
            self._write(p.error_reply(f"ERR {exc}"))
            self.close()
            return
        if not commands:
            return
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
