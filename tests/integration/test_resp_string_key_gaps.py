"""The string and key commands added for the clients that need them (Flask-Caching's
SETEX, Django's TOUCH, ...): reply for reply against a real redis-server, errors
included. Deadlines are absolute timestamps far ahead, so the two servers agree to
the second."""

from __future__ import annotations

import pytest
import redis

from tests.integration.test_resp_server_commands import both

FAR_S = 4102444800  # 2100-01-01
SCRIPT = [
    # SETEX / PSETEX
    ("SETEX", "s", "100", "v"), ("TTL", "s"), ("GET", "s"), ("SETEX", "s", "0", "v"),
    ("SETEX", "s", "-1", "v"), ("SETEX", "s", "abc", "v"), ("SETEX", "s", "1"),
    ("PSETEX", "p", "100000", "w"), ("GET", "p"), ("PSETEX", "p", "0", "w"),
    ("SETEX", "s", "9223372036854775807", "v"),
    # GETEX
    ("SET", "g", "value"), ("GETEX", "g"), ("TTL", "g"), ("GETEX", "g", "EX", "100"),
    ("TTL", "g"), ("GETEX", "g", "PERSIST"), ("TTL", "g"),
    ("GETEX", "g", "EXAT", str(FAR_S)), ("EXPIRETIME", "g"),
    ("GETEX", "g", "PXAT", str(FAR_S * 1000 + 5)), ("PEXPIRETIME", "g"),
    ("GETEX", "g", "EX", "0"), ("GETEX", "g", "EX"), ("GETEX", "g", "PERSIST", "EX", "1"),
    ("GETEX", "g", "FOO"), ("GETEX", "missing", "EX", "10"), ("GETEX", "missing"),
    ("GETEX", "g", "EXAT", "1"), ("EXISTS", "g"),
    # GETRANGE / SUBSTR
    ("SET", "r", "Hello, World"), ("GETRANGE", "r", "0", "4"), ("GETRANGE", "r", "-5", "-1"),
    ("GETRANGE", "r", "-100", "100"), ("GETRANGE", "r", "5", "2"), ("GETRANGE", "r", "-1", "-5"),
    ("GETRANGE", "r", "100", "200"), ("GETRANGE", "r", "0", "-100"), ("SUBSTR", "r", "7", "11"),
    ("GETRANGE", "missing", "0", "10"), ("GETRANGE", "r", "a", "1"),
    ("SET", "e", ""), ("GETRANGE", "e", "0", "-1"),
    # TOUCH, EXPIRETIME, PEXPIRETIME
    ("TOUCH", "r", "r", "missing", "s"), ("TOUCH", "missing"),
    ("EXPIRETIME", "r"), ("EXPIRETIME", "missing"), ("EXPIREAT", "r", str(FAR_S)),
    ("EXPIRETIME", "r"), ("PEXPIRETIME", "r"), ("PEXPIREAT", "r", str(FAR_S * 1000 + 999)),
    ("EXPIRETIME", "r"), ("PEXPIRETIME", "r"),
    # OBJECT
    ("SET", "i", "12345"), ("SET", "m", "-9223372036854775808"), ("SET", "z", "007"),
    ("SET", "short", "x" * 44), ("SET", "long", "x" * 45),
    ("OBJECT", "ENCODING", "i"), ("OBJECT", "ENCODING", "m"), ("OBJECT", "ENCODING", "z"),
    ("OBJECT", "ENCODING", "short"), ("OBJECT", "ENCODING", "long"),
    ("OBJECT", "ENCODING", "missing"), ("OBJECT", "FREQ", "i"), ("OBJECT", "IDLETIME", "i"),
    ("OBJECT", "HELP"), ("OBJECT", "NOPE", "i"), ("OBJECT", "ENCODING"),
    # SETRANGE
    ("SET", "sr", "Hello World"), ("SETRANGE", "sr", "6", "Redis"), ("GET", "sr"),
    ("SETRANGE", "pad", "5", "x"), ("GET", "pad"), ("SETRANGE", "none", "3", ""),
    ("EXISTS", "none"), ("SETRANGE", "sr", "0", ""), ("SETRANGE", "sr", "-1", "x"),
    ("SETRANGE", "sr", "x", "y"), ("SETRANGE", "sr", "100", "tail"), ("STRLEN", "sr"),
    ("SETEX", "ttlkept", "1000", "abc"), ("SETRANGE", "ttlkept", "1", "Z"), ("TTL", "ttlkept"),
    ("SETRANGE", "sr", "9999999999", "x"),
    # INCRBYFLOAT
    ("SET", "f", "10.50"), ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "-5"),
    ("INCRBYFLOAT", "f", "5.0e3"), ("INCRBYFLOAT", "f", "2.0e-3"),
    ("INCRBYFLOAT", "newf", "3"), ("INCRBYFLOAT", "newf", "1.5"), ("GET", "newf"),
    ("INCRBYFLOAT", "f", "abc"), ("INCRBYFLOAT", "f", "nan"), ("INCRBYFLOAT", "f", " 1"),
    ("SET", "word", "abc"), ("INCRBYFLOAT", "word", "1"), ("SET", "big", "1e308"),
    ("INCRBYFLOAT", "big", "1e308"), ("INCRBYFLOAT", "f", "inf"), ("SET", "i", "17"),
    ("INCRBYFLOAT", "i", "0.25"), ("INCRBYFLOAT", "i", "-0.25"), ("GET", "i"),
    ("SET", "e", "1e20"), ("INCRBYFLOAT", "e", "1"),
    # RENAME / RENAMENX / COPY
    ("SET", "a", "1"), ("SET", "b", "2"), ("RENAME", "a", "c"), ("GET", "c"), ("EXISTS", "a"),
    ("RENAME", "missing", "x"), ("RENAMENX", "c", "b"), ("RENAMENX", "c", "d"), ("GET", "d"),
    ("RENAME", "d", "d"), ("RENAMENX", "d", "d"), ("RENAMENX", "missing", "y"),
    ("SETEX", "t", "500", "v"), ("RENAME", "t", "t2"), ("TTL", "t2"), ("RENAME", "t2", "b"),
    ("GET", "b"), ("TTL", "b"),
    ("COPY", "b", "b2"), ("GET", "b2"), ("TTL", "b2"), ("COPY", "b", "b2"),
    ("SET", "b", "new"), ("COPY", "b", "b2", "REPLACE"), ("GET", "b2"),
    ("COPY", "missing", "z"), ("COPY", "b", "b"), ("COPY", "b", "z", "DB", "0"),
    ("COPY", "b", "z2", "FOO"), ("COPY", "b", "z3", "DB"), ("GET", "z"),
    # WAIT (no replicas)
    ("WAIT", "0", "0"), ("WAIT", "1", "-1"), ("WAIT", "x", "0"),
]


def test_string_and_key_commands_answer_as_redis_does(start_server, real_redis):
    node = start_server(resp=True)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    try:
        for command in SCRIPT:
            a, b = both(ours, real_redis, *command)
            assert a == b, command
    finally:
        ours.close()


def test_randomkey_is_nil_on_an_empty_database_and_a_live_key_otherwise(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    try:
        assert r.randomkey() is None
        r.set("a", 1)
        r.set("b", 2)
        r.set("gone", 3, px=1)
        seen = {r.randomkey() for _ in range(50)}
        assert seen <= {b"a", b"b", b"gone"} and seen & {b"a", b"b"}
    finally:
        r.close()


@pytest.mark.parametrize("client_kind", ["redis-py"])
def test_flask_caching_style_setex_then_get_round_trips(start_server, client_kind):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    try:
        assert r.setex("cache:view", 60, b"<html>") is True
        assert r.get("cache:view") == b"<html>" and 0 < r.ttl("cache:view") <= 60
        assert r.touch("cache:view", "cache:nope") == 1
    finally:
        r.close()
