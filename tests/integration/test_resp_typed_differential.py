"""Hashes, lists, sets and sorted sets, reply for reply against a real redis-server:
a script per family that walks each command's edges and errors, and seeded random
streams that mix the four types over shared keys (so WRONGTYPE, emptied containers
and the STORE commands meet each other), plain and inside MULTI/EXEC.

The negative control starts raftkv with an off-by-one planted in the list range
arithmetic (LRANGE, LTRIM) and requires the random streams to catch it."""

from __future__ import annotations

import random
import textwrap

import pytest
import redis

from tests.support.resp import raw_reply


def ask(client: redis.Redis, command: tuple[str, ...]) -> object:
    """The reply as redis-py gives it, or the error; replies whose order Redis leaves
    unspecified (a set's SSCAN) sorted."""
    try:
        reply = client.execute_command(*command)
    except redis.ResponseError as exc:
        return ("error", str(exc))
    except ValueError as exc:  # redis-py's parser for the command refused the reply
        return ("unparsed", str(exc))
    if command[0] == "SSCAN" and isinstance(reply, tuple | list):
        return reply[0], sorted(reply[1])
    return reply


def both(ours: redis.Redis, theirs: redis.Redis, *command: str) -> tuple[object, object]:
    return ask(ours, command), ask(theirs, command)

