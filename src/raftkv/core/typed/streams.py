"""Streams: the X family (Redis's t_stream.c), over ``containers.Stream``.

IDs come from the log entry's time (``ctx.now_ms``), so every replica gives an XADD
the same ID. Consumer groups keep their pending entries and consumers in the stream,
so they are replicated and in snapshots like the entries. Where Redis trims with
``~`` (whole radix-tree nodes, so a stream keeps somewhat more than asked), raftkv
trims exactly: "at least N entries" holds either way.
"""

from __future__ import annotations

from typing import Any, Final

from raftkv.core.containers import Consumer, Group, Kind, Pending, Stream, StreamID
from raftkv.core.numbers import parse_int64
from raftkv.core.typed.args import NOT_INTEGER, SYNTAX, integer
from raftkv.core.typed.context import Ctx, OpError
from raftkv.core.typed.replies import NIL_ARRAY, OK, KeyedMap, Map, Reply
from raftkv.core.typed.spec import TypedSpec, row

T: Final = Kind.STREAM
MAX_PART: Final = 2**64 - 1
MAX_ID: Final = (MAX_PART, MAX_PART)
INVALID_ID: Final = b"ERR Invalid stream ID specified as stream command argument"


def _read(ctx: Ctx, key: bytes) -> Stream | None:
    found = ctx.read(key, T)
    assert found is None or isinstance(found, Stream)
    return found


def _write(ctx: Ctx, key: bytes) -> Stream:
    found = ctx.write(key, T)
    assert isinstance(found, Stream)
    return found


# --- IDs ------------------------------------------------------------------------------

def parse_id(raw: bytes, missing_seq: int = 0) -> StreamID:
    """``ms-seq``, or ``ms`` with ``missing_seq``."""
    ms_text, dash, seq_text = raw.partition(b"-")
    ms = _part(ms_text)
    seq = _part(seq_text) if dash else missing_seq
    return ms, seq


def _part(raw: bytes) -> int:
    if not raw or not raw.isdigit():
        raise OpError(INVALID_ID)
    value = int(raw)
    if value > MAX_PART:
        raise OpError(INVALID_ID)
    return value


def id_text(entry_id: StreamID) -> bytes:
    return b"%d-%d" % entry_id


def _bound(raw: bytes, start: bool) -> StreamID:
    """A range end: ``-``, ``+``, an ID (``ms`` alone spans its sequence) or, with
    ``(``, the ID just after (start) or before (end) it."""
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return MAX_ID
    exclusive = raw.startswith(b"(")
    entry_id = parse_id(raw[1:] if exclusive else raw, 0 if start else MAX_PART)
    if not exclusive:
        return entry_id
    ms, seq = entry_id
    if start:
        if entry_id == MAX_ID:
            raise OpError(b"ERR invalid start ID for the interval")
        return (ms, seq + 1) if seq < MAX_PART else (ms + 1, 0)
    if entry_id == (0, 0):
        raise OpError(b"ERR invalid end ID for the interval")
    return (ms, seq - 1) if seq else (ms - 1, MAX_PART)


def _entries(stream: Stream, ids: list[StreamID]) -> list[Any]:
    return [[id_text(i), list(stream.entries[i])] for i in ids]


# --- XADD, XTRIM ----------------------------------------------------------------------

