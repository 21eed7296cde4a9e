"""Job queues over the Redis protocol, against redis-server (servers on core 0, the
clients and workers on core 1, both servers up for the whole round, taking turns):

* BLPOP/LPUSH ping-pong: two connections hand one item back and forth through two
  lists; the latency of a round trip (p50 and p99), without fsync and durable;
* jobs per second through a real RQ worker (``--burst`` over jobs enqueued first) and
  a real Celery worker (``--pool solo``, results in the same server), durable:
  ``--fsync always`` against ``appendfsync always``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks.common import CLIENT_CPU, Row, bursts, in_turns, pinned
from benchmarks.resp_bench import server_pair

PING_PONG = textwrap.dedent("""
    import sys, threading, time
    import redis
    port, rounds = int(sys.argv[1]), int(sys.argv[2])
    a, b = redis.Redis(port=port), redis.Redis(port=port)
    a.delete("ping", "pong")

    def echo():
        for _ in range(rounds):
            a.blpop(["ping"], 0)
            a.lpush("pong", "x")
    thread = threading.Thread(target=echo)
    thread.start()
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        b.lpush("ping", "x")
        b.blpop(["pong"], 0)
        took.append(time.perf_counter() - started)
    thread.join()
    took.sort()
    print(took[len(took) // 2] * 1000, took[int(len(took) * 0.99)] * 1000)
""")

JOBS = textwrap.dedent("""
    def square(n):
        return n * n
""")

CELERY_APP = textwrap.dedent("""
    import os
    from celery import Celery
    URL = os.environ["BROKER_URL"]
    app = Celery("tasks", broker=URL, backend=URL)
    app.conf.broker_connection_retry_on_startup = True

    @app.task
    def square(n):
        return n * n
""")

CELERY_CLIENT = textwrap.dedent("""
    import sys, time
    from tasks import square
    count = int(sys.argv[1])
    started = time.perf_counter()
    results = [square.delay(n) for n in range(count)]
    for r in results:
        r.get(timeout=120)
    print(count / (time.perf_counter() - started))
""")


def ping_pong_ms(port: int, rounds: int) -> tuple[float, float]:
    out = subprocess.run(pinned(CLIENT_CPU, [sys.executable, "-c", PING_PONG, str(port),
                                             str(rounds)]),
                         capture_output=True, text=True, check=True, timeout=300).stdout
    p50, p99 = out.split()
    return float(p50), float(p99)


def rq_jobs_per_s(port: int, count: int, work: Path) -> float:
    from redis import Redis
    from rq import Queue

    (work / "rqbench.py").write_text(JOBS)
    connection = Redis(port=port)
    connection.flushall()
    queue = Queue("bench", connection=connection)
    for n in range(count):
        queue.enqueue("rqbench.square", n)
    env = {**os.environ, "PYTHONPATH": str(work)}
    started = time.perf_counter()
    subprocess.run(pinned(CLIENT_CPU, [sys.executable, "-m", "rq.cli", "worker", "--burst",
                                       "--url", f"redis://127.0.0.1:{port}", "bench"]),
                   cwd=work, env=env, capture_output=True, check=True, timeout=600)
    took = time.perf_counter() - started
    assert len(queue.finished_job_registry) == count, "RQ left jobs unfinished"
    connection.close()
    return count / took


def celery_jobs_per_s(port: int, count: int, work: Path) -> float:
    (work / "tasks.py").write_text(CELERY_APP)
    env = {**os.environ, "PYTHONPATH": str(work), "BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    with open(work / "celery.log", "wb") as log:
        worker = subprocess.Popen(pinned(CLIENT_CPU, [
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo",
            "--loglevel", "warning", "--without-heartbeat", "--without-gossip",
            "--without-mingle"]), cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            out = subprocess.run(pinned(CLIENT_CPU, [sys.executable, "-c", CELERY_CLIENT,
                                                     str(count)]),
                                 cwd=work, env=env, capture_output=True, text=True, check=True,
                                 timeout=600).stdout
        finally:
            worker.terminate()
            worker.wait(30)
    return float(out.strip())


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, _ = bursts(quick)
    pings, jobs = (500, 300) if quick else (2000, 1000)
    for r in range(rounds):
        for durable in (False, True):
            label = "durable" if durable else "no fsync"
            progress.step(f"queues: starting raftkv and redis-server ({label}), round {r + 1}")
            with server_pair("queues", durable) as (port, their_port), \
                    tempfile.TemporaryDirectory(prefix="raftkv-queues-") as scratch:
                work = Path(scratch)
                for b in range(count):
                    progress.step(f"queues: {label} pair {b + 1}/{count}, round {r + 1}")
                    for system, server_port in in_turns(
                            b, [("raftkv", port), ("redis-server", their_port)]):
                        p50, p99 = ping_pong_ms(server_port, pings)
                        rows.append(Row("queues", f"BLPOP/LPUSH round trip p50, {label}",
                                        system, p50, "ms", r * count + b,
                                        higher_is_better=False, extra={"p99_ms": p99}))
                        if durable:
                            rows.append(Row("queues", "RQ jobs, durable", system,
                                            rq_jobs_per_s(server_port, jobs, work), "jobs/s",
                                            r * count + b))
                            rows.append(Row("queues", "Celery jobs, durable", system,
                                            celery_jobs_per_s(server_port, jobs, work),
                                            "jobs/s", r * count + b))
    return rows
