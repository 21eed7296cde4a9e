"""The transactions family: MULTI, EXEC, DISCARD (WATCH comes with the change history).

Between MULTI and EXEC a client's commands are queued (``dispatch``): each answers
+QUEUED and runs against the service in recording mode, so its reply waits on its
op in the client's ``Recording``. EXEC submits them all as one ``Txn`` - one log
entry, one revision, every replica alike - and answers the array of their replies,
each rendered by its own command. As in Redis: a command refused while queuing
(unknown, wrong arity, not permitted) makes EXEC answer EXECABORT and run nothing;
an error while running (WRONGTYPE, not an integer) is that command's reply alone,
and the others still apply.
"""

from __future__ import annotations

from typing import Any, Final

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
    return p.OK


def exec_(client: Client, args: list[bytes]) -> Reply:
    queued = client.transaction
    if queued is None:
        raise CommandError("ERR EXEC without MULTI")
    client.transaction = None
    if queued.failed:
        raise CommandError(EXECABORT)
    replies = queued.replies
    recording = queued.recording
    if not recording.ops:  # nothing to log (PING, ECHO...): answer now
        return _array(replies)
    future = client.service.execute(recording)

    def render(_: Any) -> bytes:
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
]
