"""What operating safely costs: GET throughput of a node with every request logged,
per-request metrics and a bearer token checked, against the same node with all three
off, in the same run (wrk, 50 connections, servers on core 0, wrk on core 1). Both
nodes run for the whole round and take turns in short bursts."""

from __future__ import annotations

import contextlib
import hashlib

import httpx

from benchmarks.common import Row, bursts, free_port, in_turns, raftkv_server, scratch_dir
from benchmarks.http_bench import _lua, wrk

TOKEN = "bench-token-0123456789"


def _config(work, secured: bool) -> str:
    path = work / "node.toml"
    if secured:
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        path.write_text(f'[auth]\n[[auth.tokens]]\nname = "bench"\nsha256 = "{digest}"\n'
                        f'role = "admin"\n')
    else:
        path.write_text("access_log = false\nrequest_metrics = false\n")
    return str(path)


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, seconds = bursts(quick)
    for r in range(rounds):
        progress.step(f"ops: starting both nodes, round {r + 1}")
        nodes = []
        with contextlib.ExitStack() as stack:
            for secured in (False, True):
                work = scratch_dir("ops")
                port = free_port()
                stack.enter_context(raftkv_server(
                    work / "data", port, "--config", _config(work, secured), "--resp-port", "0",
                    "--fsync", "no"))
                url = f"http://127.0.0.1:{port}"
                headers = {"Authorization": f"Bearer {TOKEN}"} if secured else {}
                with httpx.Client(base_url=url, headers=headers) as c:
                    for i in range(1000):
                        c.put(f"/v1/keys/bench{i:04d}", json={"value": "value"}).raise_for_status()
                script = _lua("get", "raftkv")
                if secured:
                    script = f"wrk.headers['Authorization'] = 'Bearer {TOKEN}'\n" + script
                nodes.append(("raftkv" if secured else "raftkv, all off", url, script, work))
            for b in range(count):
                progress.step(f"ops: pair {b + 1}/{count}, round {r + 1}")
                for system, url, script, work in in_turns(b, nodes):
                    figures = wrk(url, script, seconds, work)
                    rows.append(Row("ops", "GET with logging, metrics, auth", system,
                                    figures["rps"], "req/s", r * count + b, extra=figures))
    return rows
