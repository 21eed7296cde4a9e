"""Streams, reply for reply against a real redis-server: a script through each
command's edges and errors, then seeded random streams of X commands over a few keys
- explicit and partly automatic IDs, ranges with exclusive bounds, deletions, trims,
consumer groups reading, acknowledging and claiming - with the streams compared
after each.

Left out by design: automatic IDs (``*``: the log entry's time), idle times, the
sizes of Redis's radix tree in XINFO STREAM, and a group's ``lag`` in XINFO GROUPS
(Redis's own heuristic once entries are deleted; raftkv's is Redis's rule, but not its
bugs).
The negative control plants an off-by-one in exclusive range bounds and requires the
random streams to catch it."""

from __future__ import annotations

import random
import textwrap

import pytest
import redis

from tests.support.resp import raw_reply


def ask(client: redis.Redis, command: tuple) -> object:
    """The reply as sent (redis-py's own parsing of X replies is left out)."""
    try:
        reply = raw_reply(client, *command)
    except redis.ResponseError as exc:
        return ("error", str(exc))
    if command[0] == "XPENDING" and len(command) > 3 and isinstance(reply, list):
        return [[entry[0], entry[1], entry[3]] for entry in reply]  # (not the idle time)
    if command[:2] == ("XINFO", "STREAM") and isinstance(reply, dict):
        return {k: v for k, v in reply.items() if not k.startswith(b"radix")}
    if command[:2] == ("XINFO", "STREAM") and isinstance(reply, list):
        return [None if i % 2 and reply[i - 1].startswith(b"radix") else item
                for i, item in enumerate(reply)]  # (Redis's own tree: not ours to copy)
    if command[:2] == ("XINFO", "GROUPS") and isinstance(reply, list):
        return [{k: v for k, v in group.items() if k != b"lag"} if isinstance(group, dict)
                else [None if i % 2 and group[i - 1] == b"lag" else item
                      for i, item in enumerate(group)] for group in reply]
    return reply