HASHES = [
    ("HSET", "h", "a", "1", "b", "2"), ("HSET", "h", "a", "10", "c", "3"), ("HGETALL", "h"),
    ("HSET", "h", "x"), ("HSET", "h"), ("HMSET", "h", "d", "4"), ("HSETNX", "h", "a", "9"),
    ("HSETNX", "h", "e", "5"), ("HGET", "h", "a"), ("HGET", "h", "zz"), ("HGET", "nokey", "a"),
    ("HMGET", "h", "a", "zz", "b"), ("HMGET", "nokey", "a"), ("HKEYS", "h"), ("HVALS", "h"),
    ("HLEN", "h"), ("HLEN", "nokey"), ("HEXISTS", "h", "a"), ("HEXISTS", "h", "zz"),
    ("HSTRLEN", "h", "a"), ("HSTRLEN", "h", "zz"), ("HDEL", "h", "a", "zz", "b"),
    ("HINCRBY", "h", "n", "5"), ("HINCRBY", "h", "n", "-7"), ("HINCRBY", "h", "d", "x"),
    ("HSET", "h", "w", "word"), ("HINCRBY", "h", "w", "1"),
    ("HINCRBY", "h", "n", "9223372036854775807"), ("HINCRBYFLOAT", "h", "f", "1.5"),
    ("HINCRBYFLOAT", "h", "f", "0.1"), ("HINCRBYFLOAT", "h", "w", "1"),
    ("HINCRBYFLOAT", "h", "f", "abc"), ("HINCRBYFLOAT", "h", "f", "inf"), ("HGETALL", "h"),
    ("HSCAN", "h", "0"), ("HSCAN", "h", "0", "MATCH", "[dn]*"), ("HSCAN", "h", "0", "COUNT", "0"),
    ("HRANDFIELD", "nokey"), ("HRANDFIELD", "nokey", "3"), ("HRANDFIELD", "h", "0"),
    ("HDEL", "h", "c", "d", "e", "n", "f", "w"), ("EXISTS", "h"), ("TYPE", "h"),
    ("SET", "str", "v"), ("HSET", "str", "a", "1"), ("HGET", "str", "a"), ("HLEN", "str"),
    ("HSET", "h2", "f", "v"), ("GET", "h2"), ("APPEND", "h2", "x"), ("INCR", "h2"),
    ("STRLEN", "h2"), ("MGET", "h2", "str"), ("TYPE", "h2"), ("OBJECT", "ENCODING", "h2"),
    ("HSET", "h3", "f", "v"), ("GETSET", "h3", "x"), ("SET", "h3", "x", "GET"),
    ("SET", "h3", "x", "NX", "GET"), ("GETDEL", "h3"), ("GETEX", "h3", "EX", "100"),
    ("GETEX", "h3"), ("GETRANGE", "h3", "0", "1"), ("SETRANGE", "h3", "0", "x"),
    ("INCRBYFLOAT", "h3", "1"), ("HGETALL", "h3"), ("TTL", "h3"),
    ("SET", "h2", "plain"), ("TYPE", "h2"), ("GET", "h2"),
]
LISTS = [
    ("RPUSH", "l", "a", "b", "c", "d", "e"), ("LPUSH", "l", "z"), ("LRANGE", "l", "0", "-1"),
    ("LRANGE", "l", "-3", "-2"), ("LRANGE", "l", "4", "100"), ("LRANGE", "l", "5", "2"),
    ("LRANGE", "l", "-100", "1"), ("LRANGE", "nokey", "0", "-1"), ("LRANGE", "l", "a", "1"),
    ("LLEN", "l"), ("LINDEX", "l", "0"), ("LINDEX", "l", "-1"), ("LINDEX", "l", "99"),
    ("LSET", "l", "1", "A"), ("LSET", "l", "99", "x"), ("LSET", "nokey", "0", "x"),
    ("LINSERT", "l", "BEFORE", "c", "bc"), ("LINSERT", "l", "AFTER", "e", "ee"),
    ("LINSERT", "l", "AFTER", "nothere", "x"), ("LINSERT", "l", "MIDDLE", "c", "x"),
    ("LINSERT", "nokey", "BEFORE", "c", "x"), ("LRANGE", "l", "0", "-1"),
    ("RPUSH", "l", "c", "c"), ("LREM", "l", "1", "c"), ("LREM", "l", "-1", "c"),
    ("LREM", "l", "0", "c"), ("LREM", "l", "0", "none"), ("LRANGE", "l", "0", "-1"),
    ("LPOS", "l", "e"), ("LPOS", "l", "none"), ("RPUSH", "p", "a", "b", "a", "c", "a"),
    ("LPOS", "p", "a", "RANK", "2"), ("LPOS", "p", "a", "RANK", "-1"),
    ("LPOS", "p", "a", "COUNT", "0"), ("LPOS", "p", "a", "COUNT", "2", "RANK", "-1"),
    ("LPOS", "p", "a", "MAXLEN", "3", "COUNT", "0"), ("LPOS", "p", "a", "RANK", "0"),
    ("LPOS", "p", "a", "COUNT", "-1"), ("LPOS", "p", "a", "MAXLEN", "-1"),
    ("LPOS", "nokey", "a"), ("LPOS", "nokey", "a", "COUNT", "1"), ("LPOS", "p", "a", "FOO", "1"),
    ("LPOP", "p"), ("RPOP", "p"), ("LPOP", "p", "2"), ("LPOP", "p", "0"), ("LPOP", "p", "-1"),
    ("LPOP", "nokey"), ("LPOP", "nokey", "2"), ("RPOP", "p", "10"), ("EXISTS", "p"),
    ("LPUSHX", "nokey", "a"), ("RPUSHX", "l", "tail"), ("LTRIM", "l", "1", "-2"),
    ("LRANGE", "l", "0", "-1"), ("LTRIM", "l", "5", "1"), ("EXISTS", "l"),
    ("RPUSH", "src", "1", "2", "3"), ("LMOVE", "src", "dst", "LEFT", "RIGHT"),
    ("LMOVE", "src", "dst", "RIGHT", "LEFT"), ("LRANGE", "dst", "0", "-1"),
    ("LMOVE", "src", "src", "LEFT", "RIGHT"), ("LRANGE", "src", "0", "-1"),
    ("LMOVE", "src", "dst", "UP", "LEFT"), ("RPOPLPUSH", "src", "dst"), ("EXISTS", "src"),
    ("RPOPLPUSH", "nokey", "dst"), ("SET", "str", "v"), ("LMOVE", "dst", "str", "LEFT", "LEFT"),
    ("LMOVE", "nokey", "str", "LEFT", "LEFT"), ("LPUSH", "str", "x"),
    ("RPUSH", "m1", "a", "b", "c"), ("LMPOP", "2", "nokey", "m1", "LEFT"),
    ("LMPOP", "2", "nokey", "m1", "RIGHT", "COUNT", "5"), ("LMPOP", "1", "m1", "LEFT"),
    ("LMPOP", "0", "m1", "LEFT"), ("LMPOP", "3", "m1", "LEFT"),
    ("LMPOP", "1", "m1", "SIDEWAYS"), ("LMPOP", "1", "m1", "LEFT", "COUNT", "0"),
    ("LMPOP", "1", "m1", "LEFT", "COUNT"), ("OBJECT", "ENCODING", "dst"),
]
SETS = [
    ("SADD", "s", "a", "b", "c"), ("SADD", "s", "a", "d"), ("SMEMBERS", "s"), ("SCARD", "s"),
    ("SISMEMBER", "s", "a"), ("SISMEMBER", "s", "z"), ("SMISMEMBER", "s", "a", "z", "d"),
    ("SREM", "s", "a", "z"), ("SREM", "nokey", "a"), ("SCARD", "nokey"),
    ("SADD", "t", "c", "d", "e"), ("SINTER", "s", "t"), ("SUNION", "s", "t"),
    ("SDIFF", "s", "t"), ("SDIFF", "t", "s", "nokey"), ("SINTER", "s", "nokey"),
    ("SINTERSTORE", "i", "s", "t"), ("SMEMBERS", "i"), ("SUNIONSTORE", "u", "s", "t"),
    ("SCARD", "u"), ("SDIFFSTORE", "d", "s", "t"), ("SMEMBERS", "d"),
    ("SINTERSTORE", "i", "s", "nokey"), ("EXISTS", "i"), ("SINTERCARD", "2", "s", "t"),
    ("SINTERCARD", "2", "u", "t", "LIMIT", "1"), ("SINTERCARD", "0", "s"),
    ("SINTERCARD", "3", "s", "t"), ("SINTERCARD", "2", "s", "t", "LIMIT", "-1"),
    ("SMOVE", "s", "t", "b"), ("SMOVE", "s", "t", "zz"), ("SMOVE", "nokey", "t", "a"),
    ("SMOVE", "s", "s", "c"), ("SMEMBERS", "t"), ("SPOP", "nokey"), ("SPOP", "nokey", "2"),
    ("SPOP", "s", "0"), ("SPOP", "s", "-1"), ("SRANDMEMBER", "nokey"),
    ("SRANDMEMBER", "nokey", "3"), ("SRANDMEMBER", "s", "0"), ("SSCAN", "t", "0"),
    ("SSCAN", "t", "0", "MATCH", "[a-c]"), ("SSCAN", "t", "x"),
    ("SET", "str", "v"), ("SADD", "str", "a"), ("SINTER", "s", "str"),
    ("SUNIONSTORE", "str", "s", "t"), ("TYPE", "str"), ("SMOVE", "t", "h", "c"),
    ("HSET", "h", "f", "v"), ("SMOVE", "t", "h", "c"), ("SADD", "ints", "3", "1", "2"),
    ("OBJECT", "ENCODING", "ints"), ("OBJECT", "ENCODING", "t"),
]
ZSETS = [
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("ZADD", "z", "1.5", "a"),
    ("ZADD", "z", "NX", "10", "a", "4", "d"), ("ZADD", "z", "XX", "5", "d", "6", "e"),
    ("ZADD", "z", "GT", "CH", "1", "d", "7", "c"), ("ZADD", "z", "LT", "CH", "0.5", "a"),
    ("ZADD", "z", "INCR", "2", "a"), ("ZADD", "z", "NX", "INCR", "2", "a"),
    ("ZADD", "z", "XX", "NX", "1", "a"), ("ZADD", "z", "GT", "LT", "1", "a"),
    ("ZADD", "z", "INCR", "1", "a", "2", "b"), ("ZADD", "z", "1"), ("ZADD", "z", "x", "a"),
    ("ZADD", "z", "nan", "a"), ("ZADD", "z", "-inf", "lo", "+inf", "hi"),
    ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZRANGE", "z", "1", "2"),
    ("ZRANGE", "z", "-2", "-1", "REV"), ("ZRANGE", "z", "(1", "5", "BYSCORE"),
    ("ZRANGE", "z", "5", "(1", "BYSCORE", "REV", "WITHSCORES"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"),
    ("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"), ("ZRANGE", "z", "[a", "[c", "BYLEX", "WITHSCORES"),
    ("ZRANGE", "z", "x", "1", "BYSCORE"), ("ZRANGE", "z", "a", "c", "BYLEX"),
    ("ZRANGE", "z", "0", "-1", "FOO"), ("ZRANGEBYSCORE", "z", "2", "+inf", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "2", "-1"),
    ("ZREVRANGEBYSCORE", "z", "+inf", "2"), ("ZREVRANGE", "z", "0", "2", "WITHSCORES"),
    ("ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"), ("ZRANGEBYLEX", "lex", "-", "+"),
    ("ZRANGEBYLEX", "lex", "(a", "[c"), ("ZREVRANGEBYLEX", "lex", "+", "(b"),
    ("ZRANGEBYLEX", "lex", "-", "+", "LIMIT", "1", "2"), ("ZLEXCOUNT", "lex", "[b", "+"),
    ("ZLEXCOUNT", "lex", "b", "+"), ("ZCOUNT", "z", "(1", "3"), ("ZCOUNT", "z", "-inf", "inf"),
    ("ZCOUNT", "z", "x", "1"), ("ZSCORE", "z", "a"), ("ZSCORE", "z", "none"),
    ("ZMSCORE", "z", "a", "none", "hi"), ("ZCARD", "z"), ("ZRANK", "z", "c"),
    ("ZREVRANK", "z", "c"), ("ZRANK", "z", "none"), ("ZINCRBY", "z", "2.5", "b"),
    ("ZINCRBY", "z", "1", "new"), ("ZINCRBY", "z", "x", "b"), ("ZINCRBY", "z", "-inf", "hi"),
    ("ZREM", "z", "new", "none"), ("ZPOPMIN", "z"), ("ZPOPMAX", "z", "2"), ("ZPOPMIN", "z", "0"),
    ("ZPOPMIN", "z", "-1"), ("ZPOPMIN", "nokey"), ("ZRANGESTORE", "dst", "z", "0", "1"),
    ("ZRANGE", "dst", "0", "-1", "WITHSCORES"), ("ZRANGESTORE", "dst", "z", "5", "6"),
    ("EXISTS", "dst"), ("ZRANGESTORE", "dst", "lex", "[b", "+", "BYLEX"),
    ("ZRANGE", "dst", "0", "-1"), ("ZADD", "a1", "1", "x", "2", "y"),
    ("ZADD", "a2", "3", "y", "4", "w"), ("SADD", "s1", "x", "w", "v"),
    ("ZUNIONSTORE", "out", "2", "a1", "a2"), ("ZRANGE", "out", "0", "-1", "WITHSCORES"),
    ("ZUNIONSTORE", "out", "3", "a1", "a2", "s1", "WEIGHTS", "2", "1", "10"),
    ("ZRANGE", "out", "0", "-1", "WITHSCORES"),
    ("ZINTERSTORE", "out", "2", "a1", "a2", "AGGREGATE", "MAX"),
    ("ZRANGE", "out", "0", "-1", "WITHSCORES"), ("ZDIFFSTORE", "out", "2", "a1", "a2"),
    ("ZRANGE", "out", "0", "-1", "WITHSCORES"), ("ZINTERSTORE", "out", "2", "a1", "nokey"),
    ("EXISTS", "out"), ("ZUNION", "2", "a1", "a2", "WITHSCORES"),
    ("ZINTER", "2", "a1", "s1", "AGGREGATE", "MIN", "WITHSCORES"), ("ZDIFF", "2", "a2", "a1"),
    ("ZUNIONSTORE", "out", "0", "a1"), ("ZUNIONSTORE", "out", "3", "a1"),
    ("ZUNION", "2", "a1", "a2", "WEIGHTS", "1"), ("ZUNION", "2", "a1", "a2", "WEIGHTS", "1", "x"),
    ("ZUNION", "2", "a1", "a2", "AGGREGATE", "AVG"), ("ZDIFF", "2", "a1", "a2", "WEIGHTS", "1", "1"),
    ("ZINTERCARD", "2", "a1", "a2"), ("ZINTERCARD", "2", "a1", "s1", "LIMIT", "1"),
    ("ZMPOP", "2", "nokey", "a1", "MIN"), ("ZMPOP", "1", "a2", "MAX", "COUNT", "5"),
    ("ZMPOP", "1", "nokey", "MIN"), ("ZMPOP", "1", "a1", "MIDDLE"),
    ("ZADD", "r", "1", "a", "2", "b", "3", "c", "4", "d"), ("ZREMRANGEBYRANK", "r", "0", "0"),
    ("ZREMRANGEBYSCORE", "r", "(2", "3"), ("ZREMRANGEBYLEX", "lex", "[a", "(c"),
    ("ZRANGE", "r", "0", "-1"), ("ZRANGE", "lex", "0", "-1"), ("ZRANDMEMBER", "nokey"),
    ("ZRANDMEMBER", "nokey", "2"), ("ZSCAN", "r", "0"), ("ZADD", "dec", "0.1", "m"),
    ("ZSCORE", "dec", "m"), ("ZSCAN", "dec", "0"), ("ZINCRBY", "dec", "0.2", "m"),
    ("SET", "str", "v"), ("ZADD", "str", "1", "a"), ("ZUNIONSTORE", "out", "1", "str"),
    ("ZRANGE", "str", "0", "-1"), ("OBJECT", "ENCODING", "r"), ("TYPE", "r"),
]



@pytest.mark.parametrize("script", [HASHES, LISTS, SETS, ZSETS],
                         ids=["hashes", "lists", "sets", "sorted-sets"])
def test_each_family_answers_as_redis_does(pair, script):
    ours, theirs = pair
    for command in script:
        a, b = both(ours, theirs, *command)
        assert a == b, command


# --- random streams ------------------------------------------------------------------

KEYS = ["k1", "k2", "k3", "k4"]
ITEMS = ["a", "b", "c", "d", "e"]


def _n(rng: random.Random, low: int = -6, high: int = 6) -> str:
    return str(rng.randint(low, high))


def _score(rng: random.Random) -> str:
    return rng.choice(["1", "2", "2.5", "-1", "0", "10", "-inf", "+inf", "3"])


def _bound(rng: random.Random) -> str:
    return rng.choice(["-inf", "+inf", "(1", "2", "(2.5", "0", "10", "(10"])


def _lex(rng: random.Random) -> str:
    return rng.choice(["-", "+", "[a", "(b", "[c", "(e"])


def random_command(rng: random.Random) -> tuple[str, ...]:
    k, k2, item = rng.choice(KEYS), rng.choice(KEYS), rng.choice(ITEMS)
    items = rng.sample(ITEMS, rng.randint(1, 3))
    side = rng.choice(["LEFT", "RIGHT"])
    choices: list[tuple[str, ...]] = [
        ("HSET", k, item, _n(rng)), ("HDEL", k, *items), ("HGETALL", k), ("HINCRBY", k, item,
         _n(rng)), ("HMGET", k, *items), ("HLEN", k), ("HSETNX", k, item, "x"),
        ("LPUSH", k, *items), ("RPUSH", k, *items), ("LPOP", k), ("RPOP", k, _n(rng, 0, 3)),
        ("LRANGE", k, _n(rng), _n(rng)), ("LTRIM", k, _n(rng), _n(rng)), ("LINDEX", k, _n(rng)),
        ("LREM", k, _n(rng, -2, 2), item), ("LINSERT", k, "BEFORE", item, "new"),
        ("LMOVE", k, k2, side, rng.choice(["LEFT", "RIGHT"])), ("LLEN", k),
        ("LPOS", k, item, "RANK", rng.choice(["1", "-1", "2"])), ("LSET", k, _n(rng, -3, 3), "s"),
        ("SADD", k, *items), ("SREM", k, *items), ("SMEMBERS", k), ("SCARD", k),
        ("SISMEMBER", k, item), ("SINTERSTORE", k, k2, rng.choice(KEYS)),
        ("SUNIONSTORE", k, k2, rng.choice(KEYS)), ("SDIFF", k, k2), ("SMOVE", k, k2, item),
        ("ZADD", k, _score(rng), item), ("ZADD", k, rng.choice(["NX", "XX", "GT", "LT"]),
         _score(rng), item), ("ZINCRBY", k, _score(rng), item), ("ZREM", k, *items),
        ("ZRANGE", k, _n(rng), _n(rng), "WITHSCORES"), ("ZRANGEBYSCORE", k, _bound(rng),
         _bound(rng)), ("ZREVRANGEBYSCORE", k, _bound(rng), _bound(rng), "WITHSCORES"),
        ("ZRANGEBYLEX", k, _lex(rng), _lex(rng)), ("ZCOUNT", k, _bound(rng), _bound(rng)),
        ("ZRANK", k, item), ("ZPOPMIN", k), ("ZPOPMAX", k, _n(rng, 0, 3)),
        ("ZREMRANGEBYRANK", k, _n(rng), _n(rng)), ("ZUNIONSTORE", k, "2", k2, rng.choice(KEYS)),
        ("ZINTERSTORE", k, "2", k2, rng.choice(KEYS), "AGGREGATE", rng.choice(["MIN", "MAX"])),
        ("ZSCORE", k, item), ("ZCARD", k),
        ("TYPE", k), ("EXISTS", k), ("DEL", k), ("SET", k, "str"), ("GET", k),
        ("EXPIRE", k, "1000"), ("TTL", k), ("RENAME", k, k2), ("COPY", k, k2, "REPLACE"),
    ]
    return rng.choice(choices)


def run_stream(ours: redis.Redis, theirs: redis.Redis, seed: int, length: int) -> list[str]:
    """Apply one seeded stream to both servers; the mismatches, described."""
    rng = random.Random(seed)
    mismatches = []
    for step in range(length):
        if rng.random() < 0.1:  # a transaction of a few commands
            batch = [random_command(rng) for _ in range(rng.randint(2, 4))]
            replies = []
            for client in (ours, theirs):
                pipe = client.pipeline(transaction=True)
                for command in batch:
                    pipe.execute_command(*command)
                replies.append([r if not isinstance(r, Exception) else ("error", str(r))
                                for r in pipe.execute(raise_on_error=False)])
            if replies[0] != replies[1]:
                mismatches.append(f"seed {seed} step {step}: MULTI {batch}: {replies}")
            continue
        command = random_command(rng)
        a, b = both(ours, theirs, *command)
        if a != b:
            mismatches.append(f"seed {seed} step {step}: {command}: ours {a!r}, redis {b!r}")
    return mismatches


def test_random_streams_of_mixed_types_answer_as_redis_does(pair):
    ours, theirs = pair
    for seed in range(6):
        ours.flushall()
        theirs.flushall()
        mismatches = run_stream(ours, theirs, seed, 400)
        assert not mismatches, "\n".join(mismatches[:5])


def test_pipelined_blocks_of_mixed_types_answer_as_redis_does(pair):
    """Runs of typed writes in a pipeline go to the service together (pipeline.py):
    every reply must still be the one redis-server gives the same pipeline."""
    ours, theirs = pair
    rng = random.Random(99)
    for block_number in range(60):
        block = [random_command(rng) for _ in range(rng.randint(2, 25))]
        replies = []
        for client in (ours, theirs):
            pipe = client.pipeline(transaction=False)
            for command in block:
                pipe.execute_command(*command)
            replies.append([("error", str(r)) if isinstance(r, Exception) else r
                            for r in pipe.execute(raise_on_error=False)])
        assert replies[0] == replies[1], (block_number, block)


PLANTED = textwrap.dedent("""
    import sys
    sys.path.insert(0, ROOT)
    from tests.support.source_only import use_source

    use_source()  # (a compiled module would not see the patch below)
    import raftkv.core.typed.lists as lists
    _right = lists._bounds

    def _bounds(start, stop, size):  # planted: the last element of every range is lost
        first, end = _right(start, stop, size)
        return first, max(first, end - 1)

    lists._bounds = _bounds
""")


def test_negative_control_the_random_streams_catch_a_planted_off_by_one(
        start_planted, real_redis):
    node = start_planted(PLANTED)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    try:
        mismatches = []
        for seed in range(6):
            ours.flushall()
            real_redis.flushall()
            mismatches += run_stream(ours, real_redis, seed, 400)
        assert any("LRANGE" in m or "LTRIM" in m for m in mismatches), mismatches[:3]
    finally:
        ours.close()


def _as_map(flat: list) -> dict:
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in zip(flat[::2], flat[1::2],
                                                                         strict=True)}


