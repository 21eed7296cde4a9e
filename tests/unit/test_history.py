"""The change history (DATA-MODEL.md section 3): every change the state machine
applies is an event, in revision order, bounded, with an explicit compaction revision;
an atomic transaction undone leaves none; a restored state machine starts compacted at
its snapshot."""

from __future__ import annotations

import pytest

from raftkv.core.commands import (
    Compare,
    Delete,
    DeleteExpired,
    Evict,
    Expire,
    Flush,
    IncrBy,
    MultiPut,
    Put,
    Relation,
    Rename,
    Target,
    Txn,
    TypedOp,
)
from raftkv.core.history import Compacted, EventKind, History
from raftkv.core.state_machine import StateMachine


def test_every_kind_of_change_is_an_event_in_revision_order():
    sm = StateMachine()
    sm.apply(1, Put(b"a", b"1"))
    sm.apply(2, MultiPut(((b"b", b"2"), (b"c", b"3"))))
    sm.apply(3, IncrBy(b"a", 5))
    sm.apply(4, TypedOp((b"rpush", b"l", b"x", b"y")))
    sm.apply(5, TypedOp((b"lpop", b"l", b"2")))  # empties the list: the key goes too
    sm.apply(6, Delete(b"b"))
    sm.apply(7, Put(b"t", b"v", expires_at_ms=10, now_ms=1))
    sm.apply(8, DeleteExpired((b"t",), now_ms=20))
    sm.apply(9, Evict((b"c",)))
    sm.apply(10, Rename(b"a", b"z"))
    sm.apply(11, Expire(b"z", 5000, now_ms=20))
    sm.apply(12, Flush())
    sm.apply(13, Delete(b"nothing"))  # changes nothing: no event
    # (a put and a typed op carry the create revision and the version after them)
    assert sm.history.after(0, 13) == [
        (1, b"a", EventKind.PUT, b"1", 1, 1), (2, b"b", EventKind.PUT, b"2", 2, 1),
        (2, b"c", EventKind.PUT, b"3", 2, 1), (3, b"a", EventKind.PUT, b"6", 1, 2),
        (4, b"l", EventKind.TYPED, b"rpush", 4, 1), (5, b"l", EventKind.DELETE, None, 0, 0),
        (6, b"b", EventKind.DELETE, None, 0, 0), (7, b"t", EventKind.PUT, b"v", 7, 1),
        (8, b"t", EventKind.EXPIRE, None, 0, 0), (9, b"c", EventKind.EVICT, None, 0, 0),
        (10, b"z", EventKind.PUT, b"6", 10, 1), (10, b"a", EventKind.DELETE, None, 0, 0),
        (11, b"z", EventKind.PUT, b"6", 10, 2), (12, b"", EventKind.FLUSH, None, 0, 0),
    ]
    assert [e[0] for e in sm.history.after(9, 13)] == [10, 10, 11, 12]
    assert sm.history.after(3, 13, prefix=b"t") == [
        (7, b"t", EventKind.PUT, b"v", 7, 1), (8, b"t", EventKind.EXPIRE, None, 0, 0),
        (12, b"", EventKind.FLUSH, None, 0, 0)]  # a flush concerns every prefix


def test_the_history_is_bounded_and_says_where_it_was_compacted():
    sm = StateMachine(history_events=5)
    for i in range(1, 21):
        sm.apply(i, Put(b"k%d" % (i % 3), b"v%d" % i))
    assert len(sm.history) == 5 and sm.history.compacted == 15
    assert [e[0] for e in sm.history.after(15, 20)] == [16, 17, 18, 19, 20]
    with pytest.raises(Compacted) as refused:
        sm.history.after(14, 20)
    assert (refused.value.compacted, refused.value.current) == (15, 20)
    by_bytes = History(max_events=1000, max_bytes=1000)
    for i in range(1, 11):
        by_bytes.record(i, b"key", EventKind.PUT, b"x" * 300)
    assert len(by_bytes) == 2 and by_bytes.compacted == 8
    # an entry's plain puts are held together and count one event each
    batches = StateMachine(history_events=5)
    batches.apply(1, MultiPut(((b"x1", b"1"), (b"y", b"2"), (b"x2", b"3"))))
    batches.apply(2, MultiPut(((b"x3", b"4"), (b"x1", b"5"))))
    assert len(batches.history) == 5 and batches.history.compacted == 0
    assert batches.history.after(0, 2, prefix=b"x") == [
        (1, b"x1", EventKind.PUT, b"1", 1, 1), (1, b"x2", EventKind.PUT, b"3", 1, 1),
        (2, b"x3", EventKind.PUT, b"4", 2, 1), (2, b"x1", EventKind.PUT, b"5", 1, 2)]
    batches.apply(3, Put(b"x5", b"6"))  # a sixth event: the oldest entry's go together
    assert len(batches.history) == 3 and batches.history.compacted == 1


