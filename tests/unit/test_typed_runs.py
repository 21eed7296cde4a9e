"""A run of typed writes to one key inside one Redis-mode Txn (a queue's pushes, a
pipeline's HSETs) runs in one context and stores the key once. It must give exactly
what running each op alone gives: the same replies, events, versions, history, state
and memory accounting - including runs that empty a key and create it again, that
hit the wrong type, that fail on their arguments, that draw random members (SPOP),
that cross the packed form's limits, and keys that expired.

The reference is the same Txn with a Read of another key between every two ops, so no
two writes are adjacent: each runs alone, at the same index."""

from __future__ import annotations

import random

import pytest

from raftkv.core.commands import Expire, Put, Read, Txn, TypedOp
from raftkv.core.state_machine import StateMachine
from tests.unit.test_determinism import KEYS, digest

_SEPARATOR = Read(b"separator")
_LONG = b"x" * 70  # past the packed form's 64-byte strings


def _family(key: bytes, item: bytes, number: bytes) -> list[list[tuple[bytes, ...]]]:
    """Each type's writes, errors included (a bad count, a bad increment)."""
    return [
        [(b"lpush", key, item), (b"rpush", key, item, item), (b"lpop", key),
         (b"rpop", key, b"2"), (b"lpushx", key, item), (b"lpop", key, b"-1")],
        [(b"sadd", key, item, number), (b"srem", key, item), (b"spop", key), (b"spop", key, b"2")],
        [(b"hset", key, item, b"v"), (b"hdel", key, item), (b"hincrby", key, b"n", b"1"),
         (b"hincrby", key, item, b"x")],
        [(b"zadd", key, number, item), (b"zpopmin", key), (b"zadd", key, b"nan", item),
         (b"zincrby", key, b"1.5", item), (b"zrem", key, item)],
    ]


def _ops(rng: random.Random, now_ms: int) -> list[TypedOp]:
    """Runs of writes to one key: mostly of one type, now and then another's."""
    ops: list[TypedOp] = []
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(KEYS[:3])
        family = rng.randrange(4)
        for _ in range(rng.randint(1, 12)):
            item = rng.choice([b"a", b"b", b"c", b"%d" % rng.randint(0, 300), _LONG])
            number = b"%d" % rng.randint(0, 9)
            lines = _family(key, item, number)
            chosen = family if rng.random() < 0.9 else rng.randrange(4)
            ops.append(TypedOp(rng.choice(lines[chosen]), now_ms=now_ms))
    return ops


def _apply_both(seed: int, entries: int) -> tuple[StateMachine, StateMachine]:
    rng = random.Random(seed)
    together, alone = StateMachine(), StateMachine()
    for index in range(1, entries + 1):
        now_ms = 1000 + index
        roll = rng.random()
        if roll < 0.05:
            commands = [Put(rng.choice(KEYS[:3]), b"s", now_ms=now_ms)] * 2
        elif roll < 0.1:
            key = rng.choice(KEYS[:3])
            commands = [Expire(key, now_ms + rng.randint(1, 5), now_ms=now_ms)] * 2
        else:
            ops = _ops(rng, now_ms)
            spaced = [part for op in ops for part in (op, _SEPARATOR)]
            commands = [Txn(tuple(ops), now_ms=now_ms), Txn(tuple(spaced), now_ms=now_ms)]
        got = together.apply(index, commands[0])
        want = alone.apply(index, commands[1])
        if isinstance(commands[0], Txn):
            assert list(got.results) == list(want.results[::2]), index  # type: ignore[attr-defined]
        else:
            assert got == want
    return together, alone


@pytest.mark.parametrize("seed", range(12))
def test_a_run_on_one_key_gives_what_each_op_alone_gives(seed: int) -> None:
    together, alone = _apply_both(seed, 150)
    assert digest(together) == digest(alone)
    assert together.history.after(0, 0) == alone.history.after(0, 0)
    assert together.keyspace.data_bytes == alone.keyspace.data_bytes
    for key in KEYS[:3]:
        assert together.keyspace.raw(key) == alone.keyspace.raw(key)
        container = together.keyspace.container(key)
        if container is not None:
            reference = alone.keyspace.container(key)
            assert reference is not None and container.encoding() == reference.encoding()
            assert container.nbytes == reference.nbytes
