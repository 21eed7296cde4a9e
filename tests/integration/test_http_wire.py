"""The server on the wire: raw sockets for what HTTP clients will not send."""

from __future__ import annotations

import re
import socket
import time

import pytest


def exchange(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        return read_all(s, quiet_s=0.5)


def read_all(s: socket.socket, quiet_s: float) -> bytes:
    s.settimeout(quiet_s)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return out
        if not chunk:
            return out
        out += chunk


def statuses(raw: bytes) -> list[int]:
    """Status codes of the responses in ``raw``, in order (100 Continue left out)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw) if code != b"100"]


def put_request(key: str, value: str, extra: bytes = b"") -> bytes:
    body = b'{"value": "%s"}' % value.encode()
    return (b"PUT /v1/keys/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (key.encode(), len(body), extra, body))


def test_pipelined_requests_are_answered_in_order(server):
    batch = b"".join(put_request(f"pipe{i}", str(i)) for i in range(50))
    batch += b"".join(b"GET /v1/keys/pipe%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
    raw = exchange(server.port, batch)
    assert statuses(raw) == [201] * 50 + [200] * 50
    bodies = [part for part in raw.split(b"\r\n\r\n") if part.startswith(b'{"ok":true,"key":"pipe')]
    assert [b'"value":"%d"' % i in b for i, b in enumerate(bodies[50:])] == [True] * 50


def test_smuggling_with_content_length_and_transfer_encoding_is_refused(server):
    smuggled = (b"POST /v1/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"DELETE /v1/keys/victim HTTP/1.1\r\nHost: x\r\n\r\n")
    exchange(server.port, put_request("victim", "safe"))
    raw = exchange(server.port, smuggled)
    assert statuses(raw) == [400] and b"Connection: close" in raw
    assert statuses(exchange(server.port, b"GET /v1/keys/victim HTTP/1.1\r\nHost: x\r\n\r\n")) \
        == [200]  # the smuggled DELETE never ran


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", 431),
    (b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
    (b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     501),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
])
def test_malformed_requests_get_a_status_and_close(server, request_bytes, status):
    raw = exchange(server.port, request_bytes)
    assert statuses(raw) == [status]
    assert b'"ok":false' in raw and b"Connection: close" in raw


def test_body_over_the_limit_is_refused_before_it_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
        assert statuses(read_all(s, 1.0)) == [413]  # answered without reading 50 MB


def test_chunked_request_bodies_and_expect_100_continue(server):
    body = b'{"value": "chunked!"}'
    chunked = (b"PUT /v1/keys/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\n\r\n"
               b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:]))
    assert statuses(exchange(server.port, chunked)) == [201]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"PUT /v1/keys/ex HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        assert statuses(read_all(s, 0.5)) == [201]


def test_slowloris_is_closed_while_a_normal_client_is_served(start_server, tmp_path):
    config = tmp_path / "fast.toml"
    config.write_text("[http]\nheader_timeout_s = 2\nidle_timeout_s = 2\n")
    server = start_server("--config", str(config))
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"GET /health HTTP/1.1\r\n")
    started = time.monotonic()
    closed_after = None
    slow.settimeout(0.2)
    while time.monotonic() - started < 8:
        try:
            slow.sendall(b"X-a: b\r\n")  # one header line at a time, never finishing
            data = slow.recv(4096)
            if data == b"" or b"408" in data:
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            pass
        except OSError:
            closed_after = time.monotonic() - started
            break
        assert statuses(exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                 timeout_s=2)) == [200]
    slow.close()
    assert closed_after is not None and closed_after < 5


def test_idle_keep_alive_connections_are_closed(start_server, tmp_path):
    config = tmp_path / "idle.toml"
    config.write_text("[http]\nidle_timeout_s = 1\n")
    server = start_server("--config", str(config))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(read_all(s, 0.3)) == [200]
        s.settimeout(5)
        assert s.recv(100) == b""  # closed by the server within the idle timeout + sweep


def test_connections_beyond_the_cap_get_503(start_server, tmp_path):
    config = tmp_path / "cap.toml"
    config.write_text("[http]\nmax_connections = 5\n")
    server = start_server("--config", str(config))
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        time.sleep(0.2)
        raw = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(raw) == [503]
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert statuses(exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")) == [200]


def test_http_1_0_closes_after_the_response(server):
    raw = exchange(server.port, b"GET /livez HTTP/1.0\r\n\r\n")
    assert statuses(raw) == [200] and b"Connection: close" in raw


def test_an_h2c_upgrade_offer_is_answered_as_http_1_1(server):
    raw = exchange(server.port, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                                b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n"
                                b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [200, 200]
