"""EVAL and its family, and SCRIPT, as ops of the state machine (DATA-MODEL.md
section 4): a script is one log entry, run at apply time on every replica by the Lua
engine (``core/scripts/lua.py``); each ``redis.call`` in it runs one command at that
entry - a hash, list, set or sorted-set op of this package, or a string or key
command of ``strings.py`` - with the same code and errors as outside a script.

As in Redis, a script is atomic (nothing runs between its commands) but not a
transaction: what it changed before an error stays changed. The script bodies are
replicated state (``Machine.scripts``, in snapshots): EVAL and SCRIPT LOAD add to
them, so EVALSHA's entry carries the hash alone and NOSCRIPT is decided by the log.
EVAL_RO and EVALSHA_RO run as reads, outside the log; they (and a script whose
``#!lua flags=no-writes`` shebang says so) may call reads only.
"""

from __future__ import annotations

from typing import Final

import raftkv.core.typed
from raftkv.core.numbers import parse_int64
from raftkv.core.scripts import lua  # (a module: lua.py imports this package's replies)
from raftkv.core.typed.args import NOT_INTEGER
from raftkv.core.typed.context import Ctx, OpError
from raftkv.core.typed.replies import OK, ErrorReply, Reply
from raftkv.core.typed.spec import TypedSpec, row

NOSCRIPT: Final = b"NOSCRIPT No matching script. Please use EVAL."
NOT_ALLOWED: Final = b"ERR This Redis command is not allowed from script"
WRITE_IN_READ_ONLY: Final = b"ERR Write commands are not allowed from read-only scripts."
# what Redis refuses inside a script (the rest of what raftkv knows but a script
# cannot call is, to the script, unknown)
_REFUSED: Final = frozenset(
    b"multi exec discard watch unwatch subscribe psubscribe unsubscribe punsubscribe "
    b"ssubscribe sunsubscribe blpop brpop blmove brpoplpush blmpop bzpopmin bzpopmax bzmpop "
    b"xread xreadgroup auth hello client select quit shutdown save bgsave monitor "
    b"eval evalsha eval_ro evalsha_ro script".split())


def keys_of(args: list[bytes]) -> list[bytes]:
    """EVAL script numkeys key... arg...: the keys."""
    return _split(args)[0]


