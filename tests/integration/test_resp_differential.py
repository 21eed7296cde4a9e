"""The same random command sequences through raftkv and a real redis-server, replies
compared one by one (TTL values within a tolerance); plus redis-cli against raftkv.
(``real_redis`` is a redis-server process: tests/conftest.py.)"""

from __future__ import annotations

import random
import socket
import subprocess

import redis

KEYS = [b"a", b"b", b"c", b"num", b"k:1", b"k:2"]
VALUES = [b"", b"1", b"-3", b"x", b"hello", b"9223372036854775807", b"12"]


def random_command(rng: random.Random) -> list[bytes]:
    key, other, value = rng.choice(KEYS), rng.choice(KEYS), rng.choice(VALUES)
    n = str(rng.choice([-5, 0, 1, 3, 100])).encode()
    options = [[], [b"NX"], [b"XX"], [b"GET"], [b"EX", b"100"], [b"PX", b"0"], [b"KEEPTTL"],
               [b"NX", b"GET"], [b"EX", b"10", b"KEEPTTL"], [b"BOGUS"]]
    return rng.choice([
        [b"SET", key, value, *rng.choice(options)], [b"GET", key], [b"SETNX", key, value],
        [b"GETSET", key, value], [b"GETDEL", key], [b"DEL", key, other], [b"UNLINK", key],
        [b"EXISTS", key, other, key], [b"INCR", key], [b"DECR", key], [b"INCRBY", key, n],
        [b"DECRBY", key, b"x"], [b"APPEND", key, value], [b"STRLEN", key], [b"TYPE", key],
        [b"MGET", key, other], [b"MSET", key, value, other, value], [b"MSETNX", key, value],
        [b"EXPIRE", key, n], [b"PEXPIRE", key, b"100000"], [b"PERSIST", key], [b"TTL", key],
        [b"PTTL", key], [b"EXPIREAT", key, b"1"], [b"ECHO", value or b"e"], [b"PING"],
        [b"EXPIRE", key, n, rng.choice([b"NX", b"XX", b"GT", b"LT", b"xx", b"BAD"])],
        [b"PEXPIRE", key, b"100000", *rng.sample([b"XX", b"LT", b"GT"], 2)],
        [b"PEXPIREAT", key, rng.choice([b"9223372036854770000", b"-9223372036854770000"])],
        [b"GET"], [b"SET", key], [b"NOSUCHCMD", key], [b"SELECT", b"0"], [b"DBSIZE"],
    ])


def normalise(command: list[bytes], reply: object) -> object:
    if command[0] == b"PTTL" and isinstance(reply, int) and reply > 0:
        return ("pttl>0", round(reply / 1000))  # clocks differ by a few ms
    if isinstance(reply, redis.ResponseError):
        return ("error", str(reply))
    return reply


def test_random_sequences_match_redis_reply_for_reply(start_server, real_redis):
    node = start_server(resp=True)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    compared = 0
    for seed in range(6):
        rng = random.Random(seed)
        for key in KEYS:
            ours.delete(key)
            real_redis.delete(key)
        pipe_ours = ours.pipeline(transaction=False)
        pipe_real = real_redis.pipeline(transaction=False)
        commands = [random_command(rng) for _ in range(150)]
        for command in commands:
            pipe_ours.execute_command(*command)
            pipe_real.execute_command(*command)
        got = pipe_ours.execute(raise_on_error=False)
        want = pipe_real.execute(raise_on_error=False)
        for command, a, b in zip(commands, got, want, strict=True):
            assert normalise(command, a) == normalise(command, b), (seed, command, a, b)
            compared += 1
    assert compared == 900
    ours.close()


def test_redis_cli_ping_set_get_scan(start_server):
    node = start_server(resp=True)

    def cli(*args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(node.resp_port), *args],
                              capture_output=True, text=True, timeout=10, check=True).stdout

    assert cli("PING") == "PONG\n"
    assert cli("SET", "greeting", "hello") == "OK\n"
    assert cli("GET", "greeting") == "hello\n"
    for i in range(30):
        cli("SET", f"scan:{i}", str(i))
    keys = cli("--scan", "--pattern", "scan:*").split()
    assert sorted(keys) == sorted(f"scan:{i}" for i in range(30))


def _exchange(port: int, packet: bytes, lines: int) -> bytes:
    """Send one packet; read until ``lines`` CRLF-ended lines have come back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(packet)
        data = b""
        while data.count(b"\r\n") < lines:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_inline_and_multibulk_commands_in_one_packet_as_redis_reads_them(start_server,
                                                                         real_redis):
    ours = start_server(resp=True).resp_port
    theirs = real_redis.connection_pool.connection_kwargs["port"]
    packet = (b"*3\r\n$3\r\nSET\r\n$3\r\nmix\r\n$2\r\nv1\r\nGET mix\r\n\r\n"
              b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n")
    replies = [_exchange(port, packet, 6) for port in (ours, theirs)]
    assert replies[0] == replies[1] == b"+OK\r\n$2\r\nv1\r\n$2\r\nhi\r\n+PONG\r\n"


def test_redis_benchmark_runs_without_warnings(start_server):
    node = start_server(resp=True)
    run = subprocess.run(["redis-benchmark", "-p", str(node.resp_port), "-n", "2000", "-c", "4",
                          "-t", "set,get", "--csv"], capture_output=True, text=True, timeout=60,
                         check=True)
    assert "WARNING" not in run.stderr + run.stdout  # it reads CONFIG GET save/appendonly
    tests = [line.split(",")[0].strip('"') for line in run.stdout.splitlines()[1:]]
    assert tests == ["SET", "GET"]
