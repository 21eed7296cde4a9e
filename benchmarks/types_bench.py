"""Hashes, lists, sets, sorted sets and transactions over the Redis protocol, against
redis-server: servers on core 0, load on core 1, both servers up for the whole round
and taking turns in short bursts (a ratio is the median pair's); first without fsync on
either side, then durable (``--fsync always`` against ``appendfsync always``).

* redis-benchmark's own type mix at ``-P 1`` and ``-P 16`` (LPUSH, RPUSH, LPOP, RPOP,
  SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE_100), 50 clients;
* MULTI / 4 x INCR / EXEC: 20 connections, each sending whole transactions one after
  another (a small asyncio client, the same for both servers);
* durable: LPUSH, SADD, HSET and ZADD at ``-P 16``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from benchmarks.common import (
    CLIENT_CPU,
    Row,
    bursts,
    in_turns,
    pinned,
)
from benchmarks.resp_bench import redis_benchmark, server_pair

TYPE_MIX = "lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100"
DURABLE_MIX = "lpush,sadd,hset,zadd"
TXN = b"".join(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
               for parts in [[b"MULTI"], *[[b"INCR", b"counter:%d" % i] for i in range(4)],
                             [b"EXEC"]])
TXN_REPLY_LINES = 1 + 4 + 1 + 4  # +OK, 4 x +QUEUED, *4, 4 integers


async def _transactions(port: int, seconds: float, connections: int) -> float:
    """Transactions per second for ``seconds``, each connection one at a time."""
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        buffer = b""
        while time.monotonic() < stop_at:
            writer.write(TXN)
            while buffer.count(b"\r\n") < TXN_REPLY_LINES:
                buffer += await reader.read(65536)
            buffer = buffer.split(b"\r\n", TXN_REPLY_LINES)[-1]
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.monotonic() - started)


def transactions_per_s(port: int, seconds: float) -> float:
    """Run the transaction client pinned to the load core, in its own process."""
    out = subprocess.run(pinned(CLIENT_CPU, [
        sys.executable, "-c", "import asyncio, sys; from benchmarks.types_bench import "
        "_transactions; print(asyncio.run(_transactions(int(sys.argv[1]), "
        "float(sys.argv[2]), 20)))", str(port), str(seconds)]),
        capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, seconds = bursts(quick)
    requests = 20_000 if quick else 40_000
    for r in range(rounds):
        for durable in (False, True):
            label = "durable" if durable else "no fsync"
            progress.step(f"types: starting raftkv and redis-server ({label}), round {r + 1}")
            with server_pair("types", durable) as (port, their_port):
                for b in range(count):
                    progress.step(f"types: {label} pair {b + 1}/{count}, round {r + 1}")
                    for system, server_port in in_turns(
                            b, [("raftkv", port), ("redis-server", their_port)]):
                        rows += _pair(system, server_port, durable, requests, r * count + b,
                                      seconds)
    return rows


def _pair(system: str, port: int, durable: bool, requests: int, burst: int, seconds: float
          ) -> list[Row]:
    """One burst of each workload against one server: without fsync the whole mix at
    ``-P 1`` and ``-P 16`` and the transactions; durable, the writes at ``-P 16``."""
    rows = []
    runs = [(16, DURABLE_MIX)] if durable else [(1, TYPE_MIX), (16, TYPE_MIX)]
    label = "durable" if durable else "no fsync"
    for pipeline, tests in runs:
        figures = redis_benchmark(port, pipeline, requests * pipeline // 2 if pipeline > 1
                                  else requests, tests)
        for name, value in figures.items():
            if name.endswith("_ms") or name.startswith("lpush (needed"):
                continue
            rows.append(Row("types", f"{name.split(' ')[0].upper()} -P {pipeline}, {label}",
                            system, value, "req/s", burst, extra={
                                "p50_ms": figures[f"{name}_p50_ms"],
                                "p99_ms": figures[f"{name}_p99_ms"]}))
    if not durable:
        rows.append(Row("types", "MULTI + 4 INCR + EXEC, no fsync", system,
                        transactions_per_s(port, seconds), "txn/s", burst))
    return rows
