"""Job queues on raftkv as their users run them, against one node and through a
follower of a three-node cluster whose leader is killed mid-run:

- a real Celery worker (``--pool solo``) with raftkv as its broker (kombu's Redis
  transport: LPUSH, BRPOP, the unacked hash and sorted set, pub/sub) and its result
  backend (SETEX, PUBLISH);
- a real RQ worker (BLMOVE or BLPOP to fetch, sorted-set registries, Lua, results in
  streams: XADD, and XREAD BLOCK to wait for them).

Every job records each run of itself, so a run counts jobs enqueued, done, lost (0
for every acknowledged enqueue) and run twice (0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import IO

import redis

TASKS = textwrap.dedent("""
    import os
    import redis
    from celery import Celery

    URL = os.environ["BROKER_URL"]
    app = Celery("tasks", broker=URL, backend=URL)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.broker_transport_options = {"socket_timeout": 10}
    store = redis.Redis.from_url(URL, socket_timeout=10)

    @app.task
    def square(n):
        store.incr(f"ran:{n}")  # every run of this job, counted
        return n * n
""")


RQ_JOBS = textwrap.dedent("""
    import os
    import redis

    store = redis.Redis.from_url(os.environ["BROKER_URL"], socket_timeout=10)

    def square(n):
        store.incr(f"ran:{n}")  # every run of this job, counted
        return n * n
""")


def test_an_rq_worker_runs_every_job_once(resp_endpoint, tmp_path: Path) -> None:
    from rq import Queue

    port, cluster = resp_endpoint
    url = f"redis://127.0.0.1:{port}/0"
    workdir = tmp_path / "rqapp"
    workdir.mkdir()
    (workdir / "rqjobs.py").write_text(RQ_JOBS)
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed at the end
    env = {**os.environ, "BROKER_URL": url, "PYTHONPATH": str(workdir)}
    worker = subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--url", url,
                               "--with-scheduler"], cwd=workdir, stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    connection = redis.Redis(port=port, socket_timeout=20)
    try:
        queue = Queue(connection=connection)
        jobs = [queue.enqueue("rqjobs.square", n) for n in range(20)]
        done = {}
        for n, job in enumerate(jobs):
            result = job.latest_result(timeout=60)  # XREAD BLOCK on the job's results
            assert result is not None, f"job {n} gave no result ({_tail(workdir)})"
            done[n] = result.return_value
            if n == 7 and cluster is not None:  # kill the leader mid-run
                leader = cluster.leader()
                cluster.nodes[leader].kill()
                cluster.leader(exclude=leader)
        assert done == {n: n * n for n in range(20)}  # enqueued 20, done 20, lost 0
        runs = [int(connection.get(f"ran:{n}") or 0) for n in range(20)]
        assert runs == [1] * 20, runs  # none run twice
    finally:
        connection.close()
        stop(worker, log)


def stop(worker: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Stop a worker by its PID (SIGTERM, then SIGKILL), and close its log."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)
    log.close()


def _tail(workdir: Path) -> str:
    return (workdir / "worker.log").read_text(errors="replace")[-2000:]


def start_worker(workdir: Path, url: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    (workdir / "tasks.py").write_text(TASKS)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo",
         "--loglevel", "warning", "--without-heartbeat", "--without-gossip",
         "--without-mingle"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "BROKER_URL": url, "PYTHONPATH": str(workdir)})


def test_a_celery_worker_runs_every_job_once(resp_endpoint, tmp_path: Path) -> None:
    port, cluster = resp_endpoint
    url = f"redis://127.0.0.1:{port}/0"
    workdir = tmp_path / "app"
    workdir.mkdir()
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed at the end
    worker = start_worker(workdir, url, log)
    sys.path.insert(0, str(workdir))
    os.environ["BROKER_URL"] = url
    results = []
    try:
        import tasks  # the app module the worker runs, as the producer imports it

        results = [tasks.square.delay(n) for n in range(30)]
        done = {}
        for n, result in enumerate(results):
            done[n] = result.get(timeout=60)
            if n == 10 and cluster is not None:  # kill the leader mid-run
                leader = cluster.leader()
                cluster.nodes[leader].kill()
                cluster.leader(exclude=leader)
        assert done == {n: n * n for n in range(30)}  # enqueued 30, done 30, lost 0
        store = redis.Redis(port=port)
        runs = [int(store.get(f"ran:{n}") or 0) for n in range(30)]
        assert runs == [1] * 30, runs  # none run twice
        store.close()
    finally:
        for result in results:  # (now, not in a later test's garbage collection)
            result.backend.remove_pending_result(result)
            result.backend = None
        sys.path.remove(str(workdir))
        sys.modules.pop("tasks", None)
        os.environ.pop("BROKER_URL", None)
        stop(worker, log)


def test_a_bullmq_queue_and_worker_run_every_job_once(resp_endpoint) -> None:
    """BullMQ's Python port: its 50-odd Lua scripts (cjson, cmsgpack), BZPOPMIN to
    wait for work, streams for its events."""
    import asyncio

    from bullmq import Queue, Worker

    port, cluster = resp_endpoint
    opts = {"connection": f"redis://127.0.0.1:{port}"}
    runs: dict[int, int] = {}

    async def scenario() -> dict[int, int]:
        queue = Queue("jobs", opts)
        results: dict[int, int] = {}
        all_done = asyncio.Event()

        async def process(job, token):
            n = job.data["n"]
            runs[n] = runs.get(n, 0) + 1
            return n * n

        def completed(job, result):
            results[job.data["n"]] = result
            if len(results) == 20:
                all_done.set()

        worker = Worker("jobs", process, opts)
        worker.on("completed", completed)
        try:
            for n in range(20):
                await queue.add("square", {"n": n})
                if n == 8 and cluster is not None:  # kill the leader mid-run
                    leader = cluster.leader()
                    cluster.nodes[leader].kill()
                    await asyncio.to_thread(cluster.leader, 15.0, leader)
            await asyncio.wait_for(all_done.wait(), 60)
        finally:
            await worker.close()
            await queue.close()
        return results

    results = asyncio.run(scenario())
    assert results == {n: n * n for n in range(20)}  # enqueued 20, done 20, lost 0
    assert runs == dict.fromkeys(range(20), 1), runs  # none run twice
