"""A pipeline's runs of plain ``SET key value``, of ``GET key`` or of typed writes
(LPUSH, HSET, ZADD...), answered together.

A run of SETs becomes one MultiPut (one proposal, one group commit); a run of typed
writes joins the loop turn's Txn of them with one call; a run of GETs takes one read
barrier and one clock read. Each command of a run passes the same
``refusal`` check ``dispatch`` makes and the service's key and value limits; the run
ends at the first command that does not, and that one goes through ``dispatch``
alone, so it gets its own reply. A run is answered as one reply, in order.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from typing import Any, Final

from raftkv.errors import RaftKVError
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.commands.strings import values_reply
from raftkv.fronts.resp.commands.typed import reply_of, typed
from raftkv.fronts.resp.dispatch import TABLE, refusal
from raftkv.fronts.resp.spec import CommandStats, Reply, Spec, error_text, later
from raftkv.service.service import MAX_KEY_BYTES

SET_NAMES: Final = frozenset({b"SET", b"set", b"Set"})
GET_NAMES: Final = frozenset({b"GET", b"get", b"Get"})
MIN_RUN: Final = 2
SET: Final = TABLE[b"set"]
GET: Final = TABLE[b"get"]
# (compiled: C statics, not a module lookup per call)
_perf_counter_ns: Final = time.perf_counter_ns
_islice: Final = itertools.islice


def batch_run(client: Client, commands: list[list[bytes]], start: int
              ) -> tuple[Reply, int] | None:
    """The reply to the run of plain SETs or GETs from ``start`` on, and where the run
    ends; None when there is no run (fewer than two)."""
    if client.transaction is not None:
        return None  # inside MULTI every command is queued, one by one
    name = commands[start][0]
    if name in SET_NAMES:
        limit = client.service.limits.max_value_bytes
        items: list[tuple[bytes, bytes]] = []
        for args in _islice(commands, start, None):
            if len(args) != 3 or args[0] not in SET_NAMES or refusal(client, SET, args) \
                    or not 0 < len(args[1]) <= MAX_KEY_BYTES or len(args[2]) > limit:
                break
            items.append((args[1], args[2]))
        count = len(items)
        if count < MIN_RUN:
            return None
        return _answer(client, start, [SET.stats] * count, True,
                       lambda: client.service.put_many(items), lambda _: p.OK * count)
    if name not in GET_NAMES:
        return _typed_run(client, commands, start)
    keys: list[bytes] = []
    for args in _islice(commands, start, None):
        if len(args) != 2 or args[0] not in GET_NAMES or refusal(client, GET, args) \
                or not 0 < len(args[1]) <= MAX_KEY_BYTES:
            break
        keys.append(args[1])
    if len(keys) < MIN_RUN:
        return None
    return _answer(client, start, [GET.stats] * len(keys), False,
                   lambda: client.service.get_values(keys, client.consistency),
                   functools.partial(values_reply, client))


def _typed_run(client: Client, commands: list[list[bytes]], start: int
               ) -> tuple[Reply, int] | None:
    """A run of hash, list, set and sorted-set writes: one service call, one reply."""
    lines: list[list[bytes]] = []
    rows: list[Spec] = []
    limit = client.service.limits.max_value_bytes
    for args in _islice(commands, start, None):
        name = args[0].lower()
        row = TABLE.get(name)
        if row is None or row.handler is not typed or not row.writes \
                or refusal(client, row, args) or not _fits(row, args, limit):
            break
        args[0] = name  # (the service takes the name in lower case; the line is ours)
        lines.append(args)
        rows.append(row)
    if len(lines) < MIN_RUN:
        return None
    enc = client.enc
    return _answer(client, start, [row.stats for row in rows], True,
                   lambda: client.service.typed_writes(lines),
                   lambda done: b"".join(reply_of(enc, r) for r in done))


def _fits(row: Spec, args: list[bytes], limit: int) -> bool:
    """Whether each argument is within the value limit and each key within the key's
    (loops: compiled, a generator in ``any``/``all`` is an object per command)."""
    for arg in args:
        if len(arg) > limit:
            return False
    for key in row.keys(args):  # noqa: SIM110
        if not 0 < len(key) <= MAX_KEY_BYTES:
            return False
    return True


def _answer(client: Client, start: int, stats: list[CommandStats], writing: bool,
            call: Callable[[], Any], render: Callable[[Any], bytes]) -> tuple[Reply, int]:
    """A run's one reply and where it ends: ``call`` the service once (a refusal is
    every command's error reply), ``render`` what it gives, count each command."""
    count = len(stats)
    client.state.stats.commands += count
    client.writing = writing
    started = _perf_counter_ns()
    try:
        result = call()
    except RaftKVError as exc:
        return p.error_reply(error_text(exc)) * count, start + count
    finally:
        for row_stats in stats:
            row_stats.calls += 1
        stats[0].ns += _perf_counter_ns() - started
    return later(result, render, count), start + count
