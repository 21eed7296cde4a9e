"""The storage engine's figures: in-process keyspace, WAL group commit, restart time
and memory per key at 1M keys (with redis-server's memory for the same keys)."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Row, bursts, free_port, in_turns, pinned, scratch_dir, wait_port

KEY = b"key:%010d"
# the sizes of keyspace the gets curve reads from, with the main rows' (100k quick, 300k
# full): from keys that fit in the CPU's caches to keys that miss them on every get
KEYS_HELD = (1_000, 10_000, 30_000, 100_000, 1_000_000)


def keyspace_puts(n: int) -> float:
    from raftkv.core.commands import Put
    from raftkv.core.state_machine import StateMachine

    commands = [Put(KEY % i, b"v" * 100, request_id=b"req-%d" % i) for i in range(n)]
    sm = StateMachine()
    started = time.perf_counter()
    for index, command in enumerate(commands, 1):
        sm.apply(index, command)
    return n / (time.perf_counter() - started)


def _filled(n: int):
    """A keyspace of ``n`` keys with 100-byte values put through ``apply``, and the floor's
    dict of the same keys built the same way (inserted in order, a value object each)."""
    from raftkv.core.commands import Put
    from raftkv.core.state_machine import StateMachine

    sm = StateMachine()
    for i in range(n):
        sm.apply(i + 1, Put(KEY % i, b"v" * 100))
    width = 100  # a variable: the literal ``b"v" * 100`` is folded into one shared object,
    # which would give the floor one value for all keys and a denser heap than any store's
    return sm.keyspace, {KEY % i: b"v" * width for i in range(n)}


def _value_and_floor(ks, bare: dict[bytes, bytes], keys: list[bytes]):
    """Two loops over ``keys``: Keyspace.value, and the floor (``dict.get`` on ``bare``,
    not reading the values it finds)."""
    get = bare.get

    def values() -> None:
        for key in keys:
            ks.value(key, 0)

    def floor() -> None:
        for key in keys:
            get(key)

    return values, floor


def _per_s_in_turns(loops: list, ops: int, bursts: int) -> list[tuple[float, ...]]:
    """ops/s of each loop (in the order given), ``bursts`` times, the loops taking turns
    at going first."""
    out = []
    for b in range(bursts):
        rates = {}
        for loop in in_turns(b, loops):
            started = time.perf_counter()
            loop()
            rates[loop] = ops / (time.perf_counter() - started)
        out.append(tuple(rates[loop] for loop in loops))
    return out


def keyspace_gets(n: int, bursts: int) -> list[tuple[float, ...]]:
    """Reads/s of random keys, ``bursts`` times in turn: through Keyspace.get (an Entry),
    Keyspace.value, Keyspace.values in runs of 16 (a pipeline's GETs), and the floor.
    Every key is read once per burst, in a shuffled order, each read with a key object
    of its own made in that order (see ``gets_from``)."""
    ks, bare = _filled(n)
    order = list(range(n))
    random.Random(1).shuffle(order)
    keys = [KEY % i for i in order]
    runs = [keys[i:i + 16] for i in range(0, n, 16)]
    values, floor = _value_and_floor(ks, bare, keys)

    def entries() -> None:
        for key in keys:
            ks.get(key, 0)

    def batches() -> None:
        for run in runs:
            ks.values(run, 0)

    return _per_s_in_turns([entries, values, batches, floor], n, bursts)


def gets_from(n: int, reads: int, bursts: int) -> list[tuple[float, ...]]:
    """(Keyspace.value, floor) reads/s of ``reads`` keys drawn at random from ``n``, in
    turns: how the rate of a get falls once the keys read no longer fit in the CPU's
    caches, for the keyspace and the bare ``dict.get`` loop alike. Each read has a key
    object of its own, made in the order of the reads, as a server parses keys from its
    requests: reading ``n`` shared key objects at random would add a cache miss per get
    that no server has."""
    ks, bare = _filled(n)
    keys = [KEY % i for i in random.Random(2).choices(range(n), k=reads)]
    return _per_s_in_turns(list(_value_and_floor(ks, bare, keys)), reads, bursts)


async def _group_commit(data_dir: Path, writers: int, per_writer: int) -> dict[str, float]:
    from raftkv.core.commands import Put
    from raftkv.replication.local import LocalReplicator
    from raftkv.replication.replay import recover
    from raftkv.storage.fs import OsFileSystem
    from raftkv.storage.wal import FsyncPolicy

    fs = OsFileSystem()
    node = LocalReplicator(recover(fs, str(data_dir)), FsyncPolicy.ALWAYS)

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await node.submit(Put(b"w%d-%d" % (w, i), b"x" * 100))

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    fsyncs = node.writer.fsyncs
    await node.close()
    return {"writes_per_s": writers * per_writer / elapsed, "fsyncs_per_s": fsyncs / elapsed,
            "records_per_fsync": writers * per_writer / max(fsyncs, 1)}


def bare_fsync_rate(data_dir: Path, n: int) -> float:
    """The disk's ceiling: one small write + fdatasync per record, one writer."""
    path = data_dir / "bare"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    started = time.perf_counter()
    for _ in range(n):
        os.write(fd, b"x" * 128)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    return n / elapsed


def group_commit(writers: int, per_writer: int) -> dict[str, float]:
    import uvloop

    return uvloop.run(_group_commit(scratch_dir("wal"), writers, per_writer))


def restart_seconds(keys: int, tail: int) -> dict[str, float]:
    """Build ``keys`` keys, snapshot them, add ``tail`` WAL records, time recovery.
    Also the snapshot's pause: the point-in-time copy it takes on the event loop (the
    encoding and writing run on a thread), the longest the loop stops for it."""
    import uvloop

    from raftkv.core.commands import Put
    from raftkv.replication.local import LocalReplicator
    from raftkv.replication.replay import recover
    from raftkv.storage.fs import OsFileSystem
    from raftkv.storage.wal import FsyncPolicy

    data_dir = scratch_dir("restart")
    fs = OsFileSystem()

    pauses: list[float] = []

    async def build() -> None:
        recovered = recover(fs, str(data_dir))
        sm = recovered.state_machine
        for i in range(keys):
            sm.apply(i + 1, Put(KEY % i, b"v" * 16))
        for _ in range(5):
            started = time.perf_counter()
            sm.snapshot()
            pauses.append(time.perf_counter() - started)
        node = LocalReplicator(recovered, FsyncPolicy.NO)
        await node.snapshot()
        for i in range(tail):
            node.submit_nowait(Put(b"tail%d" % i, b"t" * 16))
        await node.close()

    uvloop.run(build())
    started = time.perf_counter()
    recovered = recover(fs, str(data_dir))
    elapsed = time.perf_counter() - started
    assert len(recovered.state_machine.keyspace) == keys + tail
    return {"seconds": elapsed, "keys": keys + tail, "replayed": recovered.replayed,
            "snapshot_pause_s": statistics.median(pauses)}


_MEMORY_CHILD = """
import sys
from raftkv.core.commands import Put
from raftkv.core.state_machine import StateMachine
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096
n = int(sys.argv[1])
before = rss()
sm = StateMachine()
for i in range(n):
    sm.apply(i + 1, Put(b"key:%010d" % i, b"val:%012d" % i))
sm.keyspace.iter_keys().__next__()  # merge the ordered index, as the first scan would
print(rss() - before)
"""


def memory_per_key(n: int) -> dict[str, float]:
    raw = n * (14 + 16)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n)], capture_output=True,
                         text=True, check=True)
    ours = (int(out.stdout.strip()) - raw) / n
    return {"raftkv_bytes_per_key": ours, "redis_bytes_per_key": _redis_memory(n, raw)}


