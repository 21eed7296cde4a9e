"""The Redis protocol front with the real redis Python client (sync and asyncio)."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import httpx
import pytest
import redis
import redis.asyncio


@pytest.fixture
def node(start_server):
    return start_server(resp=True)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(node, request):
    """The redis client speaking RESP2 and RESP3 (redis-py 8 defaults to 3)."""
    client = redis.Redis(port=node.resp_port, socket_timeout=10, protocol=request.param)
    yield client
    client.close()


def test_ping_echo_select_and_unknown_commands(r):
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.execute_command("SELECT", "0") in (True, b"OK")
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", "1")
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("FROB", "a", "b")
    assert str(err.value) == "unknown command 'FROB', with args beginning with: 'a' 'b' "
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("GET")
    assert str(err.value) == "wrong number of arguments for 'get' command"


def test_set_get_with_options(r):
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "w", nx=True) is None
    assert r.set("new", "x", xx=True) is None
    assert r.set("k", "w", xx=True) is True
    assert r.set("k", "z", get=True) == b"w"
    assert r.set("k", "y", ex=100) is True
    assert 98 <= r.ttl("k") <= 100
    assert r.set("k", "kept", keepttl=True) is True
    assert r.ttl("k") > 0
    assert r.set("k", "plain") is True and r.ttl("k") == -1  # SET drops an old TTL
    assert r.set("p", "x", px=1500) and 1000 < r.pttl("p") <= 1500
    assert r.set("a", "x", exat=int(time.time()) + 50) and 48 <= r.ttl("a") <= 50
    assert r.set("b", "x", pxat=int(time.time() * 1000) + 50_000) and r.ttl("b") > 40
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="invalid expire time in 'set' command"):
        r.execute_command("SET", "k", "v", "EX", "0")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.execute_command("SET", "k", "v", "EX", "soon")
    assert r.ttl("missing") == -2


def test_setnx_getset_getdel_del_unlink_exists(r):
    assert r.setnx("n", "1") is True and r.setnx("n", "2") is False
    assert r.getset("n", "3") == b"1" and r.get("n") == b"3"
    assert r.getdel("n") == b"3" and r.getdel("n") is None
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.exists("a", "b", "zz", "a") == 3
    assert r.delete("a", "b", "zz") == 2
    assert r.unlink("c") == 1 and r.exists("c") == 0


def test_counters(r):
    assert r.incr("c") == 1 and r.incrby("c", 10) == 11
    assert r.decr("c") == 10 and r.decrby("c", 5) == 5
    r.set("text", "abc")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("text")
    r.set("max", str(2**63 - 1))
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("max")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incrby("c", "x")


def test_append_strlen_type_mget_msetnx(r):
    assert r.append("s", "ab") == 2 and r.append("s", "cd") == 4
    assert r.strlen("s") == 4 and r.strlen("none") == 0
    assert r.type("s") == b"string" and r.type("none") == b"none"
    assert r.mget("s", "none") == [b"abcd", None]
    assert r.msetnx({"x1": "1", "x2": "2"}) is True
    assert r.msetnx({"x2": "9", "x3": "3"}) is False and r.get("x3") is None


def test_expire_family_and_persist(r):
    r.set("e", "1")
    assert r.expire("e", 100) is True and 99 <= r.ttl("e") <= 100
    assert r.pexpire("e", 5000) is True and r.pttl("e") <= 5000
    assert r.expireat("e", int(time.time()) + 200) is True and r.ttl("e") > 150
    assert r.pexpireat("e", int(time.time() * 1000) + 300_000) is True
    assert r.persist("e") is True and r.ttl("e") == -1 and r.persist("e") is False
    assert r.expire("missing", 10) is False
    r.set("gone", "1")
    assert r.expire("gone", -1) is True and r.get("gone") is None


def test_keys_expire_for_real(r):
    r.set("short", "1", px=200)
    assert r.get("short") == b"1"
    time.sleep(0.35)
    assert r.get("short") is None and r.exists("short") == 0


def test_scan_visits_every_key_once_with_match_and_count(r):
    names = {f"user:{i}".encode() for i in range(250)} | {b"other:1", b"other:2"}
    r.mset({n: b"v" for n in names})
    seen = list(r.scan_iter(count=17))
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))
    users = list(r.scan_iter(match="user:1*", count=5))
    assert sorted(users) == sorted(n for n in names if n.startswith(b"user:1"))
    assert sorted(r.keys("other:*")) == [b"other:1", b"other:2"]
    assert sorted(r.keys("other:[12]")) == [b"other:1", b"other:2"]
    assert r.keys("user:?9") == sorted(r.keys("user:?9"))  # sorted, as our keyspace is
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.scan(cursor=123456789)


def test_scan_sees_keys_present_throughout_even_while_others_change(r):
    stable = {f"s{i:03d}".encode() for i in range(100)}
    r.mset({k: b"1" for k in stable})
    cursor, seen, i = 0, [], 0
    while True:
        cursor, batch = r.scan(cursor=cursor, count=7)
        seen += batch
        r.set(f"new{i}", "x")  # churn while scanning
        r.delete(f"new{i - 1}")
        i += 1
        if cursor == 0:
            break
    found = [k for k in seen if k in stable]
    assert sorted(found) == sorted(stable) and len(found) == len(stable)


def test_dbsize_info_client_command(r):
    r.mset({"a": 1, "b": 2})
    assert r.dbsize() == 2
    info = r.info()
    assert info["db0"]["keys"] == 2 and info["role"] == "master"
    assert "total_commands_processed" in r.info("stats")
    assert r.client_setname("me") is True and r.client_getname() in ("me", b"me")
    assert isinstance(r.client_id(), int)
    assert r.command_count() >= 40
    table = r.command()
    assert table["get"]["arity"] == 2 and table["set"]["arity"] == -3


def test_config_get_shows_the_running_configuration_and_refuses_immutable_sets(r, node):
    assert r.config_get("appendfsync") == {"appendfsync": "always"}
    assert r.config_get("maxmemory*") == {"maxmemory": "0", "maxmemory-policy": "noeviction",
                                          "maxmemory-samples": "5"}
    assert r.config_get("PORT")["port"] == str(node.resp_port)  # names ignore case
    assert r.config_get("no-such-parameter") == {}
    assert r.config_get("save", "databases") == {"save": "", "databases": "1"}
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("appendfsync", "no")
    with pytest.raises(redis.ResponseError, match=r"Unknown option .* - 'bogus'"):
        r.config_set("bogus", "1")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'FROB'"):
        r.execute_command("CONFIG", "FROB")


def test_config_resetstat_starts_the_counters_again(r):
    r.set("k", "v")
    r.get("k")
    r.get("missing")
    assert r.info("stats")["keyspace_hits"] >= 1
    assert r.config_resetstat() is True
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 0 and stats["keyspace_misses"] == 0


def test_hello_2_and_3(node):
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"HELLO 2\r\nGET missing\r\nHELLO 3\r\nGET missing\r\nHELLO 4\r\n")
        time.sleep(0.3)
        data = s.recv(4096)
    assert data.startswith(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
    assert b"$5\r\nproto\r\n:2\r\n" in data and b"%7\r\n" in data
    assert b"$-1\r\n" in data and b"_\r\n" in data  # nil in RESP2, then in RESP3
    assert data.endswith(b"-NOPROTO unsupported protocol version\r\n")


def test_hello_options_are_checked_like_client_setname(node):
    # Both were found by the atheris target (tests/fuzz): the first closed the
    # connection without a reply, the second made CLIENT LIST fail.
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"*3\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$2\r\n\xd9\xff\r\n"
                  b"*4\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$7\r\nSETNAME\r\n$3\r\na\xffb\r\n"
                  b"*1\r\n$4\r\nPING\r\n")
        time.sleep(0.3)
        data = s.recv(4096)
    assert data.startswith(b"-ERR Syntax error in HELLO option")
    assert b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n" \
        in data
    assert data.endswith(b"+PONG\r\n")


def test_pipeline_of_10000_commands(r):
    pipe = r.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"p{i}", i)
    for i in range(5000):
        pipe.get(f"p{i}")
    replies = pipe.execute()
    assert replies[:5000] == [True] * 5000
    assert replies[5000:] == [str(i).encode() for i in range(5000)]


def test_a_pipelined_get_sees_the_set_before_it(r):
    pipe = r.pipeline(transaction=False)
    pipe.set("seq", "1").get("seq").set("seq", "2").get("seq").incr("n").get("n")
    assert pipe.execute() == [True, b"1", True, b"2", 1, b"1"]


def _random_blocks(rng, count: int) -> list[list[tuple]]:
    """Small pipelines, each mostly one kind: a run of SETs, a run of GETs, or a mix.
    Each arrives in one read on the server, so its runs are batched there."""
    blocks = []
    for b in range(count):
        kind = rng.choice(["sets", "gets", "mixed"])
        block: list[tuple] = []
        for i in range(rng.randint(1, 12)):
            key = f"b{rng.randrange(16)}"  # many keys: GETs of absent keys are common
            roll = rng.random() if kind == "mixed" else (0.1 if kind == "sets" else 0.5)
            if kind == "sets" and rng.random() < 0.1:
                roll = rng.choice([0.82, 0.97])  # an invalid or non-plain SET inside a run
            if roll < 0.4:
                block.append(("set", key, f"v{b}-{i}"))
            elif roll < 0.75:
                block.append(("get", key))
            elif roll < 0.85:
                block.append(("set", "k" * 2000, "x"))  # over the key limit: an error
            elif roll < 0.9:
                block.append(("incr", key))  # an error unless the value is a number
            elif roll < 0.95:
                block.append(("delete", key))
            else:
                block.append(("set", key, "7", 100))  # SET ... EX: not a plain SET
        blocks.append(block)
    return blocks


def _run_block(client, ops: list[tuple], pipelined: bool) -> list:
    if not pipelined:
        out = []
        for op in ops:
            try:
                out.append(_call(client, op))
            except redis.ResponseError as exc:
                out.append(("error", str(exc)))
        return out
    pipe = client.pipeline(transaction=False)
    for op in ops:
        _call(pipe, op)
    return [("error", str(r)) if isinstance(r, redis.ResponseError) else r
            for r in pipe.execute(raise_on_error=False)]


def _call(target, op: tuple):
    if op[0] == "set":
        return target.set(op[1], op[2], ex=op[3]) if len(op) == 4 else target.set(op[1], op[2])
    return getattr(target, op[0])(*op[1:])


@pytest.mark.parametrize("seed", range(3))
def test_pipelined_runs_answer_exactly_as_one_command_at_a_time(node, seed):
    """Runs of plain SETs and GETs in a pipeline are batched (one log entry, one read);
    every reply must be what the same commands get sent one by one."""
    blocks = _random_blocks(random.Random(seed), 60)
    client = redis.Redis(port=node.resp_port, socket_timeout=30)
    keys = {op[1] for block in blocks for op in block if len(op[1]) <= 1024}
    client.delete(*keys)
    one_by_one = [_run_block(client, block, pipelined=False) for block in blocks]
    client.delete(*keys)
    assert [_run_block(client, block, pipelined=True) for block in blocks] == one_by_one
    client.close()


def test_a_batched_run_of_sets_keeps_versions(node, r):
    pipe = r.pipeline(transaction=False)
    pipe.set("vv", "1").set("vv", "2").set("ww", "3")
    assert pipe.execute() == [True, True, True]
    entry = httpx.get(f"{node.url}/v1/keys/vv").json()
    assert (entry["value"], entry["version"]) == ("2", 2)


def test_asyncio_client(node):
    async def run() -> list:
        client = redis.asyncio.Redis(port=node.resp_port)
        try:
            await client.set("async", "yes")
            results = await asyncio.gather(*(client.incr("ctr") for _ in range(50)))
            return [await client.get("async"), sorted(results)]
        finally:
            await client.aclose()

    value, counts = asyncio.run(run())
    assert value == b"yes" and counts == list(range(1, 51))


def test_pubsub_subscribe_publish_psubscribe(r, node):
    sub = redis.Redis(port=node.resp_port, protocol=r.get_connection_kwargs().get(
        "protocol", 2)).pubsub()
    sub.subscribe("news")
    sub.psubscribe("sport.*")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    assert sub.get_message(timeout=2)["type"] == "psubscribe"
    assert r.publish("news", "hello") == 1
    assert r.publish("sport.tennis", "ace") == 1
    assert r.publish("nobody", "x") == 0
    msg = sub.get_message(timeout=2)
    assert (msg["type"], msg["channel"], msg["data"]) == ("message", b"news", b"hello")
    msg = sub.get_message(timeout=2)
    assert (msg["type"], msg["pattern"], msg["channel"], msg["data"]) == (
        "pmessage", b"sport.*", b"sport.tennis", b"ace")
    sub.unsubscribe("news")
    assert sub.get_message(timeout=2)["type"] == "unsubscribe"
    assert r.publish("news", "again") == 0
    sub.close()


def test_commands_refused_in_subscribe_mode(node):
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"SUBSCRIBE ch\r\nGET x\r\nPING\r\n")
        time.sleep(0.3)
        data = s.recv(4096)
    assert b"Can't execute 'get'" in data and b"pong" in data


def test_inline_commands_and_protocol_errors(node):
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"SET inline value\r\nGET inline\r\nPING hello\r\n")
        time.sleep(0.2)
        assert s.recv(4096) == b"+OK\r\n$5\r\nvalue\r\n$5\r\nhello\r\n"
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"*1\r\n$-5\r\n")
        time.sleep(0.2)
        data = s.recv(4096)
        assert data.startswith(b"-ERR Protocol error")
        assert s.recv(100) == b""  # closed
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"*2\r\n$3\r\nGET\r\n:1\r\n")
        time.sleep(0.2)
        assert s.recv(4096).startswith(b"-ERR Protocol error")


def test_a_bulk_over_the_value_limit_is_refused_before_it_is_sent(start_server):
    node = start_server("--max-value-bytes", "1000", resp=True)
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n")  # no value sent yet
        assert s.recv(4096) == b"-ERR Protocol error: invalid bulk length\r\n"
        assert s.recv(4096) == b""  # and closed


def test_quit_replies_ok_and_closes(node):
    with socket.create_connection(("127.0.0.1", node.resp_port)) as s:
        s.sendall(b"QUIT\r\n")
        assert s.recv(100) == b"+OK\r\n"
        assert s.recv(100) == b""


def test_values_cross_between_resp_and_http(r, node):
    r.set("from-resp", "r-value")
    assert httpx.get(node.url + "/v1/keys/from-resp").json()["value"] == "r-value"
    httpx.put(node.url + "/v1/keys/from-http", json={"value": "h-value", "ttlMs": 60000})
    assert r.get("from-http") == b"h-value" and 50 < r.ttl("from-http") <= 60


def test_keyspace_notifications(start_server, tmp_path):
    config = tmp_path / "notify.toml"
    config.write_text("keyspace_notifications = true\n")
    node = start_server("--config", str(config), resp=True)
    client = redis.Redis(port=node.resp_port)
    sub = client.pubsub()
    sub.psubscribe("__key*@0__:*")
    assert sub.get_message(timeout=2)["type"] == "psubscribe"
    client.set("watched", "1")
    client.set("brief", "1", px=100)
    client.delete("watched")
    with client.pipeline() as pipe:  # one transaction: an event per command, as in Redis
        pipe.set("t1", "a").rename("t1", "t2").incrbyfloat("f", 1.5).setrange("t2", 1, "b")
        pipe.execute()
    events = []
    deadline = time.time() + 5
    while time.time() < deadline and (b"expired", b"brief") not in events:
        msg = sub.get_message(timeout=0.5)
        if msg and msg["type"] == "pmessage" and msg["channel"].startswith(b"__keyevent"):
            events.append((msg["channel"].split(b":", 1)[1], msg["data"]))
    assert (b"set", b"watched") in events and (b"del", b"watched") in events
    assert (b"expired", b"brief") in events
    for event in ((b"set", b"t1"), (b"rename_from", b"t1"), (b"rename_to", b"t2"),
                  (b"incrbyfloat", b"f"), (b"setrange", b"t2")):
        assert event in events, event
    sub.close()
    client.close()


def test_udp_ping(server):
    node = server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"PING", ("127.0.0.1", node.port))
        data, _ = s.recvfrom(2048)
        s.sendto(b"something else", ("127.0.0.1", node.port))
        with pytest.raises(TimeoutError):
            s.settimeout(0.3)
            s.recvfrom(2048)
    import json

    status = json.loads(data)
    assert status == {"id": "n1", "state": "leader", "term": 1, "leaderId": "n1"}
    assert len(data) < 512
