"""raftkv's Redis protocol front against redis-server with redis-benchmark:
servers on core 0, redis-benchmark on core 1, 50 clients, SET and GET. Both servers
run for the whole round and take turns in short bursts (a ratio is the median pair's).

Pairs compared: ``--fsync no`` vs ``appendonly no``; ``--fsync always`` vs
``appendonly yes, appendfsync always``; at ``-P 16`` and ``-P 1``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

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


def redis_benchmark(port: int, pipeline: int, requests: int,
                    tests: str = "set,get", extra: Sequence[str] = ()) -> dict[str, float]:
    out = subprocess.run(pinned(CLIENT_CPU, [
        "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-P", str(pipeline),
        "-t", tests, "-r", "100000", "--csv", *extra]), capture_output=True, text=True,
        check=True).stdout
    rows = list(csv.reader(io.StringIO(out)))
    header, body = rows[0], rows[1:]
    figures: dict[str, float] = {}
    for row in body:
        record = dict(zip(header, row, strict=False))
        name = record["test"].lower()
        figures[name] = float(record["rps"])
        figures[f"{name}_p50_ms"] = float(record.get("p50_latency_ms", 0) or 0)
        figures[f"{name}_p99_ms"] = float(record.get("p99_latency_ms", 0) or 0)
    return figures


def _redis(data: Path, durable: bool) -> tuple[Proc, int]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(data)]
    args += ["--appendonly", "yes", "--appendfsync", "always"] if durable else [
        "--appendonly", "no"]
    proc = Proc(pinned(SERVER_CPU, args), log=data / "redis.log")
    wait_port(port)
    return proc, port


@contextlib.contextmanager
def server_pair(suite: str, durable: bool) -> Iterator[tuple[int, int]]:
    """raftkv and redis-server side by side, durable (``--fsync always`` against
    ``appendfsync always``) or not: their RESP ports, both stopped at the end."""
    work = scratch_dir(suite)
    port = free_port()
    ours = raftkv_server(work / "data", port + 1 if port < 65000 else port - 1,
                         "--resp-port", str(port), "--fsync", "always" if durable else "no")
    wait_port(port)
    theirs, their_port = _redis(work, durable)
    with ours, theirs:
        yield port, their_port


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, _ = bursts(quick)
    scale = 1 if quick else 2  # requests per burst: about a second each here
    requests = {16: 200_000 * scale, 1: 30_000 * scale}
    durable_requests = {16: 40_000 * scale, 1: 8_000 * scale}
    for r in range(rounds):
        for durable in (False, True):
            label = "durable" if durable else "no fsync"
            progress.step(f"resp: starting raftkv and redis-server ({label}), round {r + 1}")
            with server_pair("resp", durable) as (port, their_port):
                for b in range(count):
                    progress.step(f"resp: {label} pair {b + 1}/{count}, round {r + 1}")
                    # a pair's two bursts run back to back, one operation at a time
                    # (SETs first: the GETs then find the keys)
                    for pipeline in (16, 1):
                        n = (durable_requests if durable else requests)[pipeline]
                        for op in ("set",) if durable else ("set", "get"):
                            for system, server_port in in_turns(
                                    b, [("raftkv", port), ("redis-server", their_port)]):
                                figures = redis_benchmark(server_port, pipeline, n, op)
                                rows.append(Row(
                                    "resp", f"{op.upper()} -P {pipeline}, {label}", system,
                                    figures[op], "req/s", r * count + b,
                                    extra={"p50_ms": figures[f"{op}_p50_ms"],
                                           "p99_ms": figures[f"{op}_p99_ms"]}))
    return rows
