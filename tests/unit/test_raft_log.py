"""RaftLog: the in-memory twin and the WAL-backed log behave alike, and what ``save``
returned from survives a power loss (CrashFS) and a restart."""

from __future__ import annotations

import random

import pytest

from raftkv.errors import CorruptionError
from raftkv.replication.raft.log import MemoryRaftLog, WalRaftLog
from raftkv.replication.raft.messages import EntryKind, HardState, LogEntry, Snapshot
from tests.support.crashfs import CrashFS


def entries(terms: list[int], start: int = 1) -> list[LogEntry]:
    return [LogEntry(t, start + i, b"d%d" % (start + i)) for i, t in enumerate(terms)]


@pytest.fixture(params=["memory", "wal"])
def make_log(request):
    fs = CrashFS()
    if request.param == "memory":
        log = MemoryRaftLog()
        return lambda: log
    return lambda: WalRaftLog(fs, "/raft", segment_max_bytes=256)


def test_save_and_load_with_a_conflicting_suffix_and_a_snapshot(make_log):
    log = make_log()
    log.save(HardState(1, "n1", 0), entries([1, 1, 1]))
    log.save(HardState(2, "n2", 2), entries([2, 2], start=3))  # replaces 3..
    log.save(None, [LogEntry(2, 5, b"c", EntryKind.CONF)])
    again = make_log().load()  # a restart reads what is durable
    assert again.hard_state == HardState(2, "n2", 2)
    assert [(e.index, e.term) for e in again.entries] == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
    assert again.entries[-1].kind is EntryKind.CONF
    log = make_log()
    log.save(None, [], Snapshot(3, 2, b"image", ("n1", "n2"), ("n3",)))
    after = make_log().load()
    assert after.snapshot == Snapshot(3, 2, b"image", ("n1", "n2"), ("n3",))
    assert [e.index for e in after.entries] == [4, 5]


def lost_after_power_loss() -> int:
    """Crash states after each save in which the saved vote or entries are missing."""
    fs = CrashFS()
    states = []
    fs.on_op = lambda _name: states.append(fs.crash(random.Random(len(states))))
    log = WalRaftLog(fs, "/raft", segment_max_bytes=200)
    saved: list[tuple[HardState, int]] = []
    for term in range(1, 30):
        log.save(HardState(term, f"n{term % 3}", term), entries([term], start=term))
        saved.append((HardState(term, f"n{term % 3}", term), len(states)))
    lost = 0
    for hard_state, after_ops in saved:
        for image in states[after_ops:after_ops + 3]:
            recovered = WalRaftLog(image, "/raft").load()
            forgot = recovered.hard_state.term < hard_state.term or (
                recovered.hard_state.term == hard_state.term
                and recovered.hard_state.vote != hard_state.vote)
            lost += forgot or len(recovered.entries) < hard_state.term
    return lost


def test_what_save_returned_from_survives_every_power_loss():
    assert lost_after_power_loss() == 0


def test_negative_control_saving_without_fsync_is_caught(monkeypatch):
    from raftkv.storage.wal import SegmentedLog

    monkeypatch.setattr(SegmentedLog, "sync", lambda self: None)
    assert lost_after_power_loss() > 0


def test_a_damaged_record_before_the_tail_refuses_to_start():
    fs = CrashFS()
    log = WalRaftLog(fs, "/raft", segment_max_bytes=100_000)
    log.save(HardState(1, "n1", 0), entries([1] * 10))
    (name,) = [n for n in fs.listdir("/raft/log") if n.endswith(".wal")]
    inode = fs.dirs["/raft/log"][name]
    inode.data[30] ^= 0xFF
    with pytest.raises(CorruptionError, match="refusing to start"):
        WalRaftLog(fs, "/raft")


def test_entries_appended_after_an_installed_snapshot_survive_a_restart(make_log):
    """The log did not match the leader's snapshot (so it was dropped), and the leader
    then sent what follows it. Found by the driver simulator: recovery used to apply
    the snapshot only at the end and threw the new entries away with the old ones."""
    log = make_log()
    log.save(HardState(2, None, 30), entries([2] * 39))
    log.save(HardState(4, None, 40), [], Snapshot(40, 4, b"image", ("n1",)))
    log.save(HardState(4, None, 45), entries([4] * 5, start=41))
    again = make_log().load()
    assert again.snapshot is not None and again.snapshot.index == 40
    assert [(e.index, e.term) for e in again.entries] == [(i, 4) for i in range(41, 46)]


def test_a_stale_suffix_replaced_by_a_snapshot_stays_gone_after_a_restart(make_log):
    log = make_log()
    log.save(HardState(2, None, 10), entries([2] * 60))
    log.save(HardState(4, None, 40), [], Snapshot(40, 4, b"image", ("n1",)))
    again = make_log().load()
    assert again.snapshot is not None and again.snapshot.index == 40
    assert again.entries == []  # 41..60 of term 2 did not follow the snapshot's entry 40


@pytest.mark.parametrize("conflict_at", [1, 2, 12, 25])
def test_a_conflict_below_a_full_segment_replays_in_write_order(conflict_at):
    """Every save here rolls to a new segment. A conflict that replaces entries from
    below the current segment's first index must not start a segment that sorts before
    it (replay would bring the stale suffix back) or shares an older one's name (that
    one would be overwritten)."""
    fs = CrashFS()
    log = WalRaftLog(fs, "/raft", segment_max_bytes=1)
    log.save(HardState(1, "n1", 0), [])
    for entry in entries([1] * 30):
        log.save(None, [entry])
    log.save(HardState(2, "n2", 0), entries([2, 2, 2], start=conflict_at))
    want = [(i, 1) for i in range(1, conflict_at)] + [(conflict_at + i, 2) for i in range(3)]
    assert [(e.index, e.term) for e in log.load().entries] == want
    again = WalRaftLog(fs, "/raft", segment_max_bytes=1)  # a restart replays the segments
    assert [(e.index, e.term) for e in again.load().entries] == want
    again.save(None, entries([2], start=conflict_at + 3))  # and appends after them
    final = WalRaftLog(fs, "/raft").load().entries
    assert [(e.index, e.term) for e in final] == [*want, (conflict_at + 3, 2)]
