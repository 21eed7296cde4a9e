"""The hash, list, set and sorted-set families, and scripts: one handler for all.

Each command is a row of ``core/typed`` (its arity, flags and keys are said there,
once); the handler sends the command line to the service - a write through the log,
a read at the connection's consistency - and renders the reply the op gave, in the
connection's protocol: RESP2 or RESP3 (maps, sets, doubles).
"""

from __future__ import annotations

import functools
from typing import Any, Final

from raftkv.core.commands import Result, TypedResult
from raftkv.core.typed import COMMANDS as TYPED_COMMANDS
from raftkv.core.typed.args import double_text
from raftkv.core.typed.replies import (
    ErrorReply,
    KeyedMap,
    Map,
    Members,
    NilArray,
    Pairs,
    Status,
)
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp import writer
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.spec import Reply, Spec, later, spec

_write_array: Final = writer.array  # (Final: a C static, not two lookups per reply)


def typed(client: Client, args: list[bytes]) -> Reply:
    args[0] = args[0].lower()  # (the service takes the name so; the line is ours)
    enc = client.enc
    return later(client.service.typed(args, client.consistency),
                 _RESP2_REPLY if enc is p.RESP2 else functools.partial(reply_of, enc))


def reply_of(enc: p.Encoder, result: Result) -> bytes:
    """A typed command's reply: its op's reply, or the error it ended in."""
    assert isinstance(result, TypedResult)
    if not result.ok:
        text = result.reply
        assert isinstance(text, bytes)
        return p.error_reply(text.decode("utf-8", "replace"))
    return encode(result.reply, enc)


_RESP2_REPLY: Final = functools.partial(reply_of, p.RESP2)  # (most connections')


def encode(reply: Any, enc: p.Encoder) -> bytes:
    """A typed op's reply (``core/typed/replies.py``) in RESP2 or RESP3."""
    if reply is None:
        return enc.NIL
    if isinstance(reply, bytes):
        return p.bulk(reply)
    if isinstance(reply, int):
        return p.integer(reply)
    if isinstance(reply, float):
        if enc.version == 3:
            return b",%s\r\n" % double_text(reply)
        return p.bulk(double_text(reply))
    if isinstance(reply, Status):
        return b"+%s\r\n" % reply.text
    if isinstance(reply, NilArray):
        return enc.NIL_ARRAY
    if isinstance(reply, ErrorReply):
        return b"-%s\r\n" % reply.text
    if isinstance(reply, KeyedMap) and enc.version != 3:
        return p.raw_array([p.raw_array([encode(reply[i], enc), encode(reply[i + 1], enc)])
                            for i in range(0, len(reply), 2)])
    if isinstance(reply, list):
        if enc.version == 3:
            if isinstance(reply, Map | KeyedMap):
                return b"%%%d\r\n%s" % (len(reply) // 2,
                                        b"".join(encode(item, enc) for item in reply))
            if isinstance(reply, Pairs):
                pairs = [p.raw_array([encode(reply[i], enc), encode(reply[i + 1], enc)])
                         for i in range(0, len(reply), 2)]
                return p.raw_array(pairs)
            if isinstance(reply, Members):
                return b"~%d\r\n%s" % (len(reply), b"".join(encode(item, enc) for item in reply))
        flat = _write_array(reply, enc.NIL)  # (bulk strings and nils, as most are)
        if flat is not None:
            return flat
        return p.raw_array([encode(item, enc) for item in reply])
    raise TypeError(f"not a reply: {type(reply).__name__}")


def _row(name: str) -> Spec:
    typed_spec = TYPED_COMMANDS[name]
    return spec(name, typed_spec.arity, typed_spec.flags, typed, typed_spec.first_key,
                typed_spec.last_key, typed_spec.key_step,
                orders_reads=typed_spec.writes,  # (EVAL may write: a write to the front)
                find_keys=typed_spec.keys if typed_spec.find_keys is not None else None)


COMMANDS: Final = [_row(name) for name in TYPED_COMMANDS]
