"""The server family (INFO, CONFIG, CLIENT, FLUSHDB/FLUSHALL, TIME) and Redis 7's EXPIRE
options: reply for reply against redis-server where the answer is not about the node
itself, and by their effect where it is (a CONFIG SET must change what the node does)."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest
import redis

from tests.integration.test_operations import TOKENS, auth_config


def both(ours: redis.Redis, theirs: redis.Redis, *command: object) -> tuple[object, object]:
    replies = []
    for client in (ours, theirs):
        try:
            replies.append(client.execute_command(*command))
        except redis.ResponseError as exc:
            replies.append(("error", str(exc)))
    return replies[0], replies[1]



EXPIRE_SCRIPT = [
    ("EXPIRE", "k", "10", "NX", "XX"), ("EXPIRE", "k", "10", "GT", "LT"),
    ("EXPIRE", "k", "10", "FOO"), ("EXPIRE", "k", "abc", "FOO"), ("EXPIRE", "k", "abc"),
    ("EXPIRE", "k", "9223372036854775807"), ("PEXPIRE", "k", "9223372036854775807"),
    ("EXPIREAT", "k", "9223372036854775807"), ("PEXPIREAT", "k", "9223372036854770000"),
    ("SET", "k", "v"), ("PEXPIREAT", "k", "9223372036854770000"),
    ("EXPIRE", "k", "100", "NX"), ("EXPIRE", "k", "100", "xx"), ("TTL", "k"),
    ("EXPIRE", "k", "100", "XX", "LT"), ("EXPIRE", "k", "50", "XX", "LT"), ("TTL", "k"),
    ("EXPIRE", "k", "40", "GT"), ("EXPIRE", "k", "60", "gt"), ("TTL", "k"),
    ("PERSIST", "k"), ("EXPIRE", "k", "60", "GT"), ("EXPIRE", "k", "60", "LT"), ("TTL", "k"),
    ("EXPIRE", "k", "60", "NX", "NX"), ("PEXPIREAT", "k", "-9223372036854770000"),
    ("EXISTS", "k"), ("SET", "n", "1"), ("EXPIRE", "n", "-5"), ("EXISTS", "n"),
    ("EXPIRE", "missing", "10", "LT"), ("EXPIRE", "k"),
]


def test_expire_options_and_extreme_deadlines_answer_as_redis_does(pair):
    ours, theirs = pair
    for command in EXPIRE_SCRIPT:
        a, b = both(ours, theirs, *command)
        assert a == b, command


def test_server_command_errors_answer_as_redis_does(pair):
    ours, theirs = pair
    for command in [
        ("CONFIG", "SET", "notify-keyspace-events", "Q"),
        ("CONFIG", "SET", "notify-keyspace-events", "KEA"), ("CONFIG", "GET", "notify-*"),
        ("CONFIG", "SET", "notify-keyspace-events", "Ex$"), ("CONFIG", "GET", "notify-*"),
        ("CONFIG", "SET", "notify-keyspace-events", "gK"), ("CONFIG", "GET", "notify-*"),
        ("CONFIG", "SET", "notify-keyspace-events", ""), ("CONFIG", "GET", "notify-*"),
        ("CONFIG", "SET", "maxmemory-policy", "foo"),
        ("CONFIG", "SET", "maxmemory-policy", "ALLKEYS-LRU"), ("CONFIG", "GET", "maxmemory-p*"),
        ("CONFIG", "SET", "maxmemory", "10q"), ("CONFIG", "SET", "maxmemory", "10mb"),
        ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "0"),
        ("CONFIG", "SET", "timeout", "-1"), ("CONFIG", "SET", "maxclients", "0"),
        ("CONFIG", "SET", "timeout", "abc"),
        ("CONFIG", "SET", "client-query-buffer-limit", "10"),
        ("CONFIG", "SET", "timeout", "5", "timeout", "6"),
        ("CONFIG", "SET", "timeout", "5", "bogus", "6"), ("CONFIG", "SET", "timeout"),
        ("CONFIG", "SET", "timeout", "0"), ("CONFIG", "GET", "timeout"),
        ("CONFIG", "SET", "daemonize", "no"), ("CONFIG", "GET", "no-such-*"),
        ("CONFIG", "GET"), ("CONFIG", "FROB"), ("CONFIG", "RESETSTAT"),
        ("CLIENT", "LIST", "ID", "abc"), ("CLIENT", "LIST", "ID", "99999"),
        ("CLIENT", "LIST", "TYPE", "foo"), ("CLIENT", "LIST", "FOO"),
        ("CLIENT", "LIST", "TYPE", "master"), ("CLIENT", "KILL", "1.2.3.4:5"),
        ("TIME", "x"), ("FLUSHDB", "FOO"), ("FLUSHDB", "SYNC", "X"), ("FLUSHALL", "X"),
        ("SET", "a", "1"), ("FLUSHDB", "ASYNC"), ("DBSIZE",), ("SET", "a", "1"),
        ("FLUSHALL", "sync"), ("DBSIZE",),
    ]:
        a, b = both(ours, theirs, *command)
        assert a == b, command


def test_info_has_the_fields_clients_and_harnesses_read(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, protocol=2)
    r.set("k", "v")
    r.get("k")
    info = r.info()
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["redis_version"])  # parseable, as in Redis
    assert info["raftkv_version"] and info["redis_git_sha1"] in (0, "00000000")
    assert info["arch_bits"] in (32, 64) and info["cluster_enabled"] == 0
    for field in ("used_cpu_sys", "used_cpu_user", "used_cpu_sys_children",
                  "used_cpu_user_children"):
        assert isinstance(info[field], float)
    assert info["used_cpu_user"] > 0
    assert info["tcp_port"] == node.resp_port and info["db0"]["keys"] == 1
    assert "cmdstat_get" not in info  # commandstats is not in the default sections
    stats = r.info("commandstats")
    assert stats["cmdstat_get"]["calls"] >= 1 and stats["cmdstat_set"]["calls"] >= 1
    with pytest.raises(redis.ResponseError):
        r.execute_command("GET")  # wrong arity: rejected before running
    assert r.info("commandstats")["cmdstat_get"]["rejected_calls"] == 1
    assert "cmdstat_info" in r.info("everything") and "used_cpu_sys" in r.info("all")
    assert set(r.info("server", "cpu")) >= {"redis_version", "used_cpu_sys"}
    r.config_resetstat()
    assert "cmdstat_get" not in r.info("commandstats")
    r.close()


def test_client_list_filters_by_id_and_type(start_server):
    node = start_server(resp=True)
    a = redis.Redis(port=node.resp_port, protocol=2)
    b = socket.create_connection(("127.0.0.1", node.resp_port), timeout=5)
    b.sendall(b"CLIENT SETNAME bee\r\nCLIENT ID\r\n")
    time.sleep(0.2)
    reply = b.recv(100)
    assert reply.startswith(b"+OK\r\n:")
    a_id, b_id = a.client_id(), int(reply[6:].strip())
    listed = a.client_list(client_id=[b_id])
    assert [int(c["id"]) for c in listed] == [b_id] and listed[0]["name"] == "bee"
    assert {int(c["id"]) for c in a.client_list()} >= {a_id, b_id}
    assert listed[0]["laddr"] == f"127.0.0.1:{node.resp_port}" and listed[0]["cmd"] == "client"
    assert a.client_list(_type="pubsub") == []
    assert {int(c["id"]) for c in a.client_list(_type="normal")} >= {a_id, b_id}
    assert int(a.client_info()["id"]) == a_id
    assert a.execute_command("CLIENT", "KILL", "ID", str(b_id)) == 1
    assert b.recv(100) == b""  # closed
    assert b_id not in {int(c["id"]) for c in a.client_list()}
    b.close()
    a.close()


def test_config_set_changes_eviction_at_run_time(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, protocol=2)
    with pytest.raises(redis.ResponseError, match="must be one of the following"):
        r.config_set("maxmemory-policy", "lru")
    assert r.config_set("maxmemory-policy", "allkeys-random") and \
        r.config_set("maxmemory", "400kb")
    for i in range(2000):
        r.set(f"key:{i}", "x" * 200)
    used = r.info("memory")["used_memory"]
    assert used <= 400 * 1024 * 1.02 and r.info("stats")["evicted_keys"] > 0  # (sampled)
    assert r.dbsize() < 2000
    r.config_set("maxmemory-policy", "noeviction")
    with pytest.raises(redis.ResponseError, match="used memory > 'maxmemory'"):
        for i in range(2000):
            r.set(f"more:{i}", "x" * 200)
    r.config_set("maxmemory", "0")
    assert r.set("more:x", "fits now")
    r.close()


def test_config_set_turns_keyspace_notifications_on_and_off(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, protocol=2)
    sub = redis.Redis(port=node.resp_port, protocol=2).pubsub()
    sub.psubscribe("__key*__:*")
    assert sub.get_message(timeout=2)["type"] == "psubscribe"
    r.set("quiet", "1")
    assert sub.get_message(timeout=0.3) is None  # off by default
    r.config_set("notify-keyspace-events", "K$")  # string events, keyspace channel only
    r.set("loud", "1")
    r.delete("loud")  # generic: not asked for
    message = sub.get_message(timeout=2)
    assert (message["channel"], message["data"]) == (b"__keyspace@0__:loud", b"set")
    assert sub.get_message(timeout=0.3) is None
    r.config_set("notify-keyspace-events", "")
    r.set("quiet", "2")
    assert sub.get_message(timeout=0.3) is None
    sub.close()
    r.close()


def test_config_set_timeout_and_maxclients_take_effect(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, protocol=2)
    r.config_set("maxclients", "2")
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as second:
        second.sendall(b"PING\r\n")
        assert second.recv(100) == b"+PONG\r\n"
        with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as third:
            assert third.recv(100) == b"-ERR max number of clients reached\r\n"
    r.config_set("maxclients", "100")
    r.config_set("timeout", "1")
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server for idling
        assert 0.9 < time.monotonic() - started < 4
    r.close()


def test_flushdb_is_an_admin_write_that_survives_a_restart(start_server, tmp_path):
    node = start_server("--config", auth_config(tmp_path), resp=True)
    admin = redis.Redis(port=node.resp_port, password=TOKENS["admin"], protocol=2)
    writer = redis.Redis(port=node.resp_port, password=TOKENS["writer"], protocol=2)
    writer.set("app/a", "1")
    with pytest.raises(redis.ResponseError, match="no permissions to run the 'flushdb' command"):
        writer.flushdb()
    assert admin.flushall() is True and admin.dbsize() == 0
    writer.set("app/after", "2")
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    assert httpx.get(f"{node.url}/v1/keys/app/a", headers=headers).status_code == 404
    node.kill()
    node.start()
    admin = redis.Redis(port=node.resp_port, password=TOKENS["admin"], protocol=2)
    assert admin.keys("*") == [b"app/after"]  # the flush was logged, and so was what came after
    admin.close()
    writer.close()


def test_time_is_the_node_s_clock(start_server):
    r = redis.Redis(port=start_server(resp=True).resp_port, protocol=2)
    seconds, micros = r.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 2 and 0 <= micros < 1_000_000
    r.close()
