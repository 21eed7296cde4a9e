"""CPU time per HTTP GET on the running server: raftkv against the floor.

wrk drives each server in turn (server on core 0, load on core 1, as in the HTTP
suite); the server process's user and kernel time are read from ``/proc`` before and
after each burst and divided by the requests answered. On a shared machine this is
steadier than requests per second, and it tells the kernel's share of a request
(sockets and epoll, the same for any Python server here) from the server's own.

    python -m benchmarks.cpu_per_request                 # 3 bursts of 4 s each
    python -m benchmarks.cpu_per_request --bursts 5 --seconds 2

raftkv runs as ``make run`` starts it (access log and request metrics on, ``--fsync
no``); the floor is ``benchmarks.bare_http``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

from benchmarks import http_bench
from benchmarks.common import free_port, raftkv_server, scratch_dir

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and kernel CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name
    return int(fields[11]) * _TICK_S, int(fields[12]) * _TICK_S  # utime, stime


def per_request(pid: int, load: Callable[[], int]) -> tuple[int, float, float]:
    """Run ``load`` (returns the requests it made); the requests and the server's
    user and kernel microseconds per request meanwhile."""
    user0, kernel0 = cpu_seconds(pid)
    requests = load()
    user1, kernel1 = cpu_seconds(pid)
    n = max(requests, 1)
    return requests, (user1 - user0) / n * 1e6, (kernel1 - kernel0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args(argv)
    work = scratch_dir("cpu")
    script = http_bench._lua("get", "raftkv")
    port = free_port()
    results: dict[str, list[tuple[int, float, float]]] = {"raftkv": [], "floor": []}
    with raftkv_server(work / "node", port, "--fsync", "no", "--resp-port", "0") as node:
        url = f"http://127.0.0.1:{port}"
        http_bench._preload_raftkv(url)
        floor, floor_url = http_bench._floor(work)
        try:
            for _ in range(args.bursts):  # in turns, so a slow minute hits both
                for name, pid, target in (("raftkv", node.proc.pid, url),
                                          ("floor", floor.proc.pid, floor_url)):
                    def load(target: str = target) -> int:
                        rps = http_bench.wrk(target, script, args.seconds, work)["rps"]
                        return round(rps * args.seconds)

                    results[name].append(per_request(pid, load))
        finally:
            floor.stop()
    print("| server | req/s (median) | user µs per GET | kernel µs per GET |\n|---|---|---|---|")
    for name, bursts in results.items():
        users = [u for _, u, _ in bursts]
        kernels = [k for _, _, k in bursts]
        rate = statistics.median(n for n, _, _ in bursts) / args.seconds
        print(f"| {name} | {rate:,.0f} | {statistics.median(users):.2f} "
              f"({min(users):.2f}-{max(users):.2f}) | {statistics.median(kernels):.2f} "
              f"({min(kernels):.2f}-{max(kernels):.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