def _trim_options(args: list[bytes], at: int, xadd: bool
                  ) -> tuple[bool, tuple[bytes, Any, int] | None, int]:
    """XADD's and XTRIM's options from ``at`` - NOMKSTREAM (XADD), MAXLEN|MINID [=|~]
    threshold, LIMIT count, in any order, as Redis reads them: (make the stream, the
    trim - strategy, threshold, limit (0: none) -, the index after)."""
    make, strategy, approximate, limit = True, b"", False, -1
    threshold: Any = None
    while at < len(args):
        option = args[at].upper()
        if option == b"NOMKSTREAM" and xadd:
            make, at = False, at + 1
        elif option in (b"MAXLEN", b"MINID") and at + 1 < len(args):
            if strategy and strategy != option:
                raise OpError(b"ERR syntax error, MAXLEN and MINID options at the same time "
                              b"are not compatible")
            strategy, at = option, at + 1
            if args[at] in (b"=", b"~") and at + 1 < len(args):
                approximate, at = args[at] == b"~", at + 1
            if option == b"MAXLEN":
                threshold = integer(args[at])
                if threshold < 0:
                    raise OpError(b"ERR The MAXLEN argument must be >= 0.")
            else:
                threshold = parse_id(args[at])
            at += 1
        elif option == b"LIMIT" and at + 1 < len(args):
            limit = integer(args[at + 1])
            if limit < 0:
                raise OpError(b"ERR The LIMIT argument must be >= 0.")
            at += 2
        elif xadd:
            break
        else:
            raise OpError(SYNTAX)
    if limit >= 0 and not approximate:
        raise OpError(b"ERR syntax error, LIMIT cannot be used without the special ~ "
                      b"option")
    trim = (strategy, threshold, max(limit, 0)) if strategy else None
    return make, trim, at


def _trim(stream: Stream, strategy: bytes, threshold: Any, limit: int) -> int:
    count: int
    if strategy == b"MAXLEN":
        count = max(0, len(stream) - threshold)
    else:
        count = len(stream.between((0, 0), threshold)) - (1 if threshold in stream.entries
                                                          else 0)
    if limit:
        count = min(count, limit)
    stream.trim_first(count)
    return count


def xadd(ctx: Ctx, args: list[bytes]) -> Reply:
    key = args[1]
    make, trim, at = _trim_options(args, 2, xadd=True)
    if at >= len(args):
        raise OpError(SYNTAX)
    raw_id, fields = args[at], args[at + 1:]
    if not fields or len(fields) % 2:
        raise OpError(b"ERR wrong number of arguments for 'xadd' command")
    stream = _read(ctx, key)
    if stream is None and not make:
        return None
    last = stream.last_id if stream is not None else (0, 0)
    entry_id = _new_id(raw_id, last, ctx.now_ms)
    stream = _write(ctx, key)
    stream.add(entry_id, list(fields))
    ctx.changed(key, b"xadd", T)
    if trim is not None and _trim(stream, *trim):
        ctx.changed(key, b"xtrim", T)
    return id_text(entry_id)


def _new_id(raw: bytes, last: StreamID, now_ms: int) -> StreamID:
    if raw == b"*":
        ms = max(now_ms, last[0])
        if ms == last[0]:
            if last[1] == MAX_PART:
                raise OpError(b"ERR The stream has exhausted the last possible ID, unable "
                              b"to add more items")
            return ms, last[1] + 1
        return ms, 0
    if raw.endswith(b"-*"):
        ms = _part(raw[:-2])
        if ms == last[0] and last != (0, 0):
            if last[1] == MAX_PART:
                raise OpError(_NOT_GREATER)
            entry_id = (ms, last[1] + 1)
        else:
            entry_id = (ms, 0 if ms else 1)
    else:
        entry_id = parse_id(raw)
    if entry_id == (0, 0):
        raise OpError(b"ERR The ID specified in XADD must be greater than 0-0")
    if entry_id <= last:
        raise OpError(_NOT_GREATER)
    return entry_id


_NOT_GREATER: Final = b"ERR The ID specified in XADD is equal or smaller than the target " \
    b"stream top item"


def xtrim(ctx: Ctx, args: list[bytes]) -> Reply:
    _, trim, _ = _trim_options(args, 2, xadd=False)
    if trim is None:
        raise OpError(SYNTAX)
    if _read(ctx, args[1]) is None:
        return 0
    stream = _write(ctx, args[1])
    removed = _trim(stream, *trim)
    if removed:
        ctx.changed(args[1], b"xtrim", T)
    return removed


def xdel(ctx: Ctx, args: list[bytes]) -> Reply:
    ids = [parse_id(raw) for raw in args[2:]]
    if _read(ctx, args[1]) is None:
        return 0
    stream = _write(ctx, args[1])
    removed = sum(1 for entry_id in ids if stream.delete(entry_id))
    if removed:
        ctx.changed(args[1], b"xdel", T)
    return removed


