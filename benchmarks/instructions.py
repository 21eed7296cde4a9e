"""Instructions per request through a whole front, counted by callgrind: the
repeatable measure on a noisy machine, for deciding whether a code change helps.

A node runs in-process (``--fsync no``, a real data directory) with 50 connections
whose transports only count writes. Each round feeds every connection one batch of
requests and turns the event loop until all of them are answered. The figure is the
difference between a run of N rounds and a run of none, over the requests of N rounds,
so start-up and imports cancel out.

    python -m benchmarks.instructions                 # every case
    python -m benchmarks.instructions --only resp-set-p1,http-get

Needs valgrind (``make instructions`` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

CONNECTIONS = 50
KEYS = 1000
# case -> (front, request kind, requests per batch, rounds counted)
CASES: dict[str, tuple[str, str, int, int]] = {
    "http-get": ("http", "get", 1, 40),
    "http-get-ops": ("http", "get", 1, 40),  # access log and request metrics on
    "http-put": ("http", "put", 1, 40),
    "resp-get-p1": ("resp", "get", 1, 100),
    "resp-set-p1": ("resp", "set", 1, 100),
    "resp-get-p16": ("resp", "get", 16, 20),
    "resp-set-p16": ("resp", "set", 16, 20),
    "resp-lpush-p1": ("resp", "lpush", 1, 100),
    "resp-lpush-p16": ("resp", "lpush", 16, 20),
    "resp-lpush-onekey-p1": ("resp", "lpush-onekey", 1, 100),
    "resp-lpush-onekey-p16": ("resp", "lpush-onekey", 16, 20),  # one list, redis-benchmark's
    "resp-zadd-p16": ("resp", "zadd", 16, 20),  # one sorted set, as redis-benchmark's
    "resp-sadd-p16": ("resp", "sadd", 16, 20),  # one set of random members, as its SADD
    "resp-hset-p16": ("resp", "hset", 16, 20),  # one hash of random fields, as its HSET
    "resp-hset-p1": ("resp", "hset", 1, 100),
    "resp-spop-p1": ("resp", "spop", 1, 100),  # random members of a set of 100,000
    "resp-spop-p16": ("resp", "spop", 16, 20),
    "resp-zadd-p1": ("resp", "zadd", 1, 100),
    "resp-lrange-p16": ("resp", "lrange", 16, 4),  # LRANGE_100's: 100 of a list's 600 items
}


class _CountingTransport:
    writes = 0
    failures = 0  # replies that are errors: the driver refuses to count those

    def write(self, data: bytes) -> None:
        _CountingTransport.writes += 1
        _CountingTransport.failures += data.startswith((b"HTTP/1.1 4", b"HTTP/1.1 5", b"-"))

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def close(self) -> None:
        pass


def _http_request(kind: str, key: bytes) -> bytes:
    if kind == "get":
        return b"GET /v1/keys/%s HTTP/1.1\r\nHost: x\r\n\r\n" % key
    body = b'{"value":"%s"}' % (b"y" * 64)
    return (b"PUT /v1/keys/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (key, len(body), body))


def _resp_request(kind: str, key: bytes) -> bytes:
    if kind == "zadd":  # (``key``: "score member" as random numbers, redis-benchmark's)
        score, member = key.split()
        member = b"element:%s" % member
        return b"*4\r\n$4\r\nZADD\r\n$6\r\nmyzset\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(score), score, len(member), member)
    if kind == "sadd":  # (``key``: "score member", of which SADD takes the member)
        member = b"element:%s" % key.split()[1]
        return b"*3\r\n$4\r\nSADD\r\n$5\r\nmyset\r\n$%d\r\n%s\r\n" % (len(member), member)
    if kind == "hset":
        field = b"element:%s" % key.split()[1]
        return b"*4\r\n$4\r\nHSET\r\n$6\r\nmyhash\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (
            len(field), field)
    if kind == "get":
        return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    if kind == "lpush":  # (to lists of their own: the keys above hold strings)
        return b"*3\r\n$5\r\nLPUSH\r\n$%d\r\nl%s\r\n$3\r\nxxx\r\n" % (len(key) + 1, key)
    if kind == "spop":
        return b"*2\r\n$4\r\nSPOP\r\n$5\r\nmyset\r\n"
    if kind == "lrange":
        return b"*4\r\n$6\r\nLRANGE\r\n$6\r\nmylist\r\n$1\r\n0\r\n$2\r\n99\r\n"
    if kind == "lpush-onekey":
        return b"*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$3\r\nxxx\r\n"
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (len(key), key)


async def _drive(case: str, rounds: int) -> None:
    from raftkv.app import http_app, tune_runtime
    from raftkv.clock import SystemClock
    from raftkv.config import load
    from raftkv.fronts.http.access_log import AccessLog
    from raftkv.fronts.http.server import HttpConnection, HttpServer
    from raftkv.fronts.resp.pubsub import PubSub
    from raftkv.fronts.resp.server import Connection, RespServer
    from raftkv.metrics import Metrics
    from raftkv.replication.local import LocalReplicator
    from raftkv.replication.replay import recover
    from raftkv.service.auth import Authenticator
    from raftkv.service.coordination import Coordinator
    from raftkv.service.service import KVService, ServiceLimits
    from raftkv.storage.fs import OsFileSystem
    from raftkv.storage.wal import FsyncPolicy

    tune_runtime()  # as ``raftkv serve`` does
    front, kind, batch, _ = CASES[case]
    data_dir = tempfile.mkdtemp(prefix="raftkv-instructions-")
    fs = OsFileSystem()
    recovered = recover(fs, data_dir)
    replicator = LocalReplicator(recovered, FsyncPolicy.NO)
    service = KVService(replicator, SystemClock(), ServiceLimits())
    # logging and metrics off (the request path alone), except in the -ops case
    ops = "on" if case.endswith("-ops") else "off"
    config = load({}, env={"RAFTKV_ACCESS_LOG": ops, "RAFTKV_REQUEST_METRICS": ops})
    keys = [b"key:%012d" % i for i in range(KEYS)]
    for key in keys:
        await service.put(key, b"x" * 64)
    connect: Callable[[], asyncio.Protocol]
    if front == "http":
        metrics = Metrics(lambda: recovered.state_machine, replicator.status, lambda: 0)
        app = http_app(service, Coordinator(service), lambda: (True, "ready"), config,
                       AccessLog("json", io.TextIOWrapper(io.BytesIO())),
                       Authenticator(False, ()), metrics,
                       lambda: 0)
        http = HttpServer(app, config.http)
        connect, encode = (lambda: HttpConnection(http)), _http_request
    else:
        resp = RespServer(service, config, Authenticator(False, ()), PubSub())
        connect, encode = (lambda: Connection(resp)), _resp_request
    connections = []
    for _ in range(CONNECTIONS):
        conn = connect()
        conn.connection_made(_CountingTransport())  # type: ignore[arg-type]
        connections.append(conn)
    if kind in ("zadd", "sadd", "hset"):  # random scores and members every round (the same ones
        # would change nothing), made for the most rounds in both runs: they cancel
        draw = random.Random(1).randrange
        plans = [[b"".join(encode(kind, b"%012d %012d" % (draw(100_000), draw(100_000)))
                           for _ in range(batch)) for _ in range(CONNECTIONS)]
                 for _ in range(50 + CASES[case][3])]
    else:
        plans = [[b"".join(encode(kind, keys[(7 * c + j) % KEYS]) for j in range(batch))
                  for c in range(CONNECTIONS)]] * (50 + rounds)
    answered = 0
    fill = {"lrange": b"*602\r\n$5\r\nRPUSH\r\n$6\r\nmylist\r\n" + b"$3\r\nxxx\r\n" * 600,
            "spop": b"*100002\r\n$4\r\nSADD\r\n$5\r\nmyset\r\n" + b"".join(
                b"$13\r\nelement:%05d\r\n" % i for i in range(100_000))}.get(kind)
    if fill is not None:  # the list or set it reads or pops, as redis-benchmark fills it
        connections[0].data_received(fill)  # type: ignore[attr-defined]
        answered = 1
        while _CountingTransport.writes < answered:
            await asyncio.sleep(0)
    for batches in plans[:50 + rounds]:  # 50 rounds of warm-up, in both runs
        for conn, data in zip(connections, batches, strict=True):
            conn.data_received(data)  # type: ignore[attr-defined]
        answered += CONNECTIONS
        while _CountingTransport.writes < answered:
            await asyncio.sleep(0)
    await replicator.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    if _CountingTransport.failures:
        raise SystemExit(f"{case}: {_CountingTransport.failures} replies were errors")


def _instructions(case: str, rounds: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "benchmarks.instructions", "--drive", case, "--rounds", str(rounds)],
        capture_output=True, text=True, check=True).stderr
    match = re.search(r"Collected : (\d+)", out)
    if match is None:
        raise RuntimeError(f"callgrind printed no count:\n{out[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--drive", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        import uvloop

        uvloop.run(_drive(args.drive, args.rounds))
        return 0
    cases = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (make instructions installs it)", file=sys.stderr)
        return 2
    print("| case | instructions per request |\n|---|---|")
    for case in cases:
        _, _, batch, rounds = CASES[case]
        per_request = (_instructions(case, rounds) - _instructions(case, 0)) / (
            rounds * CONNECTIONS * batch)
        print(f"| {case} | {per_request:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
