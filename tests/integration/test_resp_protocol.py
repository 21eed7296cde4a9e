"""The RESP front against hostile and malformed input, side by side with redis-server:
the same bytes, the same reply, the same hang-up; and no input on one connection may
stall another."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest
import redis

from tests.integration.test_operations import TOKENS, auth_config

# redis-server's proto-max-bulk-len at raftkv's default --max-value-bytes (1 MiB), so a
# bulk over the value limit is refused by both.
REDIS_ARGS = ("--proto-max-bulk-len", "1mb")


def exchange(port: int, packet: bytes, wait_s: float = 0.5) -> tuple[bytes, bool]:
    """Send ``packet``; what came back within ``wait_s`` and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(packet)
        s.settimeout(wait_s)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
            return data, True
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True


CASES = {
    "huge multibulk count": b"*3000000000\r\n",
    "negative multibulk count is skipped": b"*-10\r\nPING\r\n",
    "bulk length of 2 GB": b"*1\r\n$2000000000\r\n",
    "bulk length of 600 MB": b"*1\r\n$600000000\r\n",
    "bulk length over the value limit": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n",
    "not a bulk inside an array": b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
    "bulk length not a number": b"*1\r\n$abc\r\n",
    "negative bulk length": b"*2\r\n$4\r\nECHO\r\n$-1\r\n",
    "multibulk count not a number": b"*x\r\nPING\r\n",
    "unbalanced quotes are not executed": b'SET quoted "a b\r\nGET quoted\r\n',
    "text after a closing quote": b"SET 'a'b c\r\n",
    "inline quotes and escapes": b'ECHO "a\\x41\\n" \'it\\\'s\'\r\n',
    "empty lines between commands": b"\r\n\r\nPING\r\n\r\n",
    "inline after multibulk in one packet": b"*1\r\n$4\r\nPING\r\nECHO x\r\n",
    "commands before a broken one run": b"*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n*1\r\nX\r\n",
    "endless inline line": b"GET " + b"k" * 70_000,
    "endless multibulk count": b"*" + b"1" * 70_000,
    "endless bulk length": b"*1\r\n$" + b"1" * 70_000,
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_gets_redis_s_reply_and_hang_up(name, start_server, start_redis):
    ours = start_server(resp=True).resp_port
    theirs = start_redis(*REDIS_ARGS).connection_pool.connection_kwargs["port"]
    packet = CASES[name]
    assert exchange(ours, packet) == exchange(theirs, packet)


def test_more_arguments_than_the_limit_are_refused_up_front(start_server, tmp_path):
    """Redis 7 accepts a count up to 2^31-1 and waits for the arguments; raftkv refuses
    one over ``resp.max_multibulk_len`` (1M, as Redis did before 7) at once."""
    port = start_server(resp=True).resp_port
    assert exchange(port, b"*1048576\r\n") == (b"", False)  # the limit itself: it waits
    assert exchange(port, b"*1048577\r\n") == (
        b"-ERR Protocol error: invalid multibulk length\r\n", True)
    config = tmp_path / "few.toml"
    config.write_text("[resp]\nmax_multibulk_len = 3\n")
    few = start_server("--config", str(config), resp=True).resp_port
    assert exchange(few, b"*3\r\n$4\r\nECHO\r\n$1\r\na\r\n$1\r\nb\r\n")[0].startswith(b"-ERR wrong")
    assert exchange(few, b"*4\r\n")[0] == b"-ERR Protocol error: invalid multibulk length\r\n"


def _ping_latencies_ms(port: int, stop: threading.Event, out: list[float]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        while not stop.is_set():
            started = time.perf_counter()
            s.sendall(b"PING\r\n")
            assert s.recv(64) == b"+PONG\r\n"
            out.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)


@pytest.mark.parametrize("attack", [b"*3000000000\r\n", b"*1\r\n$2000000000\r\n",
                                    b"*1000000\r\n" + b"$1\r\nx\r\n" * 300_000])
def test_one_client_cannot_stall_the_others(start_server, attack):
    """While one connection sends a huge declared size (or a million-argument command)
    and goes away, PINGs on another stay fast; the attacker gets the error and is cut."""
    port = start_server(resp=True).resp_port
    latencies: list[float] = []
    stop = threading.Event()
    pinger = threading.Thread(target=_ping_latencies_ms, args=(port, stop, latencies))
    pinger.start()
    try:
        time.sleep(0.3)
        for _ in range(3):
            reply, closed = exchange(port, attack, wait_s=1.0)
            if attack.startswith(b"*1000000\r\n"):
                assert reply == b"" and not closed  # legal so far: it waits for the rest
            else:
                assert reply.startswith(b"-ERR Protocol error: invalid") and closed
        time.sleep(0.5)  # whatever freeing the attacker's state costs happens here
    finally:
        stop.set()
        pinger.join()
    assert len(latencies) > 100
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 50, f"PING p99 {p99:.1f} ms, max {max(latencies):.1f} ms"


def test_unauthenticated_clients_get_redis_s_small_limits(start_server, tmp_path, start_redis):
    node = start_server("--config", auth_config(tmp_path), resp=True)
    reference = start_redis(*REDIS_ARGS)
    reference.config_set("requirepass", "pw")  # (its own connection stays authenticated)
    theirs = reference.connection_pool.connection_kwargs["port"]
    for packet in (b"*100\r\n", b"*1\r\n$100000\r\n", b"*1\r\n$100000000\r\n"):
        assert exchange(node.resp_port, packet) == exchange(theirs, packet)
    # after AUTH, in the same packet, the full limits apply
    big = b"*12\r\n$4\r\nMGET\r\n" + b"$1\r\nk\r\n" * 11
    auth = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(TOKENS["admin"]), TOKENS["admin"].encode())
    reply, closed = exchange(node.resp_port, auth + big)
    assert reply == b"+OK\r\n*11\r\n" + b"$-1\r\n" * 11 and not closed


def test_a_query_buffer_over_its_limit_closes_that_client_only(start_server, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text("[resp]\nquery_buffer_limit_bytes = 2097152\n")
    port = start_server("--config", str(config), resp=True).resp_port
    bystander = redis.Redis(port=port, protocol=2)
    assert bystander.ping()
    # three 1 MB arguments of one MSET: over 2 MiB before the command is complete
    header = b"*7\r\n$4\r\nMSET\r\n" + (b"$1\r\na\r\n$1000000\r\n" + b"x" * 1_000_000 + b"\r\n") * 2
    reply, closed = exchange(port, header + b"$1\r\nb\r\n$1000000\r\n" + b"x" * 300_000)
    assert reply == b"" and closed  # as Redis: no reply, the connection is closed
    assert bystander.ping() and bystander.get("a") is None
    bystander.close()
