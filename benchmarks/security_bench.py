"""What TLS, peer mTLS and backups cost, side by side in the same run (servers on core
0, load on core 1, certificates made for the run):

* HTTP GET and PUT (``--fsync no``) over TLS against the same node's plain HTTP, 50
  keep-alive wrk connections: goal >= 0.7x;
* RESP SET ``-P 16`` over TLS, raftkv against redis-server over TLS (``--tls-port``),
  redis-benchmark ``--tls``: goal >= 0.5x;
* 3-node durable PUTs with peer links over mutual TLS against the HMAC-authenticated
  links (both clusters serve their clients over TLS, so only the peer links differ):
  goal >= 0.9x;
* a backup of N keys of four types (1M; 100k with ``--quick``) with ``raftkv backup``
  while a client writes, and its ``raftkv restore``: seconds, and that client's SET
  latency p99 during the backup against the same client's p99 with no backup running.
"""

from __future__ import annotations

import contextlib
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis
from tests.support.certs import CA

from benchmarks.cluster_bench import RaftkvCluster
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
from benchmarks.http_bench import KEYS, _lua, wrk
from benchmarks.resp_bench import redis_benchmark

SECRET = "benchmark-cluster-secret-0123456789"


def _preload(url: str, tls: ssl.SSLContext | bool) -> None:
    with httpx.Client(base_url=url, verify=tls) as c:
        for i in range(KEYS):
            c.put(f"/v1/keys/bench{i:04d}", json={"value": "value"})


@contextlib.contextmanager
def _http_pair(ca: CA, work: Path) -> Iterator[dict[str, str]]:
    cert, key, _ = ca.issue("server", "localhost")
    tls_port, plain_port = free_port(), free_port()
    with raftkv_server(work / "tls", tls_port, "--fsync", "no", "--resp-port", "0",
                       "--tls-cert", str(cert), "--tls-key", str(key)), \
            raftkv_server(work / "plain", plain_port, "--fsync", "no", "--resp-port", "0"):
        urls = {"raftkv TLS": f"https://127.0.0.1:{tls_port}",
                "raftkv plain": f"http://127.0.0.1:{plain_port}"}
        _preload(urls["raftkv TLS"], ca.client_context())
        _preload(urls["raftkv plain"], True)
        yield urls


@contextlib.contextmanager
def _resp_pair(ca: CA, work: Path) -> Iterator[dict[str, int]]:
    cert, key, _ = ca.issue("resp", "localhost")
    ours, theirs = free_port(), free_port()
    http_port = free_port()
    redis_cmd = ["redis-server", "--port", "0", "--tls-port", str(theirs), "--bind", "127.0.0.1",
                 "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
                 str(ca.path), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
                 "--dir", str(work)]
    with raftkv_server(work / "resp", http_port, "--fsync", "no", "--resp-port", str(ours),
                       "--tls-cert", str(cert), "--tls-key", str(key)), \
            Proc(pinned(SERVER_CPU, redis_cmd), log=work / "redis.log"):
        wait_port(ours)
        wait_port(theirs)
        yield {"raftkv": ours, "redis-server": theirs}


def _cluster_args(ca: CA, peer_tls: bool):
    def args(node: str) -> list[str]:
        cert, key, _ = ca.issue(f"{node}-api-{peer_tls}", "localhost")
        flags = ["--tls-cert", str(cert), "--tls-key", str(key), "--fsync", "always"]
        if peer_tls:
            peer_cert, peer_key, _ = ca.issue(f"{node}-peer", node)
            return [*flags, "--peer-tls-cert", str(peer_cert), "--peer-tls-key", str(peer_key),
                    "--peer-tls-ca", str(ca.path)]
        return [*flags, "--cluster-secret", SECRET]
    return args


def _cluster_urls(cluster: RaftkvCluster) -> str:
    leader = cluster.leader()
    return cluster.url(leader)


