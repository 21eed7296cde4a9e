"""Coordination, raftkv against etcd 3.4 over the same calls of etcd's v3 JSON gateway
(raftkv serves it too), servers on core 0 and load on core 1, side by side per round:

* watch fan-out: W watchers of one prefix (1,000; 200 with ``--quick``), writes at R/s
  (2,000; 500) for a few seconds; every event counted on every watcher, the delivery
  latency (write sent to event read) measured on 10 of them: events delivered per
  second, delivered/expected, p50 and p99;
* lease keep-alives/s: wrk, 50 connections keeping one lease alive
  (``/v3/lease/keepalive``). etcd answers a keep-alive from the leader's memory;
  raftkv logs it (so a leader change neither forgives nor extends a lease), fsynced
  when ``--fsync always``: both raftkv modes are shown;
* lock cycles/s: 16 clients, each on its own lease and lock name, looping
  ``lock/lock`` then ``lock/unlock`` (both systems fsync every step).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.common import (
    CLIENT_CPU,
    Row,
    free_port,
    in_turns,
    pinned,
    raftkv_server,
    scratch_dir,
)
from benchmarks.http_bench import _etcd, wrk

PROBES = 10


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- watch fan-out (a load generator process of its own, on the client core) ------------

async def _fan_out(url: str, watchers: int, rate: int, seconds: float) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"create_request": {"key": _b64("fan/"), "range_end": _b64("fan0")}})
    request = (f"POST /v3/watch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    counts = [0] * watchers
    latencies: list[float] = []
    created = asyncio.Semaphore(0)

    async def watch(number: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        first = await reader.readuntil(b"created")
        del first
        created.release()
        probe = number < PROBES
        buffered = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            counts[number] += data.count(b'"mod_revision"')
            if probe:  # the values are send times: parse the complete lines
                now = time.perf_counter_ns()
                buffered += data
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    start = line.find(b"{")
                    if start < 0:
                        continue
                    for event in json.loads(line[start:]).get("result", {}).get("events", []):
                        sent = int(base64.b64decode(event["kv"]["value"]))
                        latencies.append((now - sent) / 1e6)

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    for _ in range(watchers):
        await asyncio.wait_for(created.acquire(), 60)
    writes = int(rate * seconds)
    started, written_s = time.perf_counter(), 0.0

    async def writer(lane: int, lanes: int) -> None:
        """Puts at this lane's share of the rate, over one keep-alive connection; the
        value is the time the request left."""
        http = _Connection(*await asyncio.open_connection(host, int(port)), host)
        for i in range(lane, writes, lanes):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await http.post("/v3/kv/put", {"key": _b64(f"fan/{i % 100}"),
                                           "value": _b64(str(time.perf_counter_ns()))})
        http.writer.close()

    await asyncio.gather(*(writer(lane, 16) for lane in range(16)))
    written_s = time.perf_counter() - started
    expected = writes * watchers
    deadline = time.perf_counter() + 30
    while sum(counts) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    done_s = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    latencies.sort()
    return {"delivered": sum(counts), "expected": expected,
            "events_per_s": sum(counts) / done_s, "write_s": written_s,
            "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
            "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else 0.0}


def fan_out(url: str, watchers: int, rate: int, seconds: float) -> dict[str, float]:
    """The fan-out load generator as its own process, pinned to the client core."""
    out = subprocess.run(pinned(CLIENT_CPU, [
        sys.executable, "-m", "benchmarks.coordination_bench", "fan-out", url, str(watchers),
        str(rate), str(seconds)]), capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout)


# --- lock cycles -----------------------------------------------------------------------

class _Connection:
    """One keep-alive HTTP/1.1 connection sending each request in a single write (an
    HTTP client that writes head and body apart meets Nagle and delayed ACKs: a 40 ms
    stall per request, on both systems alike)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        payload = json.dumps(body)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                          f"{payload}".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return json.loads(await self.reader.readexactly(length))


