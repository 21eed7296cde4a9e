"""raftkv's HTTP API against etcd 3.4's JSON gateway, with wrk, server and load
generator pinned to separate cores, alternating A, B, A, B.

Workloads (50 connections each):
* GET one of 1,000 preloaded keys: raftkv ``GET /v1/keys/{key}`` vs etcd
  ``POST /v3/kv/range``;
* PUT with ``--fsync no`` (raftkv alone: etcd always fsyncs);
* PUT durable: raftkv ``--fsync always`` vs etcd ``POST /v3/kv/put`` (etcd fsyncs its WAL).
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import httpx

from benchmarks.common import (
    CLIENT_CPU,
    SERVER_CPU,
    Proc,
    Row,
    free_port,
    pinned,
    raftkv_server,
    scratch_dir,
    wait_port,
)

KEYS = 1000
CONNECTIONS = 50


def _lua(kind: str, system: str) -> str:
    keys = [f"bench{i:04d}" for i in range(KEYS)]
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


def _measure(rows: list[Row], workload: str, system: str, r: int, url: str, script: str,
             seconds: int, work: Path) -> None:
    figures = wrk(url, script, seconds, work)
    rows.append(Row("http", workload, system, figures["rps"], "req/s", r, extra=figures))


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    seconds = 3 if quick else 10
    for r in range(rounds):
        for fsync in ("no", "always"):
            work = scratch_dir("http")
            port = free_port()
            progress.step(f"http: raftkv --fsync {fsync}, round {r + 1}")
            with raftkv_server(work / "data", port, "--fsync", fsync, "--resp-port", "0"):
                url = f"http://127.0.0.1:{port}"
                _preload_raftkv(url)
                if fsync == "no":
                    _measure(rows, "GET a key", "raftkv", r, url, _lua("get", "raftkv"),
                             seconds, work)
                    _measure(rows, "PUT, fsync no", "raftkv", r, url, _lua("put", "raftkv"),
                             seconds, work)
                else:
                    _measure(rows, "PUT, durable", "raftkv", r, url, _lua("put", "raftkv"),
                             seconds, work)
        work = scratch_dir("etcd")
        progress.step(f"http: etcd, round {r + 1}")
        proc, url = _etcd(work / "data")
        with proc:
            _preload_etcd(url)
            _measure(rows, "GET a key", "etcd", r, url, _lua("get", "etcd"), seconds, work)
            _measure(rows, "PUT, durable", "etcd", r, url, _lua("put", "etcd"), seconds, work)
    return rows