def _split(args: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    count = parse_int64(args[2])
    if count is None:
        raise OpError(NOT_INTEGER)
    if count < 0:
        raise OpError(b"ERR Number of keys can't be negative")
    if count > len(args) - 3:
        raise OpError(b"ERR Number of keys can't be greater than number of args")
    return args[3 : 3 + count], args[3 + count :]


def eval_(ctx: Ctx, args: list[bytes]) -> Reply:
    return _eval(ctx, args, lua.sha1hex(args[1]), args[1], read_only=False)


def eval_ro(ctx: Ctx, args: list[bytes]) -> Reply:
    return _eval(ctx, args, lua.sha1hex(args[1]), args[1], read_only=True)


def evalsha(ctx: Ctx, args: list[bytes]) -> Reply:
    sha = args[1].lower()
    return _eval(ctx, args, sha, _loaded(ctx, sha), read_only=False)


def evalsha_ro(ctx: Ctx, args: list[bytes]) -> Reply:
    sha = args[1].lower()
    return _eval(ctx, args, sha, _loaded(ctx, sha), read_only=True)


def _loaded(ctx: Ctx, sha: bytes) -> bytes:
    assert ctx.machine is not None
    body = ctx.machine.scripts.get(sha)
    if body is None:
        raise OpError(NOSCRIPT)
    return body


def _shebang_flags(body: bytes) -> list[bytes]:
    if not body.startswith(b"#!"):
        return []
    if b"\n" not in body:
        raise OpError(b"ERR Invalid script shebang")
    line = body.split(b"\n", 1)[0]
    words = line[2:].split()
    if not words or words[0] != b"lua":
        raise OpError(b"ERR Unexpected engine in script shebang: %s" % line)
    flags: list[bytes] = []
    for word in words[1:]:
        if not word.startswith(b"flags="):
            raise OpError(b"ERR Unknown lua shebang option: %s" % word)
        flags += [flag for flag in word[6:].split(b",") if flag]
    for flag in flags:
        if flag not in (b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster",
                        b"allow-cross-slot-keys"):
            raise OpError(b"ERR Unexpected flag in script shebang: %s" % flag)
    return flags


def _code(body: bytes) -> bytes:
    """The Lua of a body: a shebang line becomes an empty one (lines keep numbers)."""
    return b"\n" + body.split(b"\n", 1)[1] if body.startswith(b"#!") else body


def _eval(ctx: Ctx, args: list[bytes], sha: bytes, body: bytes, read_only: bool) -> Reply:
    machine = ctx.machine
    assert machine is not None
    keys, argv = _split(args)
    if body.startswith(b"#!"):
        read_only = read_only or b"no-writes" in _shebang_flags(body)
    read_only = read_only or not ctx.index
    engine = machine.engine()
    try:
        engine.compile(sha, _code(body))
    except lua.ScriptError as refused:
        raise OpError(refused.text) from None
    if ctx.index and args[0] == b"eval":
        machine.scripts[sha] = body  # EVAL loads the script too, as in Redis

    def call(line: list[bytes]) -> Reply:
        return _call(ctx, line, read_only)
    try:
        reply = engine.run(sha, keys, argv, call, ctx)
    except lua.ScriptError as failed:
        raise OpError(failed.text) from None
    if isinstance(reply, ErrorReply):
        raise OpError(reply.text)
    return reply


def _call(ctx: Ctx, line: list[bytes], read_only: bool) -> Reply:
    """One redis.call: the command's reply, or ScriptError with its error."""
    name = line[0].lower()
    found = raftkv.core.typed.CALLABLE.get(name)
    if found is None:
        raise lua.ScriptError(NOT_ALLOWED if name in _REFUSED
                              else b"ERR Unknown Redis command called from script")
    spec, own_context = found
    arity = spec.arity
    if (arity > 0 and len(line) != arity) or len(line) < -arity:
        raise lua.ScriptError(b"ERR Wrong number of args calling Redis command from script")
    if spec.writes and read_only:
        raise lua.ScriptError(WRITE_IN_READ_ONLY)
    line[0] = name
    if not own_context:  # a string or key command: its events go straight to ctx
        try:
            return spec.fn(ctx, line)
        except OpError as refused:
            raise lua.ScriptError(refused.text) from None
    step = ctx.sibling()  # a typed op: its own changes, finished before the next call
    try:
        reply = spec.fn(step, line)
    except OpError as refused:
        raise lua.ScriptError(refused.text) from None
    if step.index:
        step.finish()
    ctx.events += step.events
    return reply


def script(ctx: Ctx, args: list[bytes]) -> Reply:
    """SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP."""
    machine = ctx.machine
    assert machine is not None
    sub = args[1].lower()
    if sub == b"load" and len(args) == 3:
        body = args[2]
        sha = lua.sha1hex(body)
        _shebang_flags(body)
        try:
            machine.engine().compile(sha, _code(body))
        except lua.ScriptError as refused:
            raise OpError(refused.text) from None
        machine.scripts[sha] = body
        return sha
    if sub == b"exists" and len(args) >= 3:
        return [1 if sha.lower() in machine.scripts else 0 for sha in args[2:]]
    if sub == b"flush" and len(args) <= 3:
        if len(args) == 3 and args[2].upper() not in (b"ASYNC", b"SYNC"):
            raise OpError(b"ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        machine.scripts.clear()
        machine.engine().forget()
        return OK
    if sub == b"kill" and len(args) == 2:
        raise OpError(b"NOTBUSY No scripts in execution right now.")
    if sub == b"help" and len(args) == 2:
        return [b"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                b"EXISTS <sha1> [<sha1> ...]", b"    Return information about the existence "
                b"of the scripts in the script cache.",
                b"FLUSH [ASYNC|SYNC]", b"    Flush the Lua scripts cache.",
                b"KILL", b"    Kill the currently executing Lua script.",
                b"LOAD <script>", b"    Load a script into the scripts cache without "
                b"executing it.", b"HELP", b"    Print this help."]
    if sub in (b"load", b"exists", b"flush", b"kill", b"help"):
        raise OpError(b"ERR wrong number of arguments for 'script|%s' command" % sub)
    raise OpError(b"ERR unknown subcommand '%s'. Try SCRIPT HELP." % args[1])


_EVAL_FLAGS: Final = "noscript stale skip_monitor no_mandatory_keys movablekeys"
COMMANDS: Final[list[TypedSpec]] = [
    row("eval", -3, _EVAL_FLAGS + " may_replicate", eval_, find_keys=keys_of),
    row("evalsha", -3, _EVAL_FLAGS + " may_replicate", evalsha, find_keys=keys_of),
    row("eval_ro", -3, _EVAL_FLAGS + " readonly", eval_ro, find_keys=keys_of),
    row("evalsha_ro", -3, _EVAL_FLAGS + " readonly", evalsha_ro, find_keys=keys_of),
    row("script", -2, "noscript may_replicate", script, 0, 0),
]