def _seed(port: int, keys: int, progress, label: str) -> None:
    r = redis.Redis(port=port)
    pipe = r.pipeline(transaction=False)
    for i in range(keys // 4):
        pipe.set(f"s:{i}", f"value-{i}")
        pipe.hset(f"h:{i}", mapping={"a": i, "b": "x"})
        pipe.rpush(f"l:{i}", "x", str(i))
        pipe.zadd(f"z:{i}", {"m": i})
        if i % 2500 == 2499:
            pipe.execute()
            if i % 25_000 == 24_999:
                progress.step(f"{label}: seeded {4 * (i + 1):,} keys")
    pipe.execute()


def _write_latencies(port: int, stop: threading.Event) -> list[float]:
    """SET latencies (ms) of one client writing as fast as it can until ``stop``."""
    r = redis.Redis(port=port)
    latencies = []
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        r.set(f"during:{i}", "x")
        latencies.append((time.perf_counter() - started) * 1000)
        i += 1
    return latencies


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 100 else max(values)


def _backup_and_restore(keys: int, progress) -> list[Row]:
    work = scratch_dir("backup")
    resp, http_port = free_port(), free_port()
    rows = []
    with raftkv_server(work / "data", http_port, "--fsync", "always", "--resp-port", str(resp)):
        wait_port(resp)
        _seed(resp, keys, progress, "backup")
        progress.step(f"backup: {keys:,} keys seeded; a writer runs without a backup")
        for phase in ("no backup", "backup"):
            stop = threading.Event()
            out: list[list[float]] = []
            writer = threading.Thread(target=lambda out=out, stop=stop: out.append(
                _write_latencies(resp, stop)))
            writer.start()
            if phase == "backup":
                started = time.perf_counter()
                subprocess.run(pinned(CLIENT_CPU, [
                    sys.executable, "-m", "raftkv", "backup", str(work / "b.rkvbackup"),
                    "--url", f"http://127.0.0.1:{http_port}"]), check=True, capture_output=True)
                backup_s = time.perf_counter() - started
            else:
                time.sleep(5)
            stop.set()
            writer.join()
            rows.append(Row("security", f"SET p99 while a {keys:,}-key backup runs"
                            if phase == "backup" else f"SET p99, {keys:,} keys, no backup",
                            "raftkv", _p99(out[0]), "ms", 0, higher_is_better=False,
                            paired=False))
    size_mib = (work / "b.rkvbackup").stat().st_size / 2**20
    rows.append(Row("security", f"backup of {keys:,} keys ({size_mib:.0f} MiB), live node",
                    "raftkv", backup_s, "s", 0, higher_is_better=False, paired=False))
    progress.step("backup: restoring")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "raftkv", "restore", str(work / "b.rkvbackup"),
                    "--data-dir", str(work / "restored")], check=True, capture_output=True)
    rows.append(Row("security", f"restore of {keys:,} keys into a new data directory",
                    "raftkv", time.perf_counter() - started, "s", 0, higher_is_better=False,
                    paired=False))
    return rows


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, seconds = bursts(quick)
    for r in range(rounds):
        work = scratch_dir("security")
        ca = CA(work / "pki")
        progress.step(f"security: HTTP over TLS and plain, round {r + 1}")
        with _http_pair(ca, work) as urls:
            for b in range(count):
                for kind in ("get", "put"):
                    for system, url in in_turns(b, list(urls.items())):
                        figures = wrk(url, _lua(kind, "raftkv"), seconds, work)
                        rows.append(Row("security", f"HTTP {kind.upper()} over TLS vs plain",
                                        "raftkv" if system == "raftkv TLS" else system,
                                        figures["rps"], "req/s", r * count + b, extra=figures))
        progress.step(f"security: RESP over TLS, round {r + 1}")
        with _resp_pair(ca, work) as ports:
            for b in range(count):
                for system, port in in_turns(b, list(ports.items())):
                    figures = _tls_benchmark(port, ca, 200_000 if not quick else 100_000)
                    rows.append(Row("security", "RESP SET -P 16 over TLS", system,
                                    figures["set"], "req/s", r * count + b,
                                    extra={"p99_ms": figures["set_p99_ms"]}))
        progress.step(f"security: 3 nodes, peer mTLS and HMAC, round {r + 1}")
        clusters = {}
        try:
            for system, peer_tls in (("raftkv", True), ("raftkv HMAC", False)):
                clusters[system] = RaftkvCluster(scratch_dir(f"security-{system[-4:]}"),
                                                 args=_cluster_args(ca, peer_tls),
                                                 tls=ca.client_context())
            urls = {system: _cluster_urls(c) for system, c in clusters.items()}
            for url in urls.values():
                _preload(url, ca.client_context())
            for b in range(count):
                for system, url in in_turns(b, list(urls.items())):
                    figures = wrk(url, _lua("put", "raftkv"), seconds, work)
                    rows.append(Row("security", "3 nodes: PUT, durable, peer mTLS vs HMAC",
                                    system, figures["rps"], "req/s", r * count + b,
                                    extra=figures))
        finally:
            for cluster in clusters.values():
                cluster.stop()
    rows += _backup_and_restore(100_000 if quick else 1_000_000, progress)
    return rows


def _tls_benchmark(port: int, ca: CA, requests: int) -> dict[str, float]:
    return redis_benchmark(port, 16, requests, "set",
                           extra=["--tls", "--cacert", str(ca.path), "--sni", "localhost"])
