"""The Lua that runs EVAL's scripts: Lua 5.1 (lupa), sandboxed and deterministic
(DATA-MODEL.md section 4).

A script sees Redis's globals and nothing else: the base functions that cannot reach
outside (no ``loadstring``, ``getfenv``, ``os``, ``io``, ``require``, ``debug``), the
``string``, ``table`` and ``math`` libraries, ``bit``, ``cjson``, ``cmsgpack``
(``libraries.py``), ``redis`` and its ``KEYS`` and ``ARGV``. Every global table is
read-only, and a script cannot create globals, so nothing one script does survives
into the next: a replica restored from a snapshot runs the next script exactly as
one that ran every script before it.

Determinism: ``math.random`` draws from the entry's own stream (the caller's
``random``), time is the entry's, and the limit on a script is an **instruction
budget**, not a clock: a Lua count hook stops it after ``MAX_INSTRUCTIONS`` VM
instructions, on every replica at the same instruction. Once over budget every
further instruction raises, so neither ``pcall`` nor ``redis.pcall`` can swallow it.

Replies cross as Redis converts them (its scripting docs): a Redis integer is a Lua
number, a bulk string a string, a nil (or nil array) ``false``, an array a table, a
status ``{ok=...}`` and an error ``{err=...}``; back, a number is truncated to an
integer, ``true`` is 1, ``false`` and nil are a nil, a table with ``ok`` or ``err`` is
a status or an error, any other table an array up to its first nil.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from typing import Any, Final, Protocol

from lupa import lua51

from raftkv.core.scripts import libraries
from raftkv.core.scripts.libraries import NULL, LibraryError, Table, lua_number
from raftkv.core.typed.args import double_text
from raftkv.core.typed.replies import ErrorReply, KeyedMap, NilArray, Reply, Status

log = logging.getLogger(__name__)

# the same on every replica; ~0.1 s of a tight loop: a script stops well before the
# replicas it stalls miss a heartbeat (Redis's 5 s lua-time-limit would cost a leader)
MAX_INSTRUCTIONS: Final = 50_000_000
MAX_MEMORY_BYTES: Final = 512 << 20
OVER_BUDGET: Final = (b"ERR Script exceeded its budget of %d Lua instructions (a "
                      b"deterministic limit, the same on every replica)" % MAX_INSTRUCTIONS)
NOT_ARGUMENT: Final = b"ERR Lua redis lib command arguments must be strings or integers"
NO_ARGUMENTS: Final = b"ERR Please specify at least one argument for this redis lib call"
MAX_TABLE_DEPTH: Final = 100

# Runs once per runtime; returns the functions Python calls.
_BOOTSTRAP: Final = r"""
local py = ...
local debug_sethook, debug_getinfo = debug.sethook, debug.getinfo
local setfenv, loadstring, xpcall, error, type, tostring, select = setfenv, loadstring, xpcall, error, type, tostring, select
local rawget, rawset, setmetatable, getmetatable, next, pairs = rawget, rawset, setmetatable, getmetatable, next, pairs
local floor, ceil = math.floor, math.ceil
local py_call, py_budget, py_error_text = py.call, py.budget, py.error_text

local real_of = setmetatable({}, {__mode = 'k'})  -- read-only proxy -> the table it shows
local function readonly_error() error("Attempt to modify a readonly table", 2) end
local function protect(real)
  local proxy = setmetatable({}, {__index = real, __newindex = readonly_error, __metatable = false})
  real_of[proxy] = real
  return proxy
end
local function copy(t, into) into = into or {}; for k, v in pairs(t) do into[k] = v end; return into end

local NULL = protect({})  -- cjson.null
py.set_null(NULL)

