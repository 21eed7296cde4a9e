"""Signals and crashes of a real node: drain on SIGTERM, nothing acked lost on kill -9."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx


def test_sigterm_drains_and_exits_0_keeping_every_write(start_server, tmp_path):
    server = start_server()
    with httpx.Client(base_url=server.url) as c:
        for i in range(100):
            assert c.put(f"/v1/keys/k{i}", json={"value": str(i)}).status_code == 201
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert "drained" in server.logs() and "stopped" in server.logs()
    again = start_server(data_dir=server.data_dir)
    with httpx.Client(base_url=again.url) as c:
        assert [c.get(f"/v1/keys/k{i}").json()["value"] for i in range(100)] == [
            str(i) for i in range(100)]


def test_a_slow_in_flight_request_completes_during_sigterm_and_new_ones_are_refused(
        start_server):
    server = start_server()
    # A request whose body is still arriving when SIGTERM lands is in flight: it is
    # finished and answered (with Connection: close), then the process exits 0.
    body = b'{"value": "late"}'
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"PUT /v1/keys/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5]))
    time.sleep(0.2)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    except OSError:
        refused = True
    s.sendall(body[5:])
    response = s.recv(4096)
    s.close()
    assert response.startswith(b"HTTP/1.1 201") and b"Connection: close" in response
    assert refused
    assert server.wait() == 0


def test_kill_9_under_http_load_loses_no_acknowledged_write(start_server):
    server = start_server()
    acked: list[str] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            i = 0
            while not stop.is_set():
                key = f"w{w}-{i}"
                try:
                    if c.put(f"/v1/keys/{key}", json={"value": key}).status_code == 201:
                        acked.append(key)
                except httpx.HTTPError:
                    return
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 100
    again = start_server(data_dir=server.data_dir)
    with httpx.Client(base_url=again.url) as c:
        missing = [k for k in acked if c.get(f"/v1/keys/{k}").status_code != 200]
    assert missing == []