def _redis_memory(n: int, raw: int) -> float:
    port = free_port()
    data = scratch_dir("redis-mem")
    proc = subprocess.Popen(pinned("0", ["redis-server", "--port", str(port), "--save", "",
                                         "--appendonly", "no", "--dir", str(data)]),
                            stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        before = _redis_rss(port)
        payload = b"".join(b"*3\r\n$3\r\nSET\r\n$14\r\nkey:%010d\r\n$16\r\nval:%012d\r\n" % (i, i)
                           for i in range(n))
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=payload, check=True,
                       capture_output=True)
        return (_redis_rss(port) - before - raw) / n
    finally:
        proc.terminate()
        proc.wait()


def _redis_rss(port: int) -> int:
    info = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"], capture_output=True,
                          text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return int(fields["used_memory_rss"])


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    n = 100_000 if quick else 300_000
    count, _ = bursts(quick)
    for r in range(rounds):
        progress.step(f"engine: keyspace puts, round {r + 1}")
        rows.append(Row("engine", "keyspace puts (apply)", "raftkv", keyspace_puts(n),
                        "ops/s", r))
        progress.step(f"engine: keyspace gets, round {r + 1}")
        for b, (entry_rate, value_rate, batch_rate, floor) in enumerate(
                keyspace_gets(n, count)):
            pair = r * count + b
            rows.append(Row("engine", "keyspace gets (Entry)", "raftkv", entry_rate, "ops/s",
                            pair))
            for workload, rate in (("keyspace gets (value)", value_rate),
                                   ("keyspace gets (values, runs of 16)", batch_rate)):
                held = {"keys": n}
                rows.append(Row("engine", workload, "raftkv", rate, "ops/s", pair, extra=held))
                rows.append(Row("engine", workload, "bare dict.get loop", floor, "ops/s", pair,
                                extra=held))
        progress.step(f"engine: gets by keys held, round {r + 1}")
        for size in (size for size in KEYS_HELD if size != n):
            workload = f"keyspace gets (value), {size:,} keys"
            for b, (value_rate, floor) in enumerate(gets_from(size, n, count)):
                pair = r * count + b
                rows.append(Row("engine", workload, "raftkv", value_rate, "ops/s", pair,
                                extra={"keys": size}))
                rows.append(Row("engine", workload, "bare dict.get loop", floor, "ops/s", pair,
                                extra={"keys": size}))
        progress.step(f"engine: WAL 64 writers, round {r + 1}")
        many = group_commit(64, 400 if quick else 1500)
        rows.append(Row("engine", "WAL always, 64 writers", "raftkv", many["writes_per_s"],
                        "writes/s", r, extra=many))
        progress.step(f"engine: WAL 1 writer, round {r + 1}")
        for b in range(count):  # the disk's pace drifts: the two take turns
            pair = r * count + b
            for system in in_turns(pair, ["raftkv", "bare fsync loop"]):
                if system == "raftkv":
                    one = group_commit(1, 250 if quick else 500)
                    rows.append(Row("engine", "WAL always, 1 writer", system,
                                    one["writes_per_s"], "writes/s", pair, extra=one))
                else:
                    rows.append(Row("engine", "WAL always, 1 writer", system,
                                    bare_fsync_rate(scratch_dir("fsync"), 250 if quick else 500),
                                    "writes/s", pair))
    keys = 200_000 if quick else 1_000_000
    progress.step(f"engine: restart with {keys} keys")
    restart = restart_seconds(keys, 10_000)
    rows.append(Row("engine", f"restart, {keys // 1000}k keys", "raftkv", restart["seconds"],
                    "s", 0, higher_is_better=False, extra=restart))
    rows.append(Row("engine", f"snapshot pause (copy on the loop), {keys // 1000}k keys",
                    "raftkv", restart["snapshot_pause_s"], "s", 0, higher_is_better=False))
    progress.step(f"engine: memory at {keys} keys")
    memory = memory_per_key(keys)
    rows.append(Row("engine", f"memory over raw, {keys // 1000}k keys", "raftkv",
                    memory["raftkv_bytes_per_key"], "B/key", 0, higher_is_better=False))
    rows.append(Row("engine", f"memory over raw, {keys // 1000}k keys", "redis-server",
                    memory["redis_bytes_per_key"], "B/key", 0, higher_is_better=False))
    return rows