def test_command_info_and_docs_describe_every_command_as_redis_does(pair):
    ours, theirs = pair
    names = [row[0] for row in raw_reply(ours, "COMMAND")]
    assert len(names) >= 140
    for name in names:
        mine = raw_reply(ours, "COMMAND", "INFO", name)[0]
        reference = raw_reply(theirs, "COMMAND", "INFO", name)[0]
        # name, arity, movable keys or the key positions
        assert mine[:2] == reference[:2], name
        movable = b"movablekeys" in reference[2]
        assert (b"movablekeys" in mine[2]) == movable, name
        if not movable:
            assert mine[3:6] == reference[3:6], name
        doc = _as_map(_as_map(raw_reply(ours, "COMMAND", "DOCS", name))[name.decode()])
        reference_doc = _as_map(_as_map(raw_reply(theirs, "COMMAND", "DOCS", name))[name.decode()])
        assert doc["group"] == reference_doc["group"], name
        assert doc["summary"], name
        assert ("arguments" in doc) == ("arguments" in reference_doc), name


def test_random_members_vary_and_spop_takes_each_member_once(pair):
    """SRANDMEMBER, HRANDFIELD and ZRANDMEMBER (reads) draw afresh each call; SPOP
    (a write, seeded by its entry) still hands out every member exactly once."""
    ours, _ = pair
    members = [f"m{i}" for i in range(10)]
    ours.sadd("pool", *members)
    ours.hset("fields", mapping={m: 1 for m in members})
    ours.zadd("board", {m: i for i, m in enumerate(members)})
    for command in (("SRANDMEMBER", "pool"), ("HRANDFIELD", "fields"),
                    ("ZRANDMEMBER", "board")):
        assert len({ours.execute_command(*command) for _ in range(60)}) >= 6, command
    assert len(ours.execute_command("SRANDMEMBER", "pool", "-30")) == 30
    assert sorted(ours.execute_command("SRANDMEMBER", "pool", "20")) == sorted(
        m.encode() for m in members)
    popped = [ours.spop("pool") for _ in range(10)]
    assert sorted(popped) == sorted(m.encode() for m in members) and ours.spop("pool") is None
    assert popped != [m.encode() for m in members]  # not simply insertion order