SCRIPT = [
    ("XADD", "s", "1-1", "a", "1"), ("XADD", "s", "1-1", "a", "1"), ("XADD", "s", "0-0", "a", "1"),
    ("XADD", "s", "1", "a"), ("XADD", "s", "5-*", "a", "1"), ("XADD", "s", "5-*", "b", "2"),
    ("XADD", "s", "x-1", "a", "1"), ("XADD", "s", "NOMKSTREAM", "9-1", "a", "1"),
    ("XADD", "none", "NOMKSTREAM", "9-1", "a", "1"), ("EXISTS", "none"),
    ("XRANGE", "s", "-", "+"), ("XRANGE", "s", "-", "+", "COUNT", "0"),
    ("XRANGE", "s", "-", "+", "COUNT", "2"), ("XREVRANGE", "s", "+", "-", "COUNT", "1"),
    ("XRANGE", "s", "abc", "+"), ("XRANGE", "s", "(1-1", "+"), ("XRANGE", "s", "5", "5"),
    ("XRANGE", "s", "(18446744073709551615-18446744073709551615", "+"),
    ("XRANGE", "s", "-", "(0-0"), ("XRANGE", "s", "+", "-"), ("XRANGE", "s", "-", "+", "LIMIT", "1"),
    ("XADD", "s", "MAXLEN", "-1", "9-1", "a", "1"), ("XADD", "s", "LIMIT", "5", "MAXLEN", "1", "9-1", "a", "1"),
    ("XADD", "s", "MAXLEN", "=", "1", "LIMIT", "5", "9-1", "a", "1"),
    ("XADD", "s", "MAXLEN", "=", "3", "10-1", "c", "3"), ("XLEN", "s"), ("XLEN", "none"),
    ("XREAD", "STREAMS", "s"), ("XREAD", "COUNT", "1", "STREAMS", "s", "0"),
    ("XREAD", "STREAMS", "none", "0"), ("XREAD", "STREAMS", "s", "$"),
    ("XREAD", "STREAMS", "s", "none", "0", "0"), ("XREAD", "BLOCK", "-1", "STREAMS", "s", "0"),
    ("XREAD", "FOO", "STREAMS", "s", "0"),
    ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "s", "g", "$"),
    ("XGROUP", "CREATE", "none", "g", "$"), ("XGROUP", "CREATE", "made", "g", "$", "MKSTREAM"),
    ("TYPE", "made"), ("XLEN", "made"), ("XGROUP", "CREATECONSUMER", "s", "g", "c0"),
    ("XGROUP", "CREATECONSUMER", "s", "g", "c0"), ("XGROUP", "NOPE", "s"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g", "c2", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g", "c2", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "nog", "c", "STREAMS", "s", ">"), ("XREADGROUP", "g", "c", "STREAMS", "s", ">"),
    ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
    ("XPENDING", "s", "g", "-", "+", "10", "c"), ("XPENDING", "s", "nog"),
    ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0"), ("XACK", "s", "g", "5-1", "1-1"),
    ("XPENDING", "s", "g"), ("XCLAIM", "s", "g", "c3", "0", "10-1", "JUSTID"),
    ("XCLAIM", "s", "g", "c3", "0", "10-1"), ("XCLAIM", "s", "g", "c3", "0", "10-1", "BOGUS"),
    ("XAUTOCLAIM", "s", "g", "c4", "0", "0", "JUSTID"), ("XAUTOCLAIM", "s", "g", "c4", "0", "0"),
    ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"), ("XINFO", "STREAM", "none"),
    ("XDEL", "s", "5-1", "99-1"), ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
    ("XREADGROUP", "GROUP", "g", "c4", "STREAMS", "s", "0"),
    ("XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "0"), ("XINFO", "GROUPS", "s"),
    ("XGROUP", "DELCONSUMER", "s", "g", "c4"), ("XTRIM", "s", "MAXLEN", "0"), ("XLEN", "s"),
    ("EXISTS", "s"), ("XTRIM", "s", "MINID", "5"), ("XTRIM", "s", "FOO", "1"),
    ("XGROUP", "DESTROY", "s", "g"), ("XGROUP", "DESTROY", "s", "g"), ("OBJECT", "ENCODING", "s"),
    ("SET", "str", "v"), ("XADD", "str", "1-1", "a", "b"), ("XRANGE", "str", "-", "+"),
    ("XLEN", "str"), ("XREAD", "STREAMS", "str", "0"), ("HSET", "made", "f", "v"),
]


def test_each_stream_command_answers_as_redis_does(pair):
    ours, theirs = pair
    for command in SCRIPT:
        assert ask(ours, command) == ask(theirs, command), command


def test_resp3_replies_of_streams_are_those_of_redis(start_server, real_redis):
    node = start_server(resp=True)
    port = real_redis.connection_pool.connection_kwargs["port"]
    ours, theirs = (redis.Redis(port=p, protocol=3) for p in (node.resp_port, port))
    try:
        theirs.flushall()
        for command in [("XADD", "s", "1-1", "a", "1"), ("XADD", "t", "2-1", "b", "2"),
                        ("XREAD", "STREAMS", "s", "t", "0", "0"),
                        ("XGROUP", "CREATE", "s", "g", "0"),
                        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"),
                        ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
                        ("XAUTOCLAIM", "s", "g", "c", "0", "0", "JUSTID"),
                        ("EVAL", "return redis.call('XREAD', 'STREAMS', 's', '0')", "0")]:
            assert ask(ours, command) == ask(theirs, command), command
    finally:
        ours.close()
        theirs.close()


KEYS = ["s1", "s2", "s3"]


