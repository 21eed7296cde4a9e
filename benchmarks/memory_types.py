"""Memory per element of each type, and the snapshot pause at 1M keys of mixed types.

    python -m benchmarks.memory_types            # about a minute

1. **Memory per element**: a hash, a list, a set and a sorted set of 100,000 elements
   (16-byte members, 16-byte values), and 1M small hashes, lists and sorted sets of 10
   elements each, built through the state machine's ``apply``;
   bytes per element measured with tracemalloc (the change history, a fixed 100k
   events per node, left out), beside the keyspace's own estimate
   (what eviction's ``max_memory_bytes`` counts) and redis-server's ``used_memory``
   growth for the same data.
2. **Snapshot pause**: 1M keys - a fifth each strings, hashes, lists, sets and sorted
   sets of 5 elements - then the time ``StateMachine.snapshot()`` holds the loop (the
   point-in-time copy; encoding runs on a thread), and the first write to each
   container after it (copy-on-write).
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Final

import redis

from benchmarks.common import free_port, scratch_dir, wait_port
from raftkv.core.commands import MultiPut, TypedOp
from raftkv.core.state_machine import StateMachine

ELEMENTS = 100_000
SMALL_KEYS = 1_000_000
FAMILIES = {
    "hash": lambda i: (b"hset", b"h", b"field-%010d" % i, b"value-%010d" % i),
    "list": lambda i: (b"rpush", b"l", b"item-%011d" % i),
    "set": lambda i: (b"sadd", b"s", b"member-%09d" % i),
    "zset": lambda i: (b"zadd", b"z", b"%d" % i, b"member-%09d" % i),
}


def _bar(done: int, total: int, label: str) -> None:
    filled = int(30 * done / total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {label:<40}")
    sys.stderr.flush()


SMALL: Final = {
    "hash": lambda i: (b"hset", b"h:%09d" % i,
                       *(part for f in range(10) for part in (b"field%d" % f, b"value%d" % f))),
    "list": lambda i: (b"rpush", b"l:%09d" % i, *(b"item%d" % f for f in range(10))),
    "zset": lambda i: (b"zadd", b"z:%09d" % i,
                       *(part for f in range(10) for part in (b"%d" % f, b"member%d" % f))),
}


def ours(make: Callable[[int], tuple[bytes, ...]], commands: int, elements: int
         ) -> tuple[float, float]:
    """(measured bytes per element, the keyspace's own estimate per element) after
    applying ``make(i)`` for i < ``commands``, which make ``elements`` elements."""
    gc.collect()
    tracemalloc.start()
    sm = StateMachine(history_events=1)  # (the history's last 10k events are counted
    before = tracemalloc.get_traced_memory()[0]  # once per node, not per element)
    for i in range(commands):
        sm.apply(i + 1, TypedOp(make(i)))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / elements, sm.keyspace.data_bytes / elements


def theirs(client: redis.Redis, make: Callable[[int], tuple[bytes, ...]], commands: int,
           elements: int) -> float:
    """redis-server's ``used_memory`` growth per element for the same commands."""
    client.flushall()
    before = client.info("memory")["used_memory"]
    pipe = client.pipeline(transaction=False)
    for i in range(commands):
        pipe.execute_command(*make(i))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return (client.info("memory")["used_memory"] - before) / elements


def snapshot_pause(keys: int = 1_000_000) -> tuple[float, float, float]:
    """(ms to build, ms the snapshot holds the loop, us per first write after it)."""
    sm = StateMachine()
    started = time.perf_counter()
    index = 0
    fifth = keys // 5
    for start in range(0, fifth, 1000):
        index += 1
        sm.apply(index, MultiPut(tuple((b"str:%09d" % i, b"v" * 16)
                                       for i in range(start, min(start + 1000, fifth)))))
    commands = [lambda k: (b"hset", k, b"a", b"1", b"b", b"2", b"c", b"3", b"d", b"4", b"e", b"5"),
                lambda k: (b"rpush", k, b"1", b"2", b"3", b"4", b"5"),
                lambda k: (b"sadd", k, b"a", b"b", b"c", b"d", b"e"),
                lambda k: (b"zadd", k, b"1", b"a", b"2", b"b", b"3", b"c", b"4", b"d", b"5", b"e")]
    for family, command in enumerate(commands):
        for i in range(fifth):
            index += 1
            sm.apply(index, TypedOp(command(b"t%d:%09d" % (family, i))))
        _bar(family + 1, 5, f"built {(family + 2) * fifth:,} keys")
    built_ms = (time.perf_counter() - started) * 1000
    pauses = []
    for _ in range(5):
        gc.collect()
        started = time.perf_counter()
        sm.snapshot()
        pauses.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for i in range(10_000):
        index += 1
        sm.apply(index, TypedOp((b"rpush", b"t1:%09d" % i, b"6")))
    first_write_us = (time.perf_counter() - started) * 1e6 / 10_000
    return built_ms, statistics.median(pauses), first_write_us


def main() -> int:
    work = scratch_dir("memory")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(work)],
                              stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        client = redis.Redis(port=port)
        rows = []
        for n, (family, make) in enumerate(FAMILIES.items()):
            _bar(n, len(FAMILIES) + 1, f"memory: {family}")
            measured, estimate = ours(make, ELEMENTS, ELEMENTS)
            rows.append((family, measured, estimate, theirs(client, make, ELEMENTS, ELEMENTS)))
        small = []
        for family, make in SMALL.items():
            _bar(len(FAMILIES), len(FAMILIES) + 1, f"memory: {SMALL_KEYS:,} small {family} keys")
            small.append((family, ours(make, SMALL_KEYS, SMALL_KEYS * 10)[0],
                          theirs(client, make, SMALL_KEYS, SMALL_KEYS * 10)))
        _bar(len(FAMILIES), len(FAMILIES) + 1, "snapshot pause at 1M keys")
        built_ms, pause_ms, first_write_us = snapshot_pause()
        sys.stderr.write("\n")
        print(f"Memory per element, {ELEMENTS:,}-element containers:\n")
        print("| type | raftkv measured | raftkv estimate (eviction) | redis-server | ratio |")
        print("|---|---|---|---|---|")
        for family, measured, estimate, redis_bytes in rows:
            print(f"| {family} | {measured:.0f} B | {estimate:.0f} B | {redis_bytes:.0f} B | "
                  f"{measured / redis_bytes:.2f}x |")
        print(f"\nMemory per element, {SMALL_KEYS:,} containers of 10 elements each:\n")
        print("| type | raftkv | redis-server (listpack) | ratio |")
        print("|---|---|---|---|")
        for family, measured, redis_bytes in small:
            print(f"| {family} | {measured:.0f} B | {redis_bytes:.0f} B | "
                  f"{measured / redis_bytes:.2f}x |")
        print(f"\nSnapshot at 1M keys of mixed types (built in {built_ms / 1000:.1f} s): "
              f"the loop is held {pause_ms:.0f} ms (median of 5); a first write to a "
              f"container after it costs {first_write_us:.1f} us (copy-on-write).")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
