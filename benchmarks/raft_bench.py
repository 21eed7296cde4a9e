"""The Raft core alone: three cores joined by a null transport (every message handed
over at once), proposals in batches; prints committed entries per second."""

from __future__ import annotations

import random
import time

from benchmarks.common import Row
from raftkv.replication.raft.core import RaftCore, Role


def committed_per_second(entries: int, batch: int = 1000) -> float:
    ids = ["n1", "n2", "n3"]
    cores = {i: RaftCore(i, ids, random.Random(n)) for n, i in enumerate(ids)}
    inbox: list = []

    def settle() -> None:
        while True:
            moved = False
            for core in cores.values():
                while (rd := core.ready()) is not None:
                    moved = True
                    inbox.extend(rd.messages)
                    core.advance(rd)
            while inbox:
                moved = True
                m = inbox.pop()
                cores[m.to].step(m)
            if not moved:
                return

    leader = cores["n1"]
    leader.campaign(pre_vote=True)
    settle()
    assert leader.role == Role.LEADER
    payload = b"x" * 100
    start_commit = leader.commit
    started = time.perf_counter()
    for _ in range(entries // batch):
        leader.propose_batch([payload] * batch)
        settle()
    elapsed = time.perf_counter() - started
    return (leader.commit - start_commit) / elapsed


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows = []
    for r in range(rounds):
        progress.step(f"raft: core commits, round {r + 1}")
        rows.append(Row("raft", "core commits, 3 nodes, null transport", "raftkv",
                        committed_per_second(50_000 if quick else 200_000), "entries/s", r))
    return rows
