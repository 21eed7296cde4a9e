"""Scripts over the Redis protocol, against redis-server (servers on core 0, load on
core 1, both up for the whole round, taking turns in short bursts): EVALSHA of the
scripts real clients send, at ``-P 1`` with 50 clients - redis-py's ``Lock`` release
and the ``limits`` package's fixed-window counter (Flask-Limiter's default) - read
from the installed libraries, loaded with SCRIPT LOAD into both servers first. First
without fsync on either side, then durable (``--fsync always`` against
``appendfsync always``).
"""

from __future__ import annotations

import subprocess
from importlib import resources

from benchmarks.common import CLIENT_CPU, Row, bursts, in_turns, pinned
from benchmarks.resp_bench import server_pair


def scripts() -> dict[str, tuple[str, list[str]]]:
    """name -> (body, the EVALSHA arguments after the SHA1)."""
    from redis.lock import Lock

    fixed_window = resources.files("limits").joinpath(
        "resources/redis/lua_scripts/incr_expire.lua").read_text()
    return {
        "EVALSHA Lock release": (Lock.LUA_RELEASE_SCRIPT, ["1", "lock:__rand_int__", "token"]),
        "EVALSHA limits fixed window": (fixed_window, ["1", "limit:__rand_int__", "60", "1"]),
    }


def _load(port: int, body: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), "SCRIPT", "LOAD", body],
                          capture_output=True, text=True, check=True).stdout.strip()


def evalsha_per_s(port: int, sha: str, args: list[str], requests: int) -> dict[str, float]:
    out = subprocess.run(pinned(CLIENT_CPU, [
        "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-P", "1",
        "-r", "100000", "--csv", "EVALSHA", sha, *args]), capture_output=True, text=True,
        check=True).stdout
    header, row = [line.split(",") for line in out.strip().splitlines()[:2]]
    record = {k.strip('"'): v.strip('"') for k, v in zip(header, row, strict=False)}
    return {"rps": float(record["rps"]), "p50_ms": float(record.get("p50_latency_ms", 0)),
            "p99_ms": float(record.get("p99_latency_ms", 0))}


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, _ = bursts(quick)
    requests = {False: 20_000 if quick else 40_000, True: 4_000 if quick else 8_000}
    for r in range(rounds):
        for durable in (False, True):
            label = "durable" if durable else "no fsync"
            progress.step(f"scripts: starting raftkv and redis-server ({label}), round {r + 1}")
            with server_pair("scripts", durable) as (port, their_port):
                loaded = {name: (_load(port, body), args)
                          for name, (body, args) in scripts().items()}
                for name, (body, _) in scripts().items():
                    assert _load(their_port, body) == loaded[name][0]
                for b in range(count):
                    progress.step(f"scripts: {label} pair {b + 1}/{count}, round {r + 1}")
                    for name, (sha, args) in loaded.items():
                        for system, server_port in in_turns(
                                b, [("raftkv", port), ("redis-server", their_port)]):
                            figures = evalsha_per_s(server_port, sha, args, requests[durable])
                            rows.append(Row("scripts", f"{name} -P 1, {label}", system,
                                            figures["rps"], "req/s", r * count + b, extra={
                                                "p50_ms": figures["p50_ms"],
                                                "p99_ms": figures["p99_ms"]}))
    return rows
