"""The Raft simulator over thousands of seeded schedules, and the planted bugs it
must catch. Replay a failing seed with:
    python -m tests.support.raftsim --seed N --nodes 3 [--bug NAME] --trace
"""

from __future__ import annotations

import contextlib
import time

import pytest

from raftkv.replication.raft.core import (
    BUG_COMMIT_PREVIOUS_TERM,
    BUG_READ_WITHOUT_HEARTBEAT,
    BUG_TRUNCATE_WITHOUT_CONFLICT,
)
from tests.support.raftsim import (
    BUG_VOTE_NOT_PERSISTED,
    STORMY,
    Faults,
    Simulation,
    Violation,
    figure_8,
    run_seed,
)

TICKS = 300


def trace_of(seed: int, nodes: int, faults: Faults | None) -> str:
    """The last events before a failure, from a traced replay of the same seed."""
    sim = Simulation(seed, nodes, faults, trace=True)
    with contextlib.suppress(Violation):
        sim.run(TICKS)
    return "\n".join(sim.trace[-40:])


def run_many(seeds: range, nodes: int, faults: Faults | None
             ) -> tuple[int, int, int, int, int, int]:
    checks = writes = reads = installs = changes = 0
    for seed in seeds:
        try:
            sim = run_seed(seed, nodes, TICKS, faults=faults)
        except Violation as exc:
            stormy = " --stormy" if faults is STORMY else ""
            raise AssertionError(f"seed {seed}, {nodes} nodes: {exc}\nreplay: python -m "
                                 f"tests.support.raftsim --seed {seed} --nodes {nodes}"
                                 f"{stormy} --trace\n{trace_of(seed, nodes, faults)}") from None
        checks += sim.checks
        writes += sim.writes_acked
        reads += sim.reads_done
        installs += sim.snapshots_installed
        changes += sim.conf_changes
    return len(seeds), checks, writes, reads, installs, changes


@pytest.mark.parametrize(("nodes", "faults", "seeds"), [
    (3, None, range(0, 800)), (5, None, range(800, 1400)),
    (3, STORMY, range(1400, 1800)), (5, STORMY, range(1800, 2100)),
], ids=["3-default", "5-default", "3-stormy", "5-stormy"])
def test_thousands_of_seeds_keep_every_safety_property(nodes, faults, seeds):
    started = time.perf_counter()
    count, checks, writes, reads, installs, changes = run_many(seeds, nodes, faults)
    per_minute = count / (time.perf_counter() - started) * 60
    print(f"\nfault mix: {faults or Faults()}")
    print(f"{nodes} nodes, {'stormy' if faults else 'default'} faults: {count} seeds, "
          f"{per_minute:,.0f} seeds/min, {checks:,} safety checks, {writes:,} writes and "
          f"{reads:,} reads acknowledged, {installs:,} snapshots installed, {changes:,} "
          f"membership changes, 0 violations")
    assert writes > count and installs > 0 and changes > 0  # the schedules did real work


@pytest.mark.parametrize(("bug", "faults"), [
    (BUG_VOTE_NOT_PERSISTED, STORMY),
    (BUG_TRUNCATE_WITHOUT_CONFLICT, None),
    (BUG_READ_WITHOUT_HEARTBEAT, None),
])
def test_negative_control_the_simulator_catches_a_planted_bug(bug, faults):
    caught = []
    for seed in range(400):
        for nodes in (3, 5):
            try:
                run_seed(seed, nodes, TICKS, frozenset({bug}), faults)
            except Violation as exc:
                caught.append((seed, nodes, str(exc)))
        if len(caught) >= 3:
            break
    assert len(caught) >= 3, f"{bug} slipped through 800 schedules"


def test_figure_8_scripted_through_the_simulator_is_safe():
    sim = figure_8()
    assert sim.committed[2] != b"A"  # the old-term entry was rightly never committed


def test_negative_control_committing_an_old_term_entry_by_counting_is_caught():
    with pytest.raises(Violation, match=r"leader completeness|state-machine safety"):
        figure_8(frozenset({BUG_COMMIT_PREVIOUS_TERM}))