# --- reading ----------------------------------------------------------------------------

def xlen(ctx: Ctx, args: list[bytes]) -> Reply:
    stream = _read(ctx, args[1])
    return len(stream) if stream is not None else 0


def _count_option(args: list[bytes], at: int) -> int | None:
    if at == len(args):
        return None
    if at + 2 != len(args) or args[at].upper() != b"COUNT":
        raise OpError(SYNTAX)
    return integer(args[at + 1])


def xrange(ctx: Ctx, args: list[bytes]) -> Reply:
    return _range(ctx, args, reverse=False)


def xrevrange(ctx: Ctx, args: list[bytes]) -> Reply:
    return _range(ctx, args, reverse=True)


def _range(ctx: Ctx, args: list[bytes], reverse: bool) -> Reply:
    high_raw, low_raw = (args[2], args[3]) if reverse else (args[3], args[2])
    low, high = _bound(low_raw, start=True), _bound(high_raw, start=False)
    count = _count_option(args, 4)
    stream = _read(ctx, args[1])
    if stream is None:
        return []
    if count is not None and count <= 0:
        return NIL_ARRAY  # (Redis 7.0's answer to COUNT 0 on a stream)
    if low > high:
        return []
    ids = stream.between(low, high)
    if reverse:
        ids.reverse()
    if count is not None:
        ids = ids[:count]
    return _entries(stream, ids)


def _streams_part(args: list[bytes], at: int, command: bytes
                  ) -> tuple[list[bytes], list[bytes]]:
    """``STREAMS key [key ...] id [id ...]`` from ``at`` (the word after STREAMS)."""
    rest = args[at:]
    if len(rest) % 2:
        raise OpError(b"ERR Unbalanced '%s' list of streams: for each stream key an ID or "
                      b"'%s' must be specified." % (command, b">" if command == b"xreadgroup"
                                                     else b"$"))
    half = len(rest) // 2
    return rest[:half], rest[half:]


def read_options(args: list[bytes], group: bool
                 ) -> tuple[int | None, int | None, bool, list[bytes], list[bytes]]:
    """XREAD / XREADGROUP's options: (count, block ms, noack, keys, ids)."""
    at = 4 if group else 1
    count = block = None
    noack = False
    while at < len(args):
        option = args[at].upper()
        if option == b"COUNT" and at + 1 < len(args):
            count = integer(args[at + 1])
            count = None if count <= 0 else count
            at += 2
        elif option == b"BLOCK" and at + 1 < len(args):
            block = parse_int64(args[at + 1])
            if block is None:
                raise OpError(b"ERR timeout is not an integer or out of range")
            if block < 0:
                raise OpError(b"ERR timeout is negative")
            at += 2
        elif option == b"NOACK" and group:
            noack = True
            at += 1
        elif option == b"STREAMS":
            keys, ids = _streams_part(args, at + 1, b"xreadgroup" if group else b"xread")
            return count, block, noack, keys, ids
        else:
            raise OpError(SYNTAX)
    raise OpError(SYNTAX)


def xread(ctx: Ctx, args: list[bytes]) -> Reply:
    """XREAD (BLOCK is the front's: here it reads once)."""
    count, _, _, keys, raw_ids = read_options(args, group=False)
    starts = []
    for key, raw in zip(keys, raw_ids, strict=True):
        stream = _read(ctx, key)
        if raw == b"$":
            starts.append(stream.last_id if stream is not None else (0, 0))
        else:
            starts.append(parse_id(raw))
    out: list[Any] = []
    for key, after in zip(keys, starts, strict=True):
        stream = _read(ctx, key)
        if stream is None or after == MAX_ID:
            continue
        ids = stream.between(_next(after), MAX_ID)
        if count is not None:
            ids = ids[:count]
        if ids:
            out += [key, _entries(stream, ids)]
    return KeyedMap(out) if out else NIL_ARRAY