RESP3_SCRIPT = [
    ("HSET", "h", "a", "1", "b", "2"), ("HGETALL", "h"), ("HSET", "one", "f", "v"),
    ("HRANDFIELD", "one", "-2", "WITHVALUES"),
    ("SADD", "s", "x"), ("SMEMBERS", "s"), ("SINTER", "s", "s"),
    ("ZADD", "z", "1.5", "m", "2", "n", "3", "o"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("ZSCORE", "z", "m"), ("ZMSCORE", "z", "m", "none"), ("ZINCRBY", "z", "0.25", "m"),
    ("ZPOPMIN", "z"), ("ZPOPMAX", "z", "1"), ("ZMPOP", "1", "z", "MIN"),
    ("ZUNION", "1", "z", "WITHSCORES"), ("ZADD", "z", "INCR", "1", "q"),
    ("LPOP", "nolist", "2"), ("LMPOP", "1", "nolist", "LEFT"), ("HGET", "h", "none"),
    ("ZSCAN", "z", "0"), ("HSCAN", "h", "0"),
]


def test_resp3_replies_of_the_types_are_those_of_redis(start_server, real_redis):
    node = start_server(resp=True)
    ours = redis.Redis(port=node.resp_port, protocol=3)
    theirs = redis.Redis(port=real_redis.connection_pool.connection_kwargs["port"], protocol=3)
    try:
        theirs.flushall()
        for command in RESP3_SCRIPT:
            a, b = both(ours, theirs, *command)
            assert a == b, command
    finally:
        ours.close()
        theirs.close()