def random_command(rng: random.Random, clock: list[int], known: list[str]) -> tuple:
    key = rng.choice(KEYS)
    some_id = rng.choice(known) if known and rng.random() < 0.6 else \
        f"{rng.randint(0, clock[0])}-{rng.randint(0, 3)}"
    bound = rng.choice(["-", "+", some_id, f"({some_id}", f"({some_id}",
                        str(rng.randint(0, clock[0]))])
    other = rng.choice(["-", "+", "+", some_id, f"({some_id}", str(rng.randint(0, clock[0]))])
    roll = rng.random()
    if roll < 0.3:
        clock[0] += rng.choice([0, 1, 1, 2])
        new_id = rng.choice([f"{clock[0]}-{rng.randint(0, 5)}", f"{clock[0]}-*"])
        trim = rng.choice([(), (), ("MAXLEN", "=", str(rng.randint(0, 6))),
                           ("MINID", str(rng.randint(0, clock[0])))])
        return ("XADD", key, *trim, new_id, "f", str(rng.randint(0, 99)))
    choices = [
        ("XRANGE", key, bound, other), ("XREVRANGE", key, other, bound),
        ("XRANGE", key, bound, "+"), ("XREVRANGE", key, "+", bound),
        ("XRANGE", key, bound, other, "COUNT", str(rng.randint(0, 3))),
        ("XDEL", key, some_id), ("XLEN", key), ("XTRIM", key, "MAXLEN", str(rng.randint(0, 5))),
        ("XTRIM", key, "MINID", some_id), ("XREAD", "COUNT", "2", "STREAMS", key, some_id),
        ("XGROUP", "CREATE", key, "g", rng.choice(["0", "$", some_id]), "MKSTREAM"),
        ("XGROUP", "SETID", key, "g", rng.choice(["0", "$", some_id])),
        ("XREADGROUP", "GROUP", "g", rng.choice(["a", "b"]), "COUNT", str(rng.randint(1, 3)),
         "STREAMS", key, ">"),
        ("XREADGROUP", "GROUP", "g", rng.choice(["a", "b"]), "STREAMS", key, "0"),
        ("XACK", key, "g", some_id), ("XPENDING", key, "g"),
        ("XPENDING", key, "g", bound, other, "5"),
        ("XCLAIM", key, "g", rng.choice(["a", "b"]), "0", some_id, "JUSTID"),
        ("XAUTOCLAIM", key, "g", rng.choice(["a", "b"]), "0", bound, "COUNT", "2", "JUSTID"),
        ("XINFO", "GROUPS", key), ("XGROUP", "DELCONSUMER", key, "g", "a"),
    ]
    return rng.choice(choices)


def run_stream(ours: redis.Redis, theirs: redis.Redis, seed: int, steps: int) -> list[str]:
    rng = random.Random(seed)
    clock = [1]
    known: list[str] = []  # IDs given out, so that bounds and acks often meet entries
    mismatches = []
    for _ in range(steps):
        command = random_command(rng, clock, known)
        mine, reference = ask(ours, command), ask(theirs, command)
        if mine != reference:
            mismatches.append(f"{command}: {mine!r} != {reference!r}")
        if command[0] == "XADD" and isinstance(reference, bytes):
            known.append(reference.decode())
    for key in KEYS:
        command = ("XRANGE", key, "-", "+")
        if ask(ours, command) != ask(theirs, command):
            mismatches.append(f"{key} differs at the end")
    return mismatches


@pytest.mark.parametrize("seed", range(4))
def test_random_streams_answer_as_redis_does(pair, seed):
    ours, theirs = pair
    mismatches = run_stream(ours, theirs, seed, 400)
    assert not mismatches, "\n".join(mismatches[:5])


PLANTED = textwrap.dedent("""
    import sys
    sys.path.insert(0, ROOT)
    import raftkv.core.typed.streams as streams
    _right = streams._bound

    def _bound(raw, start):  # planted: an exclusive bound keeps its own ID
        return _right(raw[1:] if raw.startswith(b"(") else raw, start)

    streams._bound = _bound
""")


def test_negative_control_the_random_streams_catch_a_planted_bound(
        start_planted, real_redis):
    node = start_planted(PLANTED)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    try:
        mismatches = []
        for seed in range(3):
            ours.flushall()
            real_redis.flushall()
            mismatches += run_stream(ours, real_redis, seed, 300)
        assert any("RANGE" in m or "PENDING" in m for m in mismatches), mismatches[:3]
    finally:
        ours.close()