async def _lock_cycles(url: str, clients: int, seconds: float) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    cycles = 0
    latencies: list[float] = []

    async def contender(number: int) -> None:
        nonlocal cycles
        http = _Connection(*await asyncio.open_connection(host, int(port)), host)
        lease = (await http.post("/v3/lease/grant", {"TTL": 60}))["ID"]
        name = _b64(f"bench-lock-{number}")
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            began = time.perf_counter()
            key = (await http.post("/v3/lock/lock", {"name": name, "lease": lease}))["key"]
            await http.post("/v3/lock/unlock", {"key": key})
            latencies.append((time.perf_counter() - began) * 1000)
            cycles += 1

    started = time.perf_counter()
    await asyncio.gather(*(contender(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"cycles_per_s": cycles / elapsed,
            "p50_ms": statistics.median(latencies) if latencies else 0.0,
            "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else 0.0}


def lock_cycles(url: str, clients: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(pinned(CLIENT_CPU, [
        sys.executable, "-m", "benchmarks.coordination_bench", "locks", url, str(clients),
        str(seconds)]), capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


def keepalive_script(lease: int) -> str:
    return ("wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
            f"wrk.body = '{{\"ID\": {lease}}}'\nwrk.path = '/v3/lease/keepalive'\n")


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    watchers, rate, seconds = (200, 500, 3.0) if quick else (1000, 2000, 2.0)
    burst_s = 2 if quick else 4
    for r in range(rounds):
        progress.step(f"coordination: starting raftkv (fsync always, no) and etcd, round {r + 1}")
        work = scratch_dir("coordination")
        durable_port, fast_port = free_port(), free_port()
        with contextlib.ExitStack() as stack:
            stack.enter_context(raftkv_server(work / "durable", durable_port, "--fsync",
                                              "always", "--resp-port", "0"))
            stack.enter_context(raftkv_server(work / "fast", fast_port, "--fsync", "no",
                                              "--resp-port", "0"))
            proc, etcd = _etcd(work / "etcd")
            stack.enter_context(proc)
            systems = {"raftkv": f"http://127.0.0.1:{durable_port}", "etcd": etcd}
            progress.step(f"coordination: watch fan-out x{watchers} at {rate}/s, round {r + 1}")
            for system, url in in_turns(r, list(systems.items())):
                figures = fan_out(url, watchers, rate, seconds)
                rows.append(Row("coordination", f"watch fan-out: {watchers} watchers, "
                                f"writes at {rate}/s", system, figures["events_per_s"],
                                "events/s", r, extra=figures))
            progress.step(f"coordination: lease keep-alives and lock cycles, round {r + 1}")
            leases = {name: httpx.post(f"{url}/v3/lease/grant", json={"TTL": 600},
                                       timeout=10).json()["ID"]
                      for name, url in {**systems, "fast": f"http://127.0.0.1:{fast_port}"
                                        }.items()}
            for system, url in in_turns(r, list(systems.items())):
                figures = wrk(url, keepalive_script(leases[system]), burst_s, work)
                label = "durable" if system == "raftkv" else "in memory"
                rows.append(Row("coordination", "lease keep-alives, 50 connections",
                                system, figures["rps"], "req/s", r,
                                extra={**figures, "mode": label}))
            figures = wrk(f"http://127.0.0.1:{fast_port}", keepalive_script(leases["fast"]),
                          burst_s, work)
            rows.append(Row("coordination", "lease keep-alives, 50 connections, raftkv "
                            "fsync no", "raftkv", figures["rps"], "req/s", r, extra=figures))
            for system, url in in_turns(r, list(systems.items())):
                figures = lock_cycles(url, 16, burst_s)
                rows.append(Row("coordination", "lock acquire+release, 16 clients", system,
                                figures["cycles_per_s"], "cycles/s", r, extra=figures))
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "fan-out":
        result = asyncio.run(_fan_out(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                      float(sys.argv[5])))
    else:
        result = asyncio.run(_lock_cycles(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    print(json.dumps(result))
