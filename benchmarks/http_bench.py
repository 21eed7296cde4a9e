"""raftkv's HTTP API against etcd 3.4's JSON gateway, with wrk, server and load
generator pinned to separate cores. raftkv and etcd run side by side for a round and
take turns in short bursts (A, B, A, B...); a ratio is the median of the pairs'.

Workloads (50 connections each):
* GET one of 1,000 preloaded keys: raftkv ``GET /v1/keys/{key}`` vs etcd
  ``POST /v3/kv/range``;
* the same raftkv GET bursts against the floor, a bare asyncio + httptools server
  answering a fixed reply of the same size (``benchmarks/bare_http.py``);
* PUT with ``--fsync no`` (raftkv alone: etcd always fsyncs);
* PUT durable: raftkv ``--fsync always`` vs etcd ``POST /v3/kv/put`` (etcd fsyncs its WAL).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx

from benchmarks.common import (
    CLIENT_CPU,
    SERVER_CPU,
    Proc,
    Row,
    bursts,
    free_port,
    in_turns,
    pinned,
    raftkv_server,
    scratch_dir,
    wait_port,
)

KEYS = 1000
CONNECTIONS = 50
FLOOR_WORKLOAD = "GET a key, against the floor"


def _lua(kind: str, system: str) -> str:
    keys = [f"bench{i:04d}" for i in range(KEYS)]
    if kind == "txn":
        return _txn_lua(keys, system)
    if system == "raftkv":
        if kind == "get":
            paths = ", ".join(f'"/v1/keys/{k}"' for k in keys)
            return (f"local p = {{{paths}}}\nlocal i = 0\n"
                    "request = function()\n  i = i + 1\n"
                    "  return wrk.format('GET', p[(i % #p) + 1])\nend\n")
        paths = ", ".join(f'"/v1/keys/{k}"' for k in keys)
        return (f"local p = {{{paths}}}\nlocal i = 0\n"
                "wrk.headers['Content-Type'] = 'application/json'\n"
                "request = function()\n  i = i + 1\n"
                "  return wrk.format('PUT', p[(i % #p) + 1], nil, '{\"value\": \"' .. i .. '\"}')\n"
                "end\n")
    b64 = [base64.b64encode(k.encode()).decode() for k in keys]
    table = ", ".join(f'"{k}"' for k in b64)
    if kind == "get":
        return (f"local k = {{{table}}}\nlocal i = 0\n"
                "request = function()\n  i = i + 1\n"
                "  return wrk.format('POST', '/v3/kv/range', nil, '{\"key\": \"' .. k[(i % #k) + 1]"
                " .. '\"}')\nend\n")
    return (f"local k = {{{table}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n"
            "  return wrk.format('POST', '/v3/kv/put', nil, '{\"key\": \"' .. k[(i % #k) + 1]"
            " .. '\", \"value\": \"dmFsdWU=\"}')\nend\n")


def _txn_lua(keys: list[str], system: str) -> str:
    """A transaction of 4 ops: a compare (the first key's value is not "x") and puts to
    four neighbouring keys - raftkv's POST /v1/txn, etcd's POST /v3/kv/txn."""
    if system == "raftkv":
        path, names = "/v1/txn", keys
        body = {"compare": [{"key": "@a", "target": "value", "op": "!=", "value": "x"}],
                "success": [{"op": "put", "key": f"@{k}", "value": "@i"} for k in "abcd"]}
    else:
        path, names = "/v3/kv/txn", [base64.b64encode(k.encode()).decode() for k in keys]
        body = {"compare": [{"key": "@a", "target": "VALUE", "result": "NOT_EQUAL",
                             "value": "eA=="}],
                "success": [{"request_put": {"key": f"@{k}", "value": "dmFsdWU="}}
                            for k in "abcd"]}
    # the JSON as a Lua string, its @a ... @d and @i spliced in per request
    lua_body = "'" + re.sub(r"@([abcdi])", r"' .. \1 .. '", json.dumps(body)) + "'"
    table = ", ".join(f'"{name}"' for name in names)
    return (f"local k = {{{table}}}\nlocal i = 0\n"
            "wrk.headers['Content-Type'] = 'application/json'\n"
            "request = function()\n  i = i + 1\n"
            "  local a, b = k[(i % #k) + 1], k[((i + 1) % #k) + 1]\n"
            "  local c, d = k[((i + 2) % #k) + 1], k[((i + 3) % #k) + 1]\n"
            f"  return wrk.format('POST', '{path}', nil, {lua_body})\nend\n")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, script: str, seconds: int, workdir: Path) -> dict[str, float]:
    path = workdir / "script.lua"
    path.write_text(script)
    out = subprocess.run(pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s",
                                             "--latency", "-s", str(path), url]),
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    figures = {"rps": rps}
    for pct in ("50", "90", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if match:
            figures[f"p{pct}_ms"] = float(match.group(1)) * _UNITS[match.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return figures


def _preload_raftkv(url: str) -> None:
    with httpx.Client(base_url=url) as c:
        for i in range(KEYS):
            c.put(f"/v1/keys/bench{i:04d}", json={"value": "value"})


def _preload_etcd(url: str) -> None:
    with httpx.Client(base_url=url) as c:
        for i in range(KEYS):
            key = base64.b64encode(f"bench{i:04d}".encode()).decode()
            c.post("/v3/kv/put", json={"key": key, "value": "dmFsdWU="})


def _etcd(data: Path) -> tuple[Proc, str]:
    client, peer = free_port(), free_port()
    cmd = pinned(SERVER_CPU, [
        "etcd", "--data-dir", str(data), "--name", "bench",
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--log-level", "error"])
    proc = Proc(cmd, env={"GOMAXPROCS": "1"}, log=data.parent / "etcd.log")
    wait_port(client)
    return proc, f"http://127.0.0.1:{client}"


def _floor(work: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(pinned(SERVER_CPU, [sys.executable, "-m", "benchmarks.bare_http", str(port)]),
                log=work / "bare-http.log")
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def _measure(rows: list[Row], workload: str, system: str, pair: int, url: str, script: str,
             seconds: int, work: Path) -> Row:
    figures = wrk(url, script, seconds, work)
    row = Row("http", workload, system, figures["rps"], "req/s", pair, extra=figures)
    rows.append(row)
    return row


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, seconds = bursts(quick)
    for r in range(rounds):
        progress.step(f"http: starting raftkv (fsync no, always) and etcd, round {r + 1}")
        work = scratch_dir("http")
        fast_port, durable_port = free_port(), free_port()
        with raftkv_server(work / "fast", fast_port, "--fsync", "no", "--resp-port", "0"), \
                raftkv_server(work / "durable", durable_port, "--fsync", "always",
                              "--resp-port", "0"):
            fast, durable = f"http://127.0.0.1:{fast_port}", f"http://127.0.0.1:{durable_port}"
            _preload_raftkv(fast)
            _preload_raftkv(durable)
            with contextlib.ExitStack() as stack:
                proc, etcd = _etcd(work / "etcd")
                stack.enter_context(proc)
                floor_proc, floor = _floor(work)
                stack.enter_context(floor_proc)
                _preload_etcd(etcd)
                for b in range(count):
                    pair = r * count + b
                    progress.step(f"http: GET, PUT pairs {b + 1}/{count}, round {r + 1}")
                    for system in in_turns(pair, ["raftkv", "etcd", "floor"]):
                        if system == "raftkv":  # the floor's pair shares raftkv's burst
                            ours = _measure(rows, "GET a key", "raftkv", pair, fast,
                                            _lua("get", "raftkv"), seconds, work)
                            rows.append(dataclasses.replace(ours, workload=FLOOR_WORKLOAD))
                        elif system == "etcd":
                            _measure(rows, "GET a key", "etcd", pair, etcd, _lua("get", "etcd"),
                                     seconds, work)
                        else:
                            _measure(rows, FLOOR_WORKLOAD, "bare asyncio+httptools", pair,
                                     floor, _lua("get", "raftkv"), seconds, work)
                    for system, url in in_turns(pair, [("raftkv", durable), ("etcd", etcd)]):
                        _measure(rows, "PUT, durable", system, pair, url, _lua("put", system),
                                 seconds, work)
                    _measure(rows, "PUT, fsync no", "raftkv", pair, fast, _lua("put", "raftkv"),
                             seconds, work)
    return rows
