"""Determinism (DATA-MODEL.md section 7, TESTING.md): seeded random streams of commands
of every type - SPOP's randomness, expiry, MULTI-style batches, scripts using
``math.random``, ``TIME`` and every type (by body and by SHA1), streams with automatic
IDs and consumer groups included - applied to
two state machines, and to a third restored from a snapshot of the first taken midway;
all three end with the same digest. The negative controls seed SPOP from the
process's own randomness instead of the entry's index, and give scripts the wall
clock's TIME instead of the entry's; the digests must differ."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest

from raftkv.core import image
from raftkv.core.commands import Command, DeleteExpired, Expire, Put, Txn, TypedOp
from raftkv.core.containers import Hash, List, Set, Stream, ZSet
from raftkv.core.scripts.lua import sha1hex
from raftkv.core.state_machine import StateMachine
from tests.support.node import ROOT

KEYS = [b"k%d" % i for i in range(8)]
ITEMS = [b"a", b"b", b"c", b"d", b"e", b"f"]
SCRIPT = b"""
local n = math.random(1, 1000)
math.randomseed(n)
redis.call('SADD', KEYS[1] .. ':s', n, math.random(50))
redis.call('ZADD', KEYS[2] .. ':z', math.random(), 'm' .. math.random(5))
local t = redis.call('TIME')
redis.call('HSET', KEYS[1] .. ':meta', 'time', t[1] .. '.' .. t[2], 'r', tostring(math.random()))
redis.call('RPUSH', KEYS[1] .. ':log', cjson.encode({n, tonumber(t[2])}))
return {n, redis.call('SPOP', KEYS[1] .. ':s'), redis.call('SRANDMEMBER', KEYS[1] .. ':s', -3)}
"""


def stream(seed: int, length: int) -> list[Command]:
    rng = random.Random(seed)
    out: list[Command] = [TypedOp((b"script", b"load", SCRIPT), now_ms=999)]
    for step in range(length):
        now = 1000 + step
        key, other, items = rng.choice(KEYS), rng.choice(KEYS), rng.sample(ITEMS, 3)
        choices: list[tuple[bytes, ...]] = [
            (b"sadd", key, *items), (b"spop", key, b"2"), (b"spop", key),
            (b"hset", key, items[0], items[1]), (b"rpush", key, *items), (b"lpop", key),
            (b"zadd", key, b"%d" % rng.randint(0, 9), items[0]), (b"zpopmin", key),
            (b"sunionstore", key, other, rng.choice(KEYS)),
            (b"zunionstore", key, b"2", other, rng.choice(KEYS)), (b"lmove", key, other,
                                                                   b"LEFT", b"RIGHT"),
            (b"eval", SCRIPT, b"2", key, other), (b"evalsha", sha1hex(SCRIPT), b"2", key, other),
            (b"xadd", key + b":x", b"MAXLEN", b"5", b"*", b"f", items[0]),
            (b"xgroup", b"CREATE", key + b":x", b"g", b"0", b"MKSTREAM"),
            (b"xreadgroup", b"GROUP", b"g", items[1], b"COUNT", b"2", b"STREAMS",
             key + b":x", b">"),
            (b"xautoclaim", key + b":x", b"g", items[2], b"0", b"0"),
        ]
        roll = rng.random()
        if roll < 0.05:
            out.append(Put(key, b"s", now_ms=now))
        elif roll < 0.1:
            out.append(Expire(key, now + rng.randint(1, 30), now_ms=now))
        elif roll < 0.15:
            out.append(DeleteExpired(tuple(KEYS), now_ms=now))
        elif roll < 0.25:
            out.append(Txn(tuple(TypedOp(rng.choice(choices), now_ms=now) for _ in range(3)),
                           now_ms=now))
        else:
            out.append(TypedOp(rng.choice(choices), now_ms=now))
    return out


def digest(sm: StateMachine) -> str:
    h = hashlib.sha256()
    keyspace = sm.keyspace
    h.update(repr(sorted(sm.scripts.items())).encode())
    keys = [b"%s%s" % (k, suffix) for k in KEYS
            for suffix in (b"", b":meta", b":log", b":s", b":z", b":x")]
    for key in sorted(k for k in keys if keyspace.raw(k) is not None):
        h.update(key + keyspace.raw(key))  # type: ignore[operator]
        container = keyspace.container(key)
        if isinstance(container, Hash):
            h.update(repr(list(container.view().items())).encode())
        elif isinstance(container, List):
            h.update(repr(list(container.view())).encode())
        elif isinstance(container, Set):
            h.update(repr(list(container)).encode())
        elif isinstance(container, ZSet):
            h.update(repr(list(container.order)).encode())
        elif isinstance(container, Stream):
            h.update(repr([(i, container.entries[i]) for i in container.ids]).encode())
            h.update(repr([(name, g.last_id, g.entries_read, sorted(
                (i, p.consumer, p.delivered_ms, p.count) for i, p in g.pending.items()),
                list(g.consumers)) for name, g in container.groups.items()]).encode())
    return h.hexdigest()


def replay(commands: list[Command], snapshot_at: int | None = None
           ) -> tuple[str, StateMachine | None]:
    """The digest of the final state and of every result (SPOP's reply included), and
    a third state machine restored from a snapshot at ``snapshot_at`` that applied the
    rest."""
    sm = StateMachine()
    restored = None
    results = hashlib.sha256()
    for index, command in enumerate(commands, 1):
        results.update(repr(sm.apply(index, command)).encode())
        if index == snapshot_at:
            restored = StateMachine()
            image.decode(image.encode(sm.snapshot()), "test").restore(restored)
    if restored is not None:
        for index, command in enumerate(commands[snapshot_at:], snapshot_at + 1):
            restored.apply(index, command)
    return digest(sm) + results.hexdigest(), restored


@pytest.mark.parametrize("seed", range(5))
def test_replicas_and_a_snapshot_restored_one_agree(seed: int) -> None:
    commands = stream(seed, 600)
    first, restored = replay(commands, snapshot_at=300)
    second, _ = replay(commands)
    assert restored is not None
    assert first == second and first.startswith(digest(restored))
    assert any(isinstance(c, TypedOp) and c.args[0] == b"spop" for c in commands)
    assert any(isinstance(c, TypedOp) and c.args[0] == b"evalsha" for c in commands[300:])


PLANTED = """
from tests.support.source_only import use_source
use_source()  # (the compiled Ctx would not take the patch)
import random
from raftkv.core.typed.context import Ctx
Ctx.randrange = lambda self, n: random.randrange(n)  # planted: not the entry's seed
from tests.unit.test_determinism import replay, stream
commands = stream(0, 600)
print(len({replay(commands)[0] for _ in range(3)}))
"""


PLANTED_TIME = """
from tests.support.source_only import use_source
use_source()  # (a compiled row's fields are Final: it would not take the patch)
import time
from raftkv.core.typed import CALLABLE
from raftkv.core.typed.replies import Reply
def wall_time(ctx, args) -> Reply:  # planted: the wall clock's time, not the entry's
    now = time.time_ns() // 1000
    return [b"%d" % (now // 1000000), b"%d" % (now % 1000000)]
object.__setattr__(CALLABLE[b"time"][0], "fn", wall_time)
from tests.unit.test_determinism import replay, stream
commands = stream(0, 600)
print(len({replay(commands)[0] for _ in range(3)}))
"""


@pytest.mark.parametrize("planted", [PLANTED, PLANTED_TIME], ids=["spop-seed", "script-time"])
def test_negative_control_randomness_or_time_from_outside_the_log_diverges(planted: str
                                                                            ) -> None:
    done = subprocess.run([sys.executable, "-c", planted], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 1  # the three replays disagree
