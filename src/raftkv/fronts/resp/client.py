"""What a command handler may touch: its ``Client`` (one connection's session - who
it is, its protocol version, its subscriptions) and the ``ServerState`` every client
of this node shares. Neither knows about sockets, parsing or the order of replies:
``server.py`` owns those and hands each handler its Client.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raftkv.config import Config
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.pubsub import KeyspaceEvents, PubSub
from raftkv.service.auth import OPEN, Authenticator, Principal
from raftkv.service.blocking import Waiting
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService
from raftkv.service.transaction import Recording

if TYPE_CHECKING:
    from raftkv.fronts.resp.spec import Spec


@dataclass
class RespStats:
    commands: int = 0
    connections_received: int = 0
    rejected_connections: int = 0
    keyspace_hits: int = 0
    keyspace_misses: int = 0


class ScanCursors:
    """SCAN cursors are integers (clients parse them as such) naming the last key
    returned; the key itself lives here, oldest cursors forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._keys: OrderedDict[int, bytes] = OrderedDict()
        self._capacity = capacity

    def issue(self, last_key: bytes) -> int:
        cursor = int.from_bytes(os.urandom(6), "big") | 1
        self._keys[cursor] = last_key
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return cursor

    def resolve(self, cursor: int) -> bytes | None:
        return self._keys.get(cursor)


class ServerState:
    """This node's RESP front as its commands see it: the service, the command table,
    the clients, pub/sub, counters, and the settings CONFIG SET may change."""

    def __init__(self, service: KVService, config: Config, authenticator: Authenticator,
                 pubsub: PubSub, table: dict[bytes, Spec], redis_version: bytes) -> None:
        self.service: KVService = service
        self.config: Config = config
        self.authenticator = authenticator
        self.pubsub = pubsub
        self.table = table
        self.redis_version = redis_version
        self.events: KeyspaceEvents = KeyspaceEvents(pubsub, service)
        if config.keyspace_notifications:
            self.events.configure("KEA")
        self.cursors = ScanCursors()
        self.stats = RespStats()
        self.clients: set[Client] = set()
        self.max_clients: int = config.resp.max_clients
        self.query_buffer_limit_bytes: int = config.resp.query_buffer_limit_bytes
        self.idle_timeout_s: float = config.resp.idle_timeout_s
        self.max_multibulk_len: int = config.resp.max_multibulk_len
        self.max_bulk_bytes: int = config.max_value_bytes  # proto-max-bulk-len
        self.started: float = time.monotonic()
        self.port: int = 0

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: the counters start again from zero."""
        self.stats = RespStats()
        for command in self.table.values():
            command.stats.reset()


class Queued:
    """A client's MULTI: the replies of its queued commands (each waiting on its op in
    ``recording``), and whether a command was refused while queuing (EXECABORT)."""

    def __init__(self) -> None:
        self.recording = Recording()
        self.replies: list[Any] = []  # bytes, or Deferred replies
        self.failed = False


class Client:
    """One connection's session. ``write`` sends bytes to the client at once (pub/sub
    pushes); ``close`` hangs up."""

    def __init__(self, state: ServerState, client_id: int, write: Callable[[bytes], None],
                 close: Callable[[], None]) -> None:
        self.state = state
        self.service: KVService = state.service
        self.id = client_id
        self.name: bytes | None = None
        self.principal: Principal | None = None if state.authenticator.enabled else OPEN
        self.subscriptions: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.consistency = Consistency.LINEARIZABLE
        self.enc = p.RESP2  # HELLO 3 switches to RESP3
        self.close_after_reply = False
        self.created = self.last_active = time.monotonic()
        self.addr = self.laddr = ""
        self.fd = -1
        self.last_command = "NULL"
        self.writing = False  # whether the last command run was a write (pipelining)
        self.transaction: Queued | None = None  # between MULTI and EXEC / DISCARD
        self.watched: dict[bytes, tuple[bytes, int, int]] = {}  # WATCH: key -> what it saw
        self.blocked: Waiting | None = None  # a BLPOP... waiting for something to pop
        self._write = write
        self._close = close

    @property
    def subscription_count(self) -> int:
        return len(self.subscriptions) + len(self.patterns)

    def may_read(self, key: bytes) -> bool:
        return self.principal is not None and self.principal.may_read(key)

    def push(self, data: bytes) -> None:
        """Pub/Sub delivery: at most once, never queued beyond the socket buffer."""
        self._write(data)

    def close(self) -> None:
        self._close()

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