def _next(entry_id: StreamID) -> StreamID:
    ms, seq = entry_id
    return (ms, seq + 1) if seq < MAX_PART else (ms + 1, 0)


def stream_unread(stream: Stream, group: bytes) -> bool:
    """Whether the stream holds entries ``group`` has not been given (or the group is
    gone: XREADGROUP then answers its error)."""
    found = stream.groups.get(group)
    return found is None or (bool(stream.ids) and stream.ids[-1] > found.last_id)


def last_ids(ctx: Ctx, keys: list[bytes]) -> list[bytes]:
    """The last ID of each stream (0-0 when absent): what ``$`` means right now."""
    out = []
    for key in keys:
        stream = _read(ctx, key)
        out.append(id_text(stream.last_id if stream is not None else (0, 0)))
    return out


# --- consumer groups ------------------------------------------------------------------

def _group(ctx: Ctx, key: bytes, name: bytes, command: bytes, write: bool = True
           ) -> tuple[Stream, Group]:
    stream = _read(ctx, key)
    group = stream.groups.get(name) if stream is not None else None
    if stream is None or group is None:
        raise OpError(b"NOGROUP No such key '%s' or consumer group '%s'%s"
                      % (key, name, b" in XREADGROUP with GROUP option"
                         if command == b"XREADGROUP" else b""))
    if write:
        stream = _write(ctx, key)
        group = stream.groups[name]
    return stream, group


