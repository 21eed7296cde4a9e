"""Many simulator seeds on every core: ``python -m tests.support.raftsim_many --seeds N``.

Prints seeds per minute, checks performed and, for any failing seed, the command
that replays it with a trace. Exits 1 when any seed fails."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from tests.support.raftsim import STORMY, Violation, run_seed


def one(job: tuple[int, int, bool]) -> tuple[int, int, bool, int, str]:
    seed, nodes, stormy = job
    try:
        sim = run_seed(seed, nodes, 300, faults=STORMY if stormy else None)
    except Violation as exc:
        return seed, nodes, stormy, 0, str(exc)
    return seed, nodes, stormy, sim.checks, ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=100_000)
    args = parser.parse_args()
    jobs = [(s, 3 if s % 2 else 5, s % 3 == 0) for s in range(args.start, args.start + args.seeds)]
    started = time.perf_counter()
    failures: list[tuple[int, int, bool, str]] = []
    checks = 0
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for done, (seed, nodes, stormy, n, error) in enumerate(pool.map(one, jobs, chunksize=50),
                                                               start=1):
            checks += n
            if error:
                failures.append((seed, nodes, stormy, error))
            if done % 500 == 0:
                sys.stderr.write(f"\r{done}/{len(jobs)} seeds, {len(failures)} failing")
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(jobs)} seeds in {minutes:.1f} min ({len(jobs) / minutes:,.0f}/min), "
          f"{checks:,} safety checks, {len(failures)} failing")
    for seed, nodes, stormy, error in failures[:20]:
        print(f"  seed {seed} ({nodes} nodes): {error}\n    replay: python -m "
              f"tests.support.raftsim --seed {seed} --nodes {nodes}"
              f"{' --stormy' if stormy else ''} --trace")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
