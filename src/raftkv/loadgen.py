"""``raftkv bench``: a load generator for raftkv's HTTP API.

Workloads ``get``, ``put``, ``mixed`` (``--read-ratio``) and ``cas`` (read, then
If-Match PUT) over ``--keys`` keys chosen uniformly or by a Zipf law, on
``--connections`` keep-alive connections, for ``--duration`` seconds or
``--requests`` requests. ``--protocol resp --pipeline N`` drives the Redis port
instead (GET/SET, N commands in flight per connection, as redis-benchmark -P).

* Closed loop (default): each connection sends its next request when the last one
  answered.
* Open loop (``--rate R``): requests are *scheduled* at R per second regardless of
  answers, and latency is measured from the scheduled time, so a stall shows up in
  the percentiles instead of silently lowering the offered load (coordinated
  omission).

Latencies go into an HdrHistogram (p50/p90/p99/p99.9/max); errors are counted by
class (``http_4xx``, ``http_5xx``, ``timeout``, ``connection``). A progress line is
drawn on stderr; ``--json`` prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import hiredis
from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
ERROR_CLASSES = ("http_4xx", "http_5xx", "timeout", "connection")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    url: str = "http://127.0.0.1:8080"
    workload: str = "get"  # get | put | mixed | cas
    keys: int = 1000
    value_bytes: int = 100
    distribution: str = "uniform"  # uniform | zipf
    read_ratio: float = 0.9
    connections: int = 50
    duration_s: float = 10.0
    requests: int = 0  # 0: run for duration_s
    rate: float = 0.0  # requests/s; 0: closed loop
    token: str | None = None
    timeout_s: float = 5.0
    seed: int = 1
    protocol: str = "http"  # http | resp
    pipeline: int = 1  # resp: commands in flight per connection


@dataclass
class BenchResult:
    histogram: HdrHistogram = field(
        default_factory=lambda: HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS))
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    elapsed_s: float = 0.0

    def merge(self, other: BenchResult) -> None:
        self.histogram.add(other.histogram)
        self.errors.update(other.errors)
        self.ok += other.ok

    def summary(self) -> dict[str, Any]:
        h = self.histogram
        done = self.ok + sum(self.errors.values())
        return {
            "requests": done, "ok": self.ok, "errors": dict(self.errors),
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_rps": round(done / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "latency_ms": {name: round(h.get_value_at_percentile(p) / 1000, 3)
                           for name, p in (("p50", 50), ("p90", 90), ("p99", 99),
                                           ("p99.9", 99.9))}
            | {"max": round(h.get_max_value() / 1000, 3)},
        }


def classify(status: int | None, exc: BaseException | None = None) -> str | None:
    """The error class of an outcome, or None for success."""
    if exc is not None:
        return "timeout" if isinstance(exc, asyncio.TimeoutError | TimeoutError) else "connection"
    assert status is not None
    if status >= 500:
        return "http_5xx"
    if status >= 400 and status not in (404, 412):  # a miss or a lost CAS race is an answer
        return "http_4xx"
    return None


class KeyChooser:
    """Uniform, or Zipf with exponent 1 (a few keys take most of the traffic)."""

    def __init__(self, keys: int, distribution: str, rng: random.Random) -> None:
        self.keys = keys
        self.rng = rng
        self.zipf = distribution == "zipf"
        if self.zipf:
            self.cumulative = list(itertools.accumulate(1 / rank for rank in range(1, keys + 1)))

    def __call__(self) -> int:
        if not self.zipf:
            return self.rng.randrange(self.keys)
        return bisect.bisect_left(self.cumulative, self.rng.random() * self.cumulative[-1])


def schedule(rate: float, start: float, count: int) -> list[float]:
    """Open loop: the intended send time of each of ``count`` requests."""
    return [start + i / rate for i in range(count)]


class Connection:
    """A minimal HTTP/1.1 keep-alive client: request bytes out, status and body in."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: bytes = b"") -> tuple[int, bytes, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n").encode()
        self.writer.write(head + self.auth + headers + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, etag = 0, b""
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"etag":
                etag = value.strip()
        body_in = await self.reader.readexactly(length) if length else b""
        return status, body_in, etag

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RespConnection:
    """Pipelined RESP: send a batch of commands, read as many replies."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parser = hiredis.Reader()

    async def batch(self, commands: list[tuple[bytes, ...]]) -> list[object]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.parser = hiredis.Reader()
            if self.token:
                await self.batch([(b"AUTH", self.token.encode())])
        assert self.reader is not None
        self.writer.write(b"".join(hiredis.pack_command(c) for c in commands))  # type: ignore[arg-type]
        replies: list[object] = []
        while len(replies) < len(commands):
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                replies.append(reply)
        return replies

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        parts = urlsplit(config.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rng = random.Random(config.seed)
        self.choose = KeyChooser(config.keys, config.distribution, self.rng)
        self.value = json.dumps({"value": "x" * config.value_bytes}).encode()
        self.result = BenchResult()
        self._sent = 0

    async def preload(self) -> None:
        if self.config.protocol == "resp":
            conn_r = RespConnection(self.host, self.port, self.config.token)
            try:
                for start in range(0, self.config.keys, 500):
                    await conn_r.batch([(b"SET", b"bench%d" % i, b"x" * self.config.value_bytes)
                                        for i in range(start, min(start + 500,
                                                                  self.config.keys))])
            finally:
                conn_r.close()
            return
        conn = Connection(self.host, self.port, self.config.token)
        try:
            for i in range(self.config.keys):
                await conn.request("PUT", f"/v1/keys/bench{i}", self.value)
        finally:
            conn.close()

    async def one(self, conn: Connection) -> int:
        c = self.config
        key = f"/v1/keys/bench{self.choose()}"
        kind = c.workload
        if kind == "mixed":
            kind = "get" if self.rng.random() < c.read_ratio else "put"
        if kind == "get":
            return (await conn.request("GET", key))[0]
        if kind == "put":
            return (await conn.request("PUT", key, self.value))[0]
        status, _, etag = await conn.request("GET", key)  # cas: read, then swap
        if status != 200:
            return status
        return (await conn.request("PUT", key, self.value, b"If-Match: " + etag + b"\r\n"))[0]

    def record(self, started: float, status: int | None, exc: BaseException | None) -> None:
        error = classify(status, exc)
        if error is None:
            self.result.ok += 1
            latency_us = max(LOWEST_US, int((time.perf_counter() - started) * 1_000_000))
            self.result.histogram.record_value(min(latency_us, HIGHEST_US))
        else:
            self.result.errors[error] += 1

    async def _timed(self, conn: Connection, started: float) -> None:
        try:
            status = await asyncio.wait_for(self.one(conn), self.config.timeout_s)
            self.record(started, status, None)
        except (TimeoutError, OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            conn.close()
            self.record(started, None, exc)

    async def resp_loop(self, deadline: float) -> None:
        """Closed loop over RESP: each connection keeps ``pipeline`` commands in flight."""
        c = self.config
        value = b"x" * c.value_bytes

        def command() -> tuple[bytes, ...]:
            key = b"bench%d" % self.choose()
            read = c.workload == "get" or (c.workload == "mixed"
                                           and self.rng.random() < c.read_ratio)
            return (b"GET", key) if read else (b"SET", key, value)

        async def worker() -> None:
            conn = RespConnection(self.host, self.port, c.token)
            try:
                while time.perf_counter() < deadline and self._more():
                    n = min(c.pipeline, c.requests - self._sent) if c.requests else c.pipeline
                    self._sent += n
                    started = time.perf_counter()
                    try:
                        replies = await asyncio.wait_for(
                            conn.batch([command() for _ in range(n)]), c.timeout_s)
                    except (TimeoutError, OSError, ConnectionError) as exc:
                        conn.close()
                        for _ in range(n):
                            self.record(started, None, exc)
                        continue
                    for reply in replies:  # each command's latency is its batch's
                        failed = isinstance(reply, hiredis.ReplyError)
                        self.record(started, 500 if failed else 200, None)
            finally:
                conn.close()
        await asyncio.gather(*(worker() for _ in range(c.connections)))

    async def closed_loop(self, deadline: float) -> None:
        async def worker() -> None:
            conn = Connection(self.host, self.port, self.config.token)
            try:
                while time.perf_counter() < deadline and self._more():
                    self._sent += 1
                    await self._timed(conn, time.perf_counter())
            finally:
                conn.close()
        await asyncio.gather(*(worker() for _ in range(self.config.connections)))

    async def open_loop(self, deadline: float) -> None:
        c = self.config
        count = c.requests or int(c.rate * c.duration_s)
        times = schedule(c.rate, time.perf_counter(), count)
        idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(c.connections):
            idle.put_nowait(Connection(self.host, self.port, c.token))
        pending: set[asyncio.Task[None]] = set()

        async def send(at: float) -> None:
            conn = await idle.get()  # waiting for a connection counts in the latency
            try:
                await self._timed(conn, at)
            finally:
                idle.put_nowait(conn)

        for at in times:
            if at > deadline:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self._sent += 1
            task = asyncio.get_running_loop().create_task(send(at))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        while not idle.empty():
            idle.get_nowait().close()

    def _more(self) -> bool:
        return not self.config.requests or self._sent < self.config.requests

    async def run(self, progress: bool = True) -> BenchResult:
        c = self.config
        if c.workload != "put":
            await self.preload()
        started = time.perf_counter()
        deadline = started + (c.duration_s if not c.requests else 10**9)
        reporter = asyncio.get_running_loop().create_task(self._progress(started, deadline)) \
            if progress else None
        try:
            if c.protocol == "resp":
                await self.resp_loop(deadline)
            elif c.rate:
                await self.open_loop(deadline)
            else:
                await self.closed_loop(deadline)
        finally:
            if reporter is not None:
                reporter.cancel()
                sys.stderr.write("\n")
        self.result.elapsed_s = time.perf_counter() - started
        return self.result

    async def _progress(self, started: float, deadline: float) -> None:
        total = self.config.requests
        while True:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            fraction = (self._sent / total if total
                        else min(1.0, (now - started) / max(deadline - started, 1e-9)))
            done = self.result.ok + sum(self.result.errors.values())
            bar = "#" * int(30 * fraction)
            sys.stderr.write(f"\r[{bar:<30}] {done:>9,} requests {done / (now - started):>9,.0f}"
                             f"/s errors {sum(self.result.errors.values()):,}")
            sys.stderr.flush()


def render(summary: dict[str, Any], config: BenchConfig) -> str:
    lat = summary["latency_ms"]
    lines = [f"{config.workload} on {config.url}: {summary['requests']:,} requests in "
             f"{summary['elapsed_s']} s = {summary['throughput_rps']:,.0f} req/s "
             f"({'open loop at ' + str(config.rate) + '/s' if config.rate else 'closed loop'}, "
             f"{config.connections} connections)",
             "latency ms: " + "  ".join(f"{k} {v}" for k, v in lat.items()),
             "errors: " + (", ".join(f"{k} {v}" for k, v in summary["errors"].items())
                           or "none")]
    return "\n".join(lines)
