"""The vocabulary of RESP command handlers: a command's ``Spec`` (arity, flags, key
positions, handler, counters), the reply a handler returns (bytes now, or a
``Deferred`` reply that waits on one future, made by ``later``), ``CommandError`` for a Redis error reply, and the one
table that maps raftkv's errors to Redis's error strings (``error_text``).

Arity follows Redis: ``n`` means exactly n arguments including the name, ``-n`` at
least n. Flags are Redis's words (``readonly``, ``write``, ``fast``, ``admin``,
``pubsub``, ``noauth``). A handler makes one service call and encodes the reply; the
checks every command shares run before it, in ``dispatch``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from raftkv import errors
from raftkv.core.commands import Outcome, Result
from raftkv.core.numbers import parse_int64
from raftkv.core.typed.context import WRONGTYPE as WRONG_KIND
from raftkv.core.typed.context import OpError
from raftkv.deferred import Deferred
from raftkv.errors import RaftKVError
from raftkv.fronts.resp import protocol as p

if TYPE_CHECKING:
    from raftkv.fronts.resp.client import Client

log = logging.getLogger("raftkv.resp")

WRONG_INT = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
WRONGTYPE = WRONG_KIND.decode()  # (the core's text: typed ops answer with it too)
NOPERM = "NOPERM this user has no permissions to access one of the keys used as arguments"


class CommandError(Exception):
    """A Redis error reply (the message starts with its code)."""

    @classmethod
    def of(cls, refused: OpError) -> CommandError:
        """A core op's refusal (Redis's text, in bytes that may echo the client's)."""
        return cls(refused.text.decode("utf-8", "replace"))


Reply: TypeAlias = "bytes | Deferred[bytes]"
Handler: TypeAlias = "Callable[[Client, list[bytes]], Reply]"


def later(result: Any, render: Callable[[Any], bytes], times: int = 1) -> Reply:
    """``render(result)`` now for a value; for a future or a Deferred, a Deferred reply
    whose failure becomes Redis's error reply (``times`` of them: a batch of commands
    answered together fails as a whole), so the reply stream stays in order."""
    if isinstance(result, asyncio.Future):
        return Deferred(result, _Finish(None, render, times))
    if isinstance(result, Deferred):
        return Deferred(result.future, _Finish(result.finish, render, times))
    return render(result)


class _Finish:
    """A deferred reply's ``finish``: the value (the future's result, or what the
    service's own finish makes of it), rendered, or the Redis error it ended in. One
    object per reply: a SET at ``-P 1`` makes one of these and one Deferred."""

    __slots__ = ("render", "source", "times")

    def __init__(self, source: Callable[[asyncio.Future[Any]], Any] | None,
                 render: Callable[[Any], bytes], times: int) -> None:
        self.source = source
        self.render = render
        self.times = times

    def __call__(self, done: asyncio.Future[Any]) -> bytes:
        times = self.times
        try:  # (both raise the future's exception)
            value = done.result() if self.source is None else self.source(done)
            if isinstance(value, Result) and value.outcome is Outcome.WRONG_TYPE:
                return p.error_reply(WRONGTYPE) * times  # (every write on a string)
            return self.render(value)
        except asyncio.CancelledError:
            return p.error_reply("ERR command cancelled") * times
        except CommandError as refused:  # (one name per type: mypyc types the name)
            return p.error_reply(str(refused)) * times
        except RaftKVError as err:
            return p.error_reply(error_text(err)) * times
        except Exception:  # the reply must still go out, in order
            log.exception("RESP reply failed")
            return p.error_reply("ERR internal error") * times


class CommandStats:
    """INFO commandstats for one command: calls, time in the handler, and calls refused
    before (``rejected``) or by (``failed``) the handler, as Redis 7 counts them."""

    __slots__ = ("calls", "failed", "ns", "rejected")

    def __init__(self) -> None:
        self.calls = 0
        self.ns = 0
        self.rejected = 0
        self.failed = 0

    def reset(self) -> None:
        self.calls = self.ns = self.rejected = self.failed = 0


@dataclass(frozen=True, slots=True)
class Spec:
    """One command: its name, arity, flags, handler and key positions (Redis's key
    spec: ``first_key`` 0 means the command takes no keys, ``last_key`` -1 through the
    last argument)."""

    name: str
    arity: int
    flags: frozenset[str]
    handler: Handler
    first_key: int = 0
    last_key: int = 0
    key_step: int = 1
    stats: CommandStats = field(default_factory=CommandStats)
    orders_reads: bool = False  # a read pipelined after it waits for it (EXEC)
    # for keys that follow a count (LMPOP, ZUNIONSTORE...): the command line -> its keys
    find_keys: Callable[[list[bytes]], list[bytes]] | None = None
    writes: bool = field(init=False)  # for pipelining: a write, or EXEC; read per command

    def __post_init__(self) -> None:
        object.__setattr__(self, "writes", "write" in self.flags or self.orders_reads)

    def keys(self, args: list[bytes]) -> list[bytes]:
        if self.find_keys is not None:
            return self.find_keys(args)
        first = self.first_key
        if not first:
            return []
        if first == self.last_key:  # one key (GET, LPUSH, HSET...): a slice without a step
            return args[first : first + 1]
        last = len(args) - 1 if self.last_key < 0 else self.last_key
        return args[first : last + 1 : self.key_step]


def spec(name: str, arity: int, flags: str, handler: Handler, first_key: int = 0,
         last_key: int = 0, key_step: int = 1, orders_reads: bool = False,
         find_keys: Callable[[list[bytes]], list[bytes]] | None = None) -> Spec:
    """A table row, flags written as Redis writes them (``"readonly fast"``)."""
    return Spec(name, arity, frozenset(flags.split()), handler, first_key, last_key, key_step,
                orders_reads=orders_reads, find_keys=find_keys)


def to_int(raw: bytes) -> int:
    value = parse_int64(raw)
    if value is None:
        raise CommandError(WRONG_INT)
    return value


def error_text(exc: RaftKVError) -> str:
    """raftkv errors as RESP error strings (the front's one mapping table)."""
    if isinstance(exc, errors.OutOfMemory):
        return "OOM command not allowed when used memory > 'maxmemory'."
    if isinstance(exc, errors.TooLarge):
        return "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    if isinstance(exc, errors.NotLeader):
        return f"READONLY You can't write against a read only replica. (leader: " \
               f"{exc.leader_id or 'unknown'})"
    if isinstance(exc, errors.Unavailable):
        return f"TRYAGAIN {exc}"  # (not applied: a retry is safe)
    if isinstance(exc, errors.CommitTimeout):
        return "TIMEOUT the write's outcome is unknown (commit timed out)"
    if isinstance(exc, errors.WrongType):
        return WRONGTYPE
    if isinstance(exc, errors.Unblocked):
        return "UNBLOCKED client unblocked via CLIENT UNBLOCK"
    if isinstance(exc, errors.InvalidArgument):
        return f"ERR {exc}"
    if isinstance(exc, errors.StorageError):
        return f"MISCONF {exc}"
    return f"ERR {exc}"
