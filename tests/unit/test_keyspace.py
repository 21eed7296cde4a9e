import pytest

from raftkv.core.commands import Put
from raftkv.core.keyspace import pack
from raftkv.core.state_machine import StateMachine


def filled(keys, **put):
    sm = StateMachine()
    for i, key in enumerate(keys, start=1):
        sm.apply(i, Put(key, b"v" + key, **put))
    return sm


def test_scan_returns_keys_in_order_with_prefix_and_cursor():
    sm = filled([b"b/2", b"a", b"b/1", b"c", b"b/3"])
    ks = sm.keyspace
    assert [e.key for e in ks.scan(0, prefix=b"b/", limit=2)] == [b"b/1", b"b/2"]
    assert [e.key for e in ks.scan(0, prefix=b"b/", after=b"b/2")] == [b"b/3"]
    assert [e.key for e in ks.scan(0, after=b"b/3")] == [b"c"]
    assert ks.scan(0, prefix=b"zz") == []


def test_scan_hides_expired_keys_without_removing_them():
    sm = filled([b"a", b"b"], expires_at_ms=100)
    sm.apply(3, Put(b"c", b"forever"))
    assert [e.key for e in sm.keyspace.scan(now_ms=100)] == [b"c"]
    assert len(sm.keyspace) == 3


def test_due_returns_expired_keys_earliest_first_and_stops_at_now():
    sm = StateMachine()
    for i, (key, deadline) in enumerate([(b"x", 30), (b"y", 10), (b"z", 20), (b"w", 99)], 1):
        sm.apply(i, Put(key, b"", expires_at_ms=deadline))
    assert sm.keyspace.due(now_ms=30, limit=10) == [b"y", b"z", b"x"]
    assert sm.keyspace.due(now_ms=30, limit=2) == [b"y", b"z"]


def test_iteration_sees_keys_added_during_it_by_order_alone():
    sm = filled([b"a", b"c", b"e"])
    seen = []
    for key in sm.keyspace.iter_keys():
        seen.append(key)
        if key == b"a":
            sm.apply(10, Put(b"d", b""))  # ahead of the cursor: seen
            sm.apply(11, Put(b"0", b""))  # behind it: not seen
    assert seen == [b"a", b"c", b"d", b"e"]


def test_data_bytes_tracks_puts_and_deletes():
    from raftkv.core.commands import Delete

    sm = filled([b"k1", b"k2"])
    assert sm.keyspace.data_bytes == 2 * (2 + 3)
    sm.apply(3, Delete(b"k1"))
    assert sm.keyspace.data_bytes == 5


def test_loading_a_key_twice_is_refused_and_leaves_the_keyspace_empty():
    ks = filled([b"old"]).keyspace
    entry = pack(b"v", 1, 1, None, 1)
    with pytest.raises(ValueError, match="twice"):
        ks.load([(b"a", entry), (b"b", entry), (b"a", entry)])
    assert len(ks) == 0 and ks.data_bytes == 0 and list(ks.iter_keys()) == []
    ks.load([(b"a", entry), (b"b", entry)])
    assert list(ks.iter_keys()) == [b"a", b"b"] and ks.value(b"b", 0) == b"v"
