"""The transactions family: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

Between MULTI and EXEC a client's commands are queued (``dispatch``): each answers
+QUEUED and runs against the service in recording mode, so its reply waits on its
op in the client's ``Recording``. EXEC submits them all as one ``Txn`` - one log
entry, one revision, every replica alike - and answers the array of their replies,
each rendered by its own command. As in Redis: a command refused while queuing
(unknown, wrong arity, not permitted) makes EXEC answer EXECABORT and run nothing;
an error while running (WRONGTYPE, not an integer) is that command's reply alone,
and the others still apply. WATCH remembers each key's mod revision and when it was
read; EXEC carries them, and the state machine applies nothing - EXEC answers a null
array - if any of them changed since (written, deleted, expired, evicted, flushed).
"""

from __future__ import annotations

from typing import Any, Final

from raftkv.core.commands import TxnResult
from raftkv.deferred import Deferred
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client, Queued
from raftkv.fronts.resp.spec import CommandError, Reply, later, spec

EXECABORT: Final = "EXECABORT Transaction discarded because of previous errors."


def multi(client: Client, args: list[bytes]) -> Reply:
    if client.transaction is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    client.transaction = Queued()
    return p.OK


def discard(client: Client, args: list[bytes]) -> Reply:
    if client.transaction is None:
        raise CommandError("ERR DISCARD without MULTI")
    client.transaction = None
    client.watched = {}
    return p.OK


def watch(client: Client, args: list[bytes]) -> Reply:
    if client.transaction is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")

    def remember(seen: list[tuple[bytes, int, int]]) -> bytes:
        for entry in seen:
            client.watched.setdefault(entry[0], entry)  # (the first WATCH of a key counts)
        return p.OK
    return later(client.service.watch(args[1:], client.consistency), remember)


def unwatch(client: Client, args: list[bytes]) -> Reply:
    client.watched = {}
    return p.OK


def exec_(client: Client, args: list[bytes]) -> Reply:
    queued = client.transaction
    if queued is None:
        raise CommandError("ERR EXEC without MULTI")
    client.transaction = None
    watched, client.watched = tuple(client.watched.values()), {}
    if queued.failed:
        raise CommandError(EXECABORT)
    replies = queued.replies
    recording = queued.recording
    if not recording.ops and not watched:  # nothing to log (PING, ECHO...): answer now
        return _array(replies)
    future = client.service.execute(recording, watched)

    def render(result: Any) -> bytes:
        if isinstance(result, TxnResult) and not result.succeeded:
            return client.enc.NIL_ARRAY  # a watched key changed: nothing ran
        recording.settle(future)  # (the placeholders first, whichever callback ran)
        return _array(replies)
    return later(future, render)


def _array(replies: list[Any]) -> bytes:
    parts = [reply.result() if isinstance(reply, Deferred) else reply for reply in replies]
    return b"*%d\r\n%s" % (len(parts), b"".join(parts))


COMMANDS: Final = [
    spec("multi", 1, "fast", multi),
    spec("exec", 1, "", exec_, orders_reads=True),
    spec("discard", 1, "fast", discard),
    spec("watch", -2, "fast", watch, 1, -1),
    spec("unwatch", 1, "fast", unwatch),
]