def xgroup(ctx: Ctx, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    if sub == b"HELP" and len(args) == 2:
        return [b"XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                b"CREATE <key> <groupname> <id|$> [option]", b"CREATECONSUMER <key> "
                b"<groupname> <consumer>", b"DELCONSUMER <key> <groupname> <consumername>",
                b"DESTROY <key> <groupname>", b"SETID <key> <groupname> <id|$> "
                b"[ENTRIESREAD entries_read]", b"HELP"]
    arity = {b"CREATE": -5, b"SETID": -5, b"DESTROY": 4, b"CREATECONSUMER": 5,
             b"DELCONSUMER": 5}.get(sub)
    if arity is None or (arity > 0 and len(args) != arity) or len(args) < -arity:
        if arity is None:
            raise OpError(b"ERR unknown subcommand '%s'. Try XGROUP HELP." % args[1])
        raise OpError(b"ERR wrong number of arguments for 'xgroup|%s' command" % sub.lower())
    key, name = args[2], args[3]
    if sub == b"CREATE":
        return _group_create(ctx, args, key, name)
    stream = _read(ctx, key)
    if stream is None:
        raise OpError(b"ERR The XGROUP subcommand requires the key to exist. Note that for "
                      b"CREATE you may want to use the MKSTREAM option to create an empty "
                      b"stream automatically.")
    if sub == b"DESTROY":
        if name not in stream.groups:
            return 0
        del _write(ctx, key).groups[name]
        ctx.changed(key, b"xgroup-destroy", T)
        return 1
    if name not in stream.groups:
        raise OpError(b"NOGROUP No such consumer group '%s' for key name '%s'" % (name, key))
    if sub == b"SETID":
        entry_id, entries_read = _group_start(args, 5, stream)
        group = _write(ctx, key).groups[name]
        group.last_id, group.entries_read = entry_id, entries_read
        ctx.changed(key, b"xgroup-setid", T)
        return OK
    group = _write(ctx, key).groups[name]
    consumer = args[4]
    if sub == b"CREATECONSUMER":
        if consumer in group.consumers:
            return 0
        group.consumers[consumer] = Consumer(ctx.now_ms, -1)
        ctx.changed(key, b"xgroup-createconsumer", T)
        return 1
    if consumer not in group.consumers:  # DELCONSUMER
        return 0
    del group.consumers[consumer]
    owned = [i for i, p in group.pending.items() if p.consumer == consumer]
    for entry_id in owned:
        del group.pending[entry_id]
    ctx.changed(key, b"xgroup-delconsumer", T)
    return len(owned)


def _group_start(args: list[bytes], at: int, stream: Stream | None) -> tuple[StreamID, int]:
    raw = args[4]
    entry_id = (stream.last_id if stream is not None else (0, 0)) if raw == b"$" \
        else parse_id(raw)
    entries_read = -1  # (unknown until a read works it out, as in Redis 7.0)
    rest = args[at:]
    while rest:
        if rest[0].upper() == b"ENTRIESREAD" and len(rest) >= 2:
            entries_read = integer(rest[1])
            if entries_read < 0 and entries_read != -1:
                raise OpError(b"ERR value for ENTRIESREAD must be positive or -1")
            rest = rest[2:]
        elif rest[0].upper() == b"MKSTREAM" and args[1].upper() == b"CREATE":
            rest = rest[1:]
        else:
            raise OpError(SYNTAX)
    return entry_id, entries_read


def _group_create(ctx: Ctx, args: list[bytes], key: bytes, name: bytes) -> Reply:
    make = any(word.upper() == b"MKSTREAM" for word in args[5:])
    stream = _read(ctx, key)
    if stream is None and not make:
        raise OpError(b"ERR The XGROUP subcommand requires the key to exist. Note that for "
                      b"CREATE you may want to use the MKSTREAM option to create an empty "
                      b"stream automatically.")
    entry_id, entries_read = _group_start(args, 5, stream)
    if stream is not None and name in stream.groups:
        raise OpError(b"BUSYGROUP Consumer Group name already exists")
    stream = _write(ctx, key)
    stream.groups[name] = Group(entry_id, entries_read)
    ctx.changed(key, b"xgroup-create", T)
    return OK


def _consumer(group: Group, name: bytes, now_ms: int) -> Consumer:
    consumer = group.consumers.get(name)
    if consumer is None:
        consumer = group.consumers[name] = Consumer(now_ms, -1)
    consumer.seen_ms = now_ms
    return consumer


def xreadgroup(ctx: Ctx, args: list[bytes]) -> Reply:
    """XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...
    (``>``: entries never delivered to the group; an ID: this consumer's own pending
    entries after it). BLOCK is the front's: here it reads once."""
    if args[1].upper() != b"GROUP":
        raise OpError(SYNTAX)
    name, consumer_name = args[2], args[3]
    count, _, noack, keys, raw_ids = read_options(args, group=True)
    for key, raw in zip(keys, raw_ids, strict=True):
        _group(ctx, key, name, b"XREADGROUP", write=False)
        if raw != b">":
            parse_id(raw)
    out: list[Any] = []
    now = ctx.now_ms
    for key, raw in zip(keys, raw_ids, strict=True):
        stream, group = _group(ctx, key, name, b"XREADGROUP")
        _seen(group, consumer_name, now)
        ctx.changed(key, b"xreadgroup", T)  # (the consumer's seen time changed)
        if raw == b">":
            ids = stream.between(_next(group.last_id), MAX_ID)
            if count is not None:
                ids = ids[:count]
            if not ids:
                continue
            _consumer(group, consumer_name, now).active_ms = now  # (made by a delivery)
            for entry_id in ids:  # (Redis's bookkeeping, entry by entry)
                if group.entries_read != -1 and not _tombstones_from(stream, entry_id):
                    group.entries_read += 1
                elif stream.entries_added:
                    group.entries_read = _distance(stream, entry_id)
            group.last_id = ids[-1]
            if not noack:
                for entry_id in ids:
                    group.pending[entry_id] = Pending(consumer_name, now, 1)
            out += [key, _entries(stream, ids)]
            continue
        _consumer(group, consumer_name, now)  # (a history read makes it, as in Redis)
        after = parse_id(raw)
        mine = [i for i in group.pending_ids()
                if i > after and group.pending[i].consumer == consumer_name]
        if count is not None:
            mine = mine[:count]
        for entry_id in mine:  # delivered again: its count and time move on
            if entry_id in stream.entries:
                pending = group.pending[entry_id]
                pending.count += 1
                pending.delivered_ms = now
        out += [key, [[id_text(i), list(stream.entries[i]) if i in stream.entries
                       else None] for i in mine]]
    return KeyedMap(out) if out else NIL_ARRAY


def xack(ctx: Ctx, args: list[bytes]) -> Reply:
    ids = [parse_id(raw) for raw in args[3:]]
    stream = _read(ctx, args[1])
    if stream is None or args[2] not in stream.groups:
        return 0
    group = _write(ctx, args[1]).groups[args[2]]
    acked = 0
    for entry_id in ids:
        if group.pending.pop(entry_id, None) is not None:
            acked += 1
    if acked:
        ctx.changed(args[1], b"xack", T)
    return acked


def xpending(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) == 3:
        _, group = _group(ctx, args[1], args[2], b"XPENDING", write=False)
        ids = group.pending_ids()
        if not ids:
            return [0, None, None, None]
        owners: dict[bytes, int] = {}
        for entry_id in ids:
            holder = group.pending[entry_id].consumer
            owners[holder] = owners.get(holder, 0) + 1
        return [len(ids), id_text(ids[0]), id_text(ids[-1]),
                [[name, b"%d" % n] for name, n in sorted(owners.items())]]
    at, idle = 3, 0
    if args[3].upper() == b"IDLE":
        if len(args) < 8:
            raise OpError(SYNTAX)
        idle = integer(args[4])
        at = 5
    if len(args) - at not in (3, 4):
        raise OpError(SYNTAX)
    low, high = _bound(args[at], start=True), _bound(args[at + 1], start=False)
    count = integer(args[at + 2])
    owner = args[at + 3] if len(args) - at == 4 else None
    _, group = _group(ctx, args[1], args[2], b"XPENDING", write=False)
    if count <= 0:
        return []
    out: list[Any] = []
    for entry_id in group.pending_ids():
        if not low <= entry_id <= high:
            continue
        pending = group.pending[entry_id]
        waited = max(0, ctx.now_ms - pending.delivered_ms)
        if (owner is not None and pending.consumer != owner) or waited < idle:
            continue
        out.append([id_text(entry_id), pending.consumer, waited, pending.count])
        if len(out) == count:
            break
    return out


def xclaim(ctx: Ctx, args: list[bytes]) -> Reply:
    """XCLAIM key group consumer min-idle-time id... [IDLE ms] [TIME ms] [RETRYCOUNT n]
    [FORCE] [JUSTID] [LASTID id]."""
    key, name, consumer_name = args[1], args[2], args[3]
    min_idle = integer(args[4])
    ids: list[StreamID] = []
    at = 5
    while at < len(args):
        try:
            ids.append(parse_id(args[at]))
        except OpError:
            break
        at += 1
    now = ctx.now_ms
    delivered: int | None = None
    retries: int | None = None
    force = justid = False
    last_id: StreamID | None = None
    while at < len(args):
        option = args[at].upper()
        if option in (b"IDLE", b"TIME", b"RETRYCOUNT", b"LASTID") and at + 1 < len(args):
            value = args[at + 1]
            if option == b"IDLE":
                delivered = now - integer(value)
            elif option == b"TIME":
                delivered = integer(value)
            elif option == b"RETRYCOUNT":
                retries = integer(value)
            else:
                last_id = parse_id(value)
            at += 2
        elif option == b"FORCE":
            force, at = True, at + 1
        elif option == b"JUSTID":
            justid, at = True, at + 1
        else:
            raise OpError(b"ERR Unrecognized XCLAIM option '%s'" % args[at])
    stream, group = _group(ctx, key, name, b"XCLAIM")
    if last_id is not None and last_id > group.last_id:
        group.last_id = last_id
    out: list[Any] = []
    for entry_id in ids:
        pending = group.pending.get(entry_id)
        if pending is None:
            if not force or entry_id not in stream.entries:
                continue
            pending = group.pending[entry_id] = Pending(consumer_name, now, 0)
        elif entry_id not in stream.entries:
            del group.pending[entry_id]  # deleted from the stream: no longer pending
            continue
        if min_idle and now - pending.delivered_ms < min_idle:
            continue
        pending.consumer = consumer_name
        pending.delivered_ms = delivered if delivered is not None else now
        if retries is not None:
            pending.count = retries
        elif not justid:
            pending.count += 1
        _consumer(group, consumer_name, now).active_ms = now  # (made only by a claim)
        out.append(id_text(entry_id) if justid
                   else [id_text(entry_id), list(stream.entries[entry_id])])
    _seen(group, consumer_name, now)
    ctx.changed(key, b"xclaim", T)
    return out


def _seen(group: Group, name: bytes, now_ms: int) -> None:
    consumer = group.consumers.get(name)
    if consumer is not None:
        consumer.seen_ms = now_ms


def xautoclaim(ctx: Ctx, args: list[bytes]) -> Reply:
    """XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]:
    (the cursor to go on from, the claimed entries, the deleted IDs it dropped)."""
    key, name, consumer_name = args[1], args[2], args[3]
    min_idle = integer(args[4])
    start = _bound(args[5], start=True)
    count, justid, at = 100, False, 6
    while at < len(args):
        option = args[at].upper()
        if option == b"COUNT" and at + 1 < len(args):
            count = integer(args[at + 1])
            if count < 1 or count > 2**62:
                raise OpError(b"ERR COUNT must be > 0")
            at += 2
        elif option == b"JUSTID":
            justid, at = True, at + 1
        else:
            raise OpError(SYNTAX)
    stream, group = _group(ctx, key, name, b"XAUTOCLAIM")
    now = ctx.now_ms
    claimed: list[Any] = []
    deleted: list[bytes] = []
    cursor = (0, 0)
    scanned = 0
    ids = [i for i in group.pending_ids() if i >= start]
    for position, entry_id in enumerate(ids):
        if scanned == count * 10 or len(claimed) + len(deleted) == count:
            cursor = entry_id
            break
        scanned += 1
        pending = group.pending[entry_id]
        if entry_id not in stream.entries:
            del group.pending[entry_id]
            deleted.append(id_text(entry_id))
            continue
        if now - pending.delivered_ms < min_idle:
            continue
        pending.consumer, pending.delivered_ms = consumer_name, now
        if not justid:
            pending.count += 1
        _consumer(group, consumer_name, now).active_ms = now
        claimed.append(id_text(entry_id) if justid
                       else [id_text(entry_id), list(stream.entries[entry_id])])
        if position == len(ids) - 1:
            cursor = (0, 0)
    _seen(group, consumer_name, now)
    ctx.changed(key, b"xautoclaim", T)
    return [id_text(cursor), claimed, deleted]


def xinfo(ctx: Ctx, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    if sub == b"HELP" and len(args) == 2:
        return [b"XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                b"CONSUMERS <key> <groupname>", b"GROUPS <key>", b"STREAM <key> [FULL]",
                b"HELP"]
    if sub not in (b"STREAM", b"GROUPS", b"CONSUMERS"):
        raise OpError(b"ERR unknown subcommand '%s'. Try XINFO HELP." % args[1])
    if len(args) < 3 or (sub == b"CONSUMERS" and len(args) != 4) or (
            sub == b"GROUPS" and len(args) != 3):
        raise OpError(b"ERR wrong number of arguments for 'xinfo|%s' command" % sub.lower())
    stream = _read(ctx, args[2])
    if stream is None:
        raise OpError(b"ERR no such key")
    if sub == b"GROUPS":
        return [Map([b"name", name, b"consumers", len(group.consumers), b"pending",
                     len(group.pending), b"last-delivered-id", id_text(group.last_id),
                     b"entries-read", group.entries_read if group.entries_read >= 0 else None,
                     b"lag", _lag(stream, group)])
                for name, group in stream.groups.items()]
    if sub == b"CONSUMERS":
        group = stream.groups.get(args[3])
        if group is None:
            raise OpError(b"NOGROUP No such consumer group '%s' for key name '%s'"
                          % (args[3], args[2]))
        now = ctx.now_ms
        return [Map([b"name", name, b"pending",
                     sum(1 for p in group.pending.values() if p.consumer == name),
                     b"idle", max(0, now - consumer.seen_ms),
                     b"inactive", max(0, now - consumer.active_ms)
                     if consumer.active_ms >= 0 else -1])
                for name, consumer in group.consumers.items()]
    if len(args) != 3:
        raise OpError(SYNTAX)
    first = [id_text(stream.ids[0]), list(stream.entries[stream.ids[0]])] if stream.ids else None
    last = [id_text(stream.ids[-1]), list(stream.entries[stream.ids[-1]])] \
        if stream.ids else None
    return Map([b"length", len(stream), b"radix-tree-keys", 1 if stream.ids else 0,
                b"radix-tree-nodes", 1,
                b"last-generated-id", id_text(stream.last_id),
                b"max-deleted-entry-id", id_text(stream.max_deleted_id),
                b"entries-added", stream.entries_added,
                b"recorded-first-entry-id", id_text(stream.ids[0]) if stream.ids else b"0-0",
                b"groups", len(stream.groups), b"first-entry", first, b"last-entry", last])


def _lag(stream: Stream, group: Group) -> int | None:
    """How many entries the group has yet to read, None when unknown (Redis 7.0)."""
    if not stream.entries_added:
        return 0
    if group.entries_read != -1 and not _tombstones_from(stream, group.last_id):
        return stream.entries_added - group.entries_read
    read = _distance(stream, group.last_id)
    return stream.entries_added - read if read != -1 else None


def _tombstones_from(stream: Stream, entry_id: StreamID) -> bool:
    """Whether an XDEL left a hole at or after ``entry_id``."""
    return bool(stream.ids) and stream.max_deleted_id != (0, 0) and \
        entry_id <= stream.max_deleted_id


def _distance(stream: Stream, entry_id: StreamID) -> int:
    """How many entries were added up to ``entry_id``, -1 when holes hide it (Redis's
    streamEstimateDistanceFromFirstEverEntry)."""
    if not stream.entries_added:
        return 0
    if not stream.ids and entry_id <= stream.last_id:
        return stream.entries_added
    if entry_id == stream.last_id:
        return stream.entries_added
    if entry_id > stream.last_id:
        return -1
    first = stream.ids[0]
    if stream.max_deleted_id == (0, 0) or stream.max_deleted_id < first:
        if entry_id < first:
            return stream.entries_added - len(stream)
        if entry_id == first:
            return stream.entries_added - len(stream) + 1
    return -1


def keys_of_read(args: list[bytes]) -> list[bytes]:
    for at, word in enumerate(args):
        if word.upper() == b"STREAMS":
            rest = args[at + 1:]
            return rest[: len(rest) // 2]
    return []


def _key_at_2(args: list[bytes]) -> list[bytes]:
    sub = args[1].upper() if len(args) > 1 else b""
    return [args[2]] if len(args) > 2 and sub != b"HELP" else []


COMMANDS: Final[list[TypedSpec]] = [
    row("xadd", -5, "write denyoom fast", xadd),
    row("xlen", 2, "readonly fast", xlen),
    row("xrange", -4, "readonly", xrange),
    row("xrevrange", -4, "readonly", xrevrange),
    row("xdel", -3, "write fast", xdel),
    row("xtrim", -4, "write", xtrim),
    row("xread", -4, "readonly blocking movablekeys", xread, 0, 0, find_keys=keys_of_read),
    row("xgroup", -2, "write", xgroup, 0, 0, find_keys=_key_at_2),
    row("xreadgroup", -7, "write blocking movablekeys", xreadgroup, 0, 0,
        find_keys=keys_of_read),
    row("xack", -4, "write fast", xack),
    row("xpending", -3, "readonly", xpending),
    row("xclaim", -6, "write fast", xclaim),
    row("xautoclaim", -6, "write fast", xautoclaim),
    row("xinfo", -2, "readonly", xinfo, 0, 0, find_keys=_key_at_2),
]
__all__ = ["COMMANDS", "NOT_INTEGER"]