local redis = {
  call = py_call,  -- (Python callables: C functions to Lua, so an error keeps the line)
  pcall = py.pcall,
  error_reply = function(text) return {err = text} end,
  status_reply = function(text) return {ok = text} end,
  sha1hex = py.sha1hex,
  log = py.log,
  setresp = py.setresp,
  set_repl = function() end,
  replicate_commands = function() return true end,
  breakpoint = function() return false end,
  debug = function() end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
local math_ = copy(math)
math_.random = py.random
math_.randomseed = py.randomseed
local bit = {}
for name, fn in pairs(py.bit) do bit[name] = fn end
local cjson = {encode = py.json_encode, decode = py.json_decode, null = NULL,
               encode_keep_buffer = function() end, decode_invalid_numbers = function() end,
               encode_invalid_numbers = function() end, encode_max_depth = function() end,
               decode_max_depth = function() end}
local cmsgpack = {pack = py.msgpack_pack, unpack = py.msgpack_unpack}
getmetatable('').__index = protect(string)  -- ("x"):rep(2) reads the protected copy
getmetatable('').__metatable = false

local function caught(ok, ...)  -- pcall's results, a Python error as its text
  if not ok and type((...)) == 'userdata' then return false, (py_error_text((...))) end
  return ok, ...
end
local base = {
  assert = assert, error = error, ipairs = ipairs, next = next,
  pcall = function(...) return caught(pcall(...)) end,
  rawequal = rawequal, rawget = rawget, select = select, tonumber = tonumber,
  tostring = tostring, type = type, unpack = unpack, xpcall = xpcall, _VERSION = _VERSION,
  setmetatable = setmetatable, getmetatable = getmetatable, gcinfo = function() return 0 end,
  pairs = function(t) return next, real_of[t] or t, nil end,
  rawset = function(t, k, v)
    if real_of[t] then error("Attempt to modify a readonly table", 2) end
    return rawset(t, k, v)
  end,
  string = protect(copy(string)), table = protect(copy(table)), math = protect(math_),
  bit = protect(bit), cjson = protect(cjson), cmsgpack = protect(cmsgpack),
  redis = protect(redis),
}
local env_mt = {
  __index = function(_, name)
    local value = base[name]
    if value == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
    end
    return value
  end,
  __newindex = readonly_error,
  __metatable = false,
}

local function hook()
  py_budget()
  debug_sethook(hook, '', 1)  -- from now on every instruction fails
  error({err = 'over budget'}, 0)
end

local function handler(err)
  local line
  for level = 2, 50 do  -- the script's line that failed, under whatever raised
    local info = debug_getinfo(level, 'Sl')
    if not info then break end
    if info.source == '@user_script' then line = info.currentline break end
  end
  local text
  if type(err) == 'userdata' then  -- redis.call's or a library's (Python exceptions)
    local kind
    text, kind = py_error_text(err)
    if kind == 'library' then
      text = line and ('ERR user_script:' .. line .. ': ' .. text) or ('ERR ' .. text)
    end
  elseif type(err) == 'table' then
    text = rawget(err, 'err')
    if type(text) ~= 'string' then text = 'ERR unknown error' end
  elseif type(err) == 'string' or type(err) == 'number' or err == nil or type(err) == 'boolean' then
    text = 'ERR ' .. tostring(err)
  else  -- (not tostring: an address would differ from replica to replica)
    text = 'ERR an error of type ' .. type(err)
  end
  return {text, line}
end

-- a reply, as Python reads it: strings and integers as they are, false for a nil,
-- {'+', text}, {'-', text}, {'*', items...}
local function to_reply(v, depth)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then if v >= 0 then return floor(v) end return ceil(v) end
  if t == 'boolean' then if v then return 1 end return false end
  if t ~= 'table' then return false end
  local e = rawget(v, 'err')
  if type(e) == 'string' then return {'-', e} end
  local s = rawget(v, 'ok')
  if type(s) == 'string' then return {'+', s} end
  if depth > 100 then error({err = 'ERR reached lua stack limit'}, 0) end
  local out, i = {'*'}, 1
  while true do
    local item = rawget(v, i)
    if item == nil then break end
    out[i + 1] = to_reply(item, depth + 1)
    i = i + 1
  end
  return out
end

local function compile(body)
  local fn, err = loadstring(body, '@user_script')
  if fn == nil then return false, err end
  return true, fn
end

local running  -- the script xpcall runs
local function body() return to_reply(running(), 0) end
local function run(fn, budget, nkeys, ...)  -- the keys, then the arguments
  local keys, argv = {...}, {}
  for i = #keys, nkeys + 1, -1 do argv[i - nkeys] = keys[i]; keys[i] = nil end
  setfenv(fn, setmetatable({KEYS = keys, ARGV = argv}, env_mt))
  running = fn
  debug_sethook(hook, '', budget)
  local ok, reply = xpcall(body, handler)
  debug_sethook()
  return ok, reply
end

return compile, run, debug_sethook
"""


class ScriptError(Exception):
    """A script that failed: ``text`` is the error reply, with Redis's " script: SHA,
    on @user_script:LINE." when the failing line is known."""

    def __init__(self, text: bytes) -> None:
        super().__init__(text)
        self.text = text


Call = Callable[[list[bytes]], Reply]  # runs a command line; raises ScriptError for an error


class Random(Protocol):
    """The entry's random stream (``Ctx``)."""

    def randrange(self, n: int) -> int: ...

    def reseed(self, seed: int) -> None: ...


class Engine:
    """One Lua runtime and the functions compiled in it, by SHA1 (a cache of the
    replicated script bodies: rebuilt from them at will)."""

    def __init__(self) -> None:
        self._lua = lua51.LuaRuntime(encoding=None, register_eval=False,
                                     register_builtins=False, unpack_returned_tuples=True,
                                     max_memory=MAX_MEMORY_BYTES)
        self._compiled: dict[bytes, Any] = {}
        self._call: Call | None = None  # the running script's
        self._random: Random | None = None
        self._over_budget = False
        self._null: Any = None
        lua = self._lua
        py = lua.table_from({
            b"call": self._redis_call, b"pcall": self._redis_pcall,
            b"error_text": _error_text, b"budget": self._budget_hit, b"set_null": self._set_null,
            b"log": _guarded(_log),
            b"sha1hex": _guarded(lambda body: sha1hex(body)),
            b"setresp": _guarded(_setresp), b"random": _guarded(self._math_random),
            b"randomseed": _guarded(self._math_randomseed),
            b"bit": lua.table_from({name.encode(): _guarded(fn)
                                    for name, fn in libraries.BIT.items()}),
            b"json_encode": _guarded(lambda v: libraries.json_encode(self._from_lua(v))),
            b"json_decode": _guarded(lambda raw: self._data_to_lua(
                libraries.json_decode(_text(raw)))),
            b"msgpack_pack": _guarded(lambda *vs: libraries.msgpack_pack(
                *(self._from_lua(v) for v in vs))),
            b"msgpack_unpack": _guarded(self._msgpack_unpack),
        })
        self._compile_fn, self._run_fn, self._sethook = lua.execute(_BOOTSTRAP, py)
        self._same = lua.eval("rawequal")

    def compile(self, sha: bytes, body: bytes) -> None:
        """Compile ``body`` (once per SHA); ScriptError with Redis's text if it does not."""
        if sha in self._compiled:
            return
        ok, fn = self._compile_fn(body)
        if not ok:
            raise ScriptError(b"ERR Error compiling script (new function): %s" % fn)
        self._compiled[sha] = fn

    def forget(self) -> None:
        """Drop every compiled function (SCRIPT FLUSH)."""
        self._compiled.clear()

    def run(self, sha: bytes, keys: list[bytes], argv: list[bytes], call: Call,
            random: Random) -> Reply:
        """Run the script compiled under ``sha`` (``compile`` it first); its reply, or
        ScriptError. ``call`` runs each ``redis.call``; ``math.random`` draws from
        ``random``."""
        self._call, self._random, self._over_budget = call, random, False
        try:
            ok, reply = self._run_fn(self._compiled[sha], MAX_INSTRUCTIONS, len(keys), *keys,
                                     *argv)
        except lua51.LuaError:
            if self._over_budget:
                raise ScriptError(OVER_BUDGET) from None
            raise
        except lua51.LuaMemoryError:
            raise ScriptError(b"ERR Script used more than its %d MiB of memory"
                              % (MAX_MEMORY_BYTES >> 20)) from None
        finally:
            self._sethook()  # (a C function: no instruction runs before the hook is off)
            self._call = self._random = None
        if self._over_budget:
            raise ScriptError(OVER_BUDGET)
        if not ok:
            text = reply[1]
            line = reply[2]
            if line is not None:
                text += b" script: %s, on @user_script:%d." % (sha, line)
            raise ScriptError(text)
        return _reply_of(reply)

    # --- called from Lua -----------------------------------------------------------

    def _redis_call(self, *args: Any) -> Any:
        """redis.call: the reply in Lua, or raises CallError (the script's error, which
        ``pcall`` in the script catches, with its text in ``.err``)."""
        return self._to_lua(self._command(args))

    def _redis_pcall(self, *args: Any) -> Any:
        """redis.pcall: the reply in Lua, an error as ``{err=...}``."""
        try:
            return self._to_lua(self._command(args))
        except CallError as refused:
            return self._error(refused.err)

    def _command(self, args: tuple[Any, ...]) -> Reply:
        line = list(args)
        for i, arg in enumerate(line):
            if type(arg) is not bytes:
                if isinstance(arg, int | float) and not isinstance(arg, bool):
                    line[i] = argument_number(float(arg))
                else:
                    raise CallError(NOT_ARGUMENT)
        if not line:
            raise CallError(NO_ARGUMENTS)
        assert self._call is not None
        try:
            return self._call(line)
        except ScriptError as refused:
            raise CallError(refused.text) from None
        except Exception:  # a bug must not take the replica down: the script sees it
            log.exception("redis.call(%r) failed", line[:1])
            raise CallError(b"ERR internal error in redis.call") from None

    def _error(self, text: bytes) -> Any:
        return self._lua.table_from({b"err": text})

    def _budget_hit(self) -> None:
        self._over_budget = True

    def _set_null(self, null: Any) -> None:
        self._null = null

    def _math_random(self, m: Any = None, n: Any = None) -> float | int:
        assert self._random is not None
        if m is None:
            return self._random.randrange(1 << 53) / float(1 << 53)
        low, high = (1, int(m)) if n is None else (int(m), int(n))
        if low > high:
            position = 1 if n is None else 2
            raise LibraryError(f"bad argument #{position} to 'random' (interval is empty)")
        return low + self._random.randrange(high - low + 1)

    def _math_randomseed(self, seed: Any = 0) -> None:
        assert self._random is not None
        self._random.reseed(int(seed))

    def _msgpack_unpack(self, raw: Any) -> tuple[Any, ...]:
        return tuple(self._data_to_lua(v) for v in libraries.msgpack_unpack(_text(raw)))

    # --- values across ----------------------------------------------------------------

    def _to_lua(self, reply: Reply) -> Any:
        """A command's reply as Lua sees it (as in RESP2: a double is a string)."""
        if reply is None or isinstance(reply, NilArray):
            return False
        if isinstance(reply, bytes | int):
            return reply
        if isinstance(reply, float):
            return double_text(reply)
        if isinstance(reply, KeyedMap):  # (as RESP2 has it: a [key, value] per key)
            return self._lua.table_from([
                self._lua.table_from([self._to_lua(reply[i]), self._to_lua(reply[i + 1])])
                for i in range(0, len(reply), 2)])
        if isinstance(reply, list):
            return self._lua.table_from([self._to_lua(item) for item in reply])
        if isinstance(reply, Status):
            return self._lua.table_from({b"ok": reply.text})
        if isinstance(reply, ErrorReply):
            return self._error(reply.text)
        raise TypeError(f"no Lua value for {type(reply).__name__}")

    def _data_to_lua(self, value: Any) -> Any:
        """Decoded JSON or msgpack as Lua sees it (null: cjson.null; nil in msgpack)."""
        if value is NULL:
            return self._null
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
            return float(value)  # (a Lua number is a double)
        if isinstance(value, list):
            return self._lua.table_from([self._data_to_lua(item) for item in value])
        if isinstance(value, dict):
            return self._lua.table_from({k: self._data_to_lua(v) for k, v in value.items()})
        return value

    def _from_lua(self, value: Any, depth: int = 0) -> Any:
        """A Lua value read for a library: tables as ``Table`` (pairs in next order)."""
        if lua51.lua_type(value) == "table":
            if self._same(value, self._null):
                return NULL
            if depth > MAX_TABLE_DEPTH:
                raise LibraryError(f"Cannot serialise, excessive nesting ({depth})")
            return Table([(self._from_lua(k, depth + 1), self._from_lua(v, depth + 1))
                          for k, v in value.items()])
        if lua51.lua_type(value) is not None:
            return _Opaque()
        return value


class CallError(Exception):
    """redis.call's error, raised into the script; ``err`` is its text (a script that
    catches it with pcall reads ``e.err``, as from Redis's error table)."""

    def __init__(self, err: bytes) -> None:
        super().__init__(err.decode("utf-8", "replace"))
        self.err = err


def argument_number(x: float) -> bytes:
    """A number passed to redis.call, as Redis 7 writes it: 17 significant digits
    (where Lua's own tostring writes 14)."""
    if math.isnan(x):
        return b"-nan" if math.copysign(1.0, x) < 0 else b"nan"
    return b"%.17g" % x


def _error_text(error: Any) -> tuple[bytes, bytes]:
    """A Python error raised into a script: its text, and whose it is."""
    if isinstance(error, CallError):
        return error.err, b"call"
    if isinstance(error, LibraryError):
        return str(error).encode(), b"library"
    return b"ERR " + str(error).encode(), b"python"


class _Opaque:
    """A function or other Lua value a library cannot serialise."""


_INT64_MIN: Final = -(2**63)


def _reply_of(value: Any) -> Reply:
    if value is False or value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float):  # (past 64 bits, NaN, inf: what C's cast gives)
        return int(value) if isinstance(value, int) and -(2**63) <= value < 2**63 \
            else _INT64_MIN
    tag = value[1]
    if tag == b"+":
        return Status(value[2])
    if tag == b"-":
        return ErrorReply(value[2])
    return [_reply_of(value[i]) for i in range(2, len(value) + 1)]


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A library function as Lua calls it: a bad argument becomes the script's error."""
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except (TypeError, ValueError, OverflowError) as bad:
            raise LibraryError(f"bad argument ({bad})") from None
    return call


def _text(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return lua_number(float(raw))
    raise LibraryError("bad argument #1 (string expected)")


_LOG_LEVELS: Final = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING}


def _log(level: Any, *parts: Any) -> None:
    """redis.log(level, message...): a line in the node's log (on every replica)."""
    if level not in _LOG_LEVELS:
        raise LibraryError("Invalid debug level.")
    log.log(_LOG_LEVELS[level], "script: %s",
            " ".join(_text(part).decode("utf-8", "replace") for part in parts))


def _setresp(version: Any) -> None:
    if version != 2:
        raise LibraryError("raftkv scripts speak RESP2 only: redis.setresp(2)")


def sha1hex(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()