def test_a_run_of_typed_writes_to_one_key_is_one_slot_of_its_events():
    sm = StateMachine(history_events=6)
    pushes = tuple(TypedOp((b"rpush", b"q", b"%d" % i)) for i in range(4))
    sm.apply(1, Txn((*pushes, TypedOp((b"lpop", b"q")), TypedOp((b"sadd", b"s", b"m")))))
    run = [(1, b"q", EventKind.TYPED, name, 1, version)
           for name, version in ((b"rpush", 1), (b"rpush", 2), (b"rpush", 3), (b"rpush", 4),
                                 (b"lpop", 5))]
    assert sm.history.after(0, 1) == [*run, (1, b"s", EventKind.TYPED, b"sadd", 1, 1)]
    assert sm.history.after(0, 1, prefix=b"s") == [(1, b"s", EventKind.TYPED, b"sadd", 1, 1)]
    assert len(sm.history) == 6 and sm.history.compacted == 0
    # a run emptying its key: its events so far, then the delete, in order
    sm.apply(2, Txn((TypedOp((b"rpush", b"e", b"x")), TypedOp((b"lpop", b"e")),
                     TypedOp((b"rpush", b"e", b"y")))))
    assert sm.history.after(1, 2) == [
        (2, b"e", EventKind.TYPED, b"rpush", 2, 1), (2, b"e", EventKind.DELETE, None, 0, 0),
        (2, b"e", EventKind.TYPED, b"rpush", 2, 1)]
    # past the bound the first entry's run went whole (5 events), its SADD stayed
    assert len(sm.history) == 4 and sm.history.compacted == 1


def test_a_batch_of_puts_gives_back_every_key_and_value_byte_for_byte():
    # A batch is held packed (u32 lengths, short ones from a table up to 4,095): values
    # at, around and far past that edge, empty ones, and binary bytes come back whole,
    # with the create revisions and versions past a 32-bit revision.
    values = [b"", b"\x00", b"v" * 4095, b"w" * 4096, bytes(range(256)) * 300]
    sm = StateMachine()
    sm.apply(2**33, MultiPut(tuple((b"k%d" % i, v) for i, v in enumerate(values))))
    sm.apply(2**33 + 1, MultiPut(((b"k\xff" * 2000, b"x"), (b"k0", b"again"))))
    events = sm.history.after(0, 2**33 + 1)
    assert [(e[1], e[3]) for e in events] == [(b"k%d" % i, v) for i, v in enumerate(values)] \
        + [(b"k\xff" * 2000, b"x"), (b"k0", b"again")]
    assert [(e[0], e[4], e[5]) for e in events[-2:]] == [(2**33 + 1, 2**33 + 1, 1),
                                                         (2**33 + 1, 2**33, 2)]


def test_an_undone_atomic_transaction_leaves_no_event():
    sm = StateMachine()
    sm.apply(1, Put(b"n", b"word"))
    failed = sm.apply(2, Txn((Put(b"a", b"1"), MultiPut(((b"b", b"2"),)), IncrBy(b"n", 1)),
                             atomic=True))
    assert failed.failed_at == 2 and sm.keyspace.get(b"a", 0) is None
    assert len(sm.history) == 1
    assert [e[0] for e in sm.history.after(0, 2)] == [1]
    not_taken = sm.apply(3, Txn((Put(b"a", b"1"),), compares=(
        Compare(b"n", Target.VALUE, Relation.EQUAL, value=b"other"),), atomic=True))
    assert not not_taken.succeeded and [e[0] for e in sm.history.after(0, 3)] == [1]


def test_an_undone_transaction_leaves_no_event_in_a_full_history():
    sm = StateMachine(history_events=4)
    for i in range(1, 9):
        sm.apply(i, Put(b"n", b"word"))
    failed = sm.apply(9, Txn((Put(b"a", b"1"), Put(b"b", b"2"), IncrBy(b"n", 1)),
                             atomic=True))
    assert failed.failed_at == 2
    held = [e[0] for e in sm.history.after(sm.history.compacted, 9)]
    assert held == list(range(sm.history.compacted + 1, 9)) and held  # none from 9


def test_watch_reads_removals_from_the_history_and_fails_safe_past_it():
    sm = StateMachine(history_events=3)
    sm.apply(1, Put(b"k", b"v"))
    sm.apply(2, Delete(b"k"))
    assert sm.changed_since(b"k", 0, 1, 0)  # absent at both ends, deleted in between
    assert not sm.changed_since(b"k", 0, 2, 0)
    for i in range(3, 7):
        sm.apply(i, Put(b"other", b"%d" % i))
    assert sm.history.compacted == 3
    assert sm.changed_since(b"never", 0, 2, 0)  # older than the history: the safe side
    assert not sm.changed_since(b"never", 0, 3, 0)


def test_a_restored_state_machine_starts_compacted_at_its_snapshot():
    sm = StateMachine()
    for i in range(1, 6):
        sm.apply(i, Put(b"k", b"%d" % i))
    twin = StateMachine()
    twin.restore(sm.snapshot())
    with pytest.raises(Compacted):
        twin.history.after(4, 5)
    assert twin.history.after(5, 5) == []
    twin.apply(6, Put(b"k", b"6"))
    assert twin.history.after(5, 6) == [(6, b"k", EventKind.PUT, b"6", 1, 6)]
