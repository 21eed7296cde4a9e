"""The HTTP suite's floor server answers like raftkv's GET does, byte for byte in
size, so raftkv's GET throughput can be read against it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from benchmarks.bare_http import REPLY

from tests.support.node import ROOT, free_port


def _raw_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_the_floor_answers_every_request_with_a_reply_the_size_of_raftkvs(start_server):
    node = start_server()
    httpx.put(node.url + "/v1/keys/bench0000", json={"value": "value"}).raise_for_status()
    ours = _raw_get(node.port, "/v1/keys/bench0000")
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_http", str(port)], cwd=ROOT)
    try:
        for _ in range(100):
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                    replies = [client.get(f"/v1/keys/k{i}") for i in range(3)]  # keep-alive
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("the floor server never answered")
    finally:
        floor.kill()
        floor.wait()
    assert [r.status_code for r in replies] == [200] * 3
    assert replies[0].json()["value"] == "value"
    # the Date header is the same length in both; request ids may differ by a few bytes
    assert abs(len(REPLY) - len(ours.replace(b"Connection: close\r\n", b""))) <= 4, ours
