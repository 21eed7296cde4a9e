"""The command table and the one place a command is checked and run.

``TABLE`` is the families' rows put together. ``dispatch`` looks a command up and
asks ``refusal`` whether it may run here - authentication, arity, the subscribe-mode
rule, the principal's role and key permissions, in Redis's order and words - before
its handler runs; the pipelined runs of ``pipeline.py`` ask the same question.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from raftkv.deferred import Deferred
from raftkv.errors import RaftKVError
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.commands import (
    blocking,
    connection,
    keys,
    pubsub,
    server,
    strings,
    transactions,
    typed,
)
from raftkv.fronts.resp.spec import NOPERM, CommandError, Reply, Spec, error_text
from raftkv.service.audit import DENIED, FAILED, OK, AuditLog
from raftkv.service.auth import Role

log = logging.getLogger("raftkv.resp")

TABLE: Final[dict[bytes, Spec]] = {
    row.name.encode(): row
    for family in (connection, server, strings, keys, pubsub, transactions, typed, blocking)
    for row in family.COMMANDS
}


def unknown_command(args: list[bytes]) -> str:
    rest = "".join(f"'{a[:128].decode(errors='replace')}' " for a in args[1:])
    return (f"ERR unknown command '{args[0][:128].decode(errors='replace')}', with args "
            f"beginning with: {rest}")


# What runs at once inside MULTI instead of being queued (Redis's list).
NOT_QUEUED: Final = frozenset({"multi", "exec", "discard", "quit", "reset", "watch", "unwatch"})
_perf_counter_ns: Final = time.perf_counter_ns  # (compiled: a C static, not a module lookup per call)


def dispatch(client: Client, args: list[bytes]) -> Reply:
    """Check the command (``refusal``), then run its handler, counting both - or, inside
    MULTI, queue it (``commands/transactions.py``)."""
    row = TABLE.get(args[0].lower())
    if row is None:
        if client.transaction is not None:
            client.transaction.failed = True
        return p.error_reply(unknown_command(args))
    client.state.stats.commands += 1
    refused = refusal(client, row, args)
    if refused is not None:
        row.stats.rejected += 1
        if client.transaction is not None and row.name not in NOT_QUEUED:
            client.transaction.failed = True
        return p.error_reply(refused)
    client.last_command = row.name
    client.writing = row.writes
    if client.transaction is not None and row.name not in NOT_QUEUED:
        return _queue(client, row, args)
    stats = row.stats
    started = _perf_counter_ns()
    try:
        reply = row.handler(client, args)
    except CommandError as error:  # (one name per type: mypyc types the name)
        stats.failed += 1
        reply = p.error_reply(str(error))
    except RaftKVError as exc:
        stats.failed += 1
        reply = p.error_reply(error_text(exc))
    except Exception:  # a bug: the client still gets its reply, in order
        log.exception("RESP command %r failed", row.name)
        stats.failed += 1
        reply = p.error_reply("ERR internal error")
    stats.calls += 1
    stats.ns += _perf_counter_ns() - started
    return reply


def _queue(client: Client, row: Spec, args: list[bytes]) -> Reply:
    """Run a command inside MULTI against the recording service: its reply waits for
    EXEC (an error it raises now is its reply there, as Redis reports it)."""
    queued = client.transaction
    assert queued is not None
    service = client.service
    service.recording = queued.recording
    try:
        reply = row.handler(client, args)
    except CommandError as error:  # (one name per type: mypyc types the name)
        reply = p.error_reply(str(error))
    except RaftKVError as exc:
        reply = p.error_reply(error_text(exc))
    finally:
        service.recording = None
    queued.replies.append(reply)
    client.writing = False
    return p.QUEUED


_DENIED: Final = (b"-NOAUTH", b"-NOPERM", b"-WRONGPASS")


def audit(log: AuditLog, client: Client, args: list[bytes], reply: Reply) -> Reply:
    """Write an audit line for a write, an admin command or a refusal once its reply is
    known (a command inside MULTI: when queued; EXEC has its own line)."""
    row = TABLE.get(args[0].lower())
    if row is None:
        return reply
    audited = "write" in row.flags or "admin" in row.flags or row.name == "exec"
    if isinstance(reply, Deferred):
        return reply.then(lambda done: _audit_line(log, client, row, args, done)) \
            if audited else reply
    if audited or reply.startswith(_DENIED):
        _audit_line(log, client, row, args, reply)
    return reply


def _audit_line(log: AuditLog, client: Client, row: Spec, args: list[bytes],
                reply: bytes) -> bytes:
    if reply[:1] == b"-":
        word = reply[1:].split(b" ", 1)[0].decode(errors="replace")
        outcome, status = (DENIED if reply.startswith(_DENIED) else FAILED), word
    else:
        outcome, status = OK, "QUEUED" if reply == p.QUEUED else "OK"
    principal = client.principal
    keys = row.keys(args) if row.name not in ("auth", "hello") else []
    log.record("resp", f"client-{client.id}", principal.name if principal is not None else "",
               client.addr.rsplit(":", 1)[0], row.name.upper(),
               [key.decode(errors="backslashreplace") for key in keys], outcome, status)
    return reply


def refusal(client: Client, row: Spec, args: list[bytes]) -> str | None:
    """Why the command may not run here, as Redis says it; None when it may."""
    principal = client.principal
    if principal is None and "noauth" not in row.flags:
        return "NOAUTH Authentication required."
    arity = row.arity
    if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
        return f"ERR wrong number of arguments for '{row.name}' command"
    if (client.subscriptions or client.patterns) and (
            "pubsub" not in row.flags or row.name == "publish"):
        return (f"ERR Can't execute '{row.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                f"PING / QUIT / RESET are allowed in this context")
    if principal is not None and not principal.unrestricted:
        if "admin" in row.flags and principal.role < Role.ADMIN:
            return f"NOPERM this user has no permissions to run the '{row.name}' command"
        write = "write" in row.flags
        if write and principal.role < Role.WRITE:
            return NOPERM
        for key in row.keys(args):
            if not (principal.may_write(key) if write else principal.may_read(key)):
                return NOPERM
    return None
