"""Latency against offered load: ``raftkv bench`` in open loop at rising rates against
one node (GET, 50 connections), so the knee - where queueing starts - is visible.
Open loop measures from each request's scheduled time: past the knee, p99 climbs
instead of the offered load quietly dropping."""

from __future__ import annotations

import asyncio

from benchmarks.common import Row, free_port, raftkv_server, scratch_dir
from raftkv.loadgen import Bench, BenchConfig

RATES = (2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000)


def run(quick: bool, rounds: int, progress) -> list[Row]:
    import uvloop

    rows: list[Row] = []
    seconds = 2.0 if quick else 5.0
    work = scratch_dir("knee")
    port = free_port()
    with raftkv_server(work / "data", port, "--fsync", "no", "--resp-port", "0"):
        for r in range(rounds):
            for rate in RATES:
                progress.step(f"knee: GET at {rate:,}/s, round {r + 1}")
                config = BenchConfig(f"http://127.0.0.1:{port}", "get", keys=1000,
                                     connections=50, duration_s=seconds, rate=rate)
                result = uvloop.run(Bench(config).run(progress=False))
                summary = result.summary()
                latency = summary["latency_ms"]
                rows.append(Row("knee", f"GET offered {rate:,}/s", "raftkv",
                                summary["throughput_rps"], "req/s", r, extra={
                                    "offered_rps": rate, "p50_ms": latency["p50"],
                                    "p99_ms": latency["p99"], "errors": summary["errors"]}))
        asyncio.set_event_loop(None)
    return rows
