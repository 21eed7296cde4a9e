import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.core.commands import (
    Append,
    Cond,
    Delete,
    DeleteExpired,
    Evict,
    Expire,
    ExpireWhen,
    Flush,
    IncrBy,
    MultiPut,
    Noop,
    Outcome,
    Put,
)
from raftkv.core.numbers import parse_int64
from raftkv.core.state_machine import StateMachine


def applied(*commands):
    sm = StateMachine()
    results = [sm.apply(i, cmd) for i, cmd in enumerate(commands, start=1)]
    return sm, results


def test_put_creates_then_replaces_with_growing_revisions():
    sm, (first, second) = applied(Put(b"k", b"1"), Put(b"k", b"2"))
    assert first.ok and first.previous is None and first.entry.version == 1
    assert second.previous.value == b"1"
    entry = sm.keyspace.get(b"k", 0)
    assert (entry.value, entry.version, entry.create_revision, entry.mod_revision) == (b"2", 2, 1, 2)


def test_create_only_put_fails_on_a_live_key_and_succeeds_on_an_expired_one():
    sm, results = applied(
        Put(b"k", b"1", expires_at_ms=100, now_ms=0),
        Put(b"k", b"2", cond=Cond.ABSENT, now_ms=50),
        Put(b"k", b"3", cond=Cond.ABSENT, now_ms=100),
    )
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.CONDITION_FAILED, Outcome.OK]
    entry = sm.keyspace.get(b"k", 200)
    assert entry.value == b"3" and entry.version == 1 and entry.create_revision == 3


def test_compare_and_swap_needs_the_current_mod_revision():
    sm, results = applied(
        Put(b"k", b"1"),
        Put(b"k", b"2", cond=Cond.MOD_REVISION, expected_mod_revision=7),
        Put(b"k", b"3", cond=Cond.MOD_REVISION, expected_mod_revision=1),
        Delete(b"k", cond=Cond.MOD_REVISION, expected_mod_revision=1),
        Delete(b"k", cond=Cond.MOD_REVISION, expected_mod_revision=3),
    )
    assert [r.outcome for r in results] == [
        Outcome.OK, Outcome.CONDITION_FAILED, Outcome.OK, Outcome.CONDITION_FAILED, Outcome.OK]
    assert sm.keyspace.get(b"k", 0) is None


def test_replace_only_put_fails_on_a_missing_key():
    _, (result,) = applied(Put(b"k", b"v", cond=Cond.EXISTS))
    assert result.outcome is Outcome.CONDITION_FAILED


def test_a_retried_request_id_applies_once_and_returns_the_first_result():
    sm, (first, retry) = applied(IncrBy(b"n", 5, request_id=b"r"), IncrBy(b"n", 5, request_id=b"r"))
    assert retry == first
    assert sm.keyspace.get(b"n", 0).value == b"5"
    assert sm.applied_index == 2


def test_request_ids_are_forgotten_oldest_first_at_the_limit():
    sm = StateMachine(max_tracked_requests=2)
    for i, rid in enumerate([b"a", b"b", b"c"], start=1):
        sm.apply(i, IncrBy(b"n", 1, request_id=rid))
    sm.apply(4, IncrBy(b"n", 1, request_id=b"a"))  # forgotten: applies again
    sm.apply(5, IncrBy(b"n", 1, request_id=b"c"))  # remembered: does not
    assert sm.keyspace.get(b"n", 0).value == b"4"


def test_incr_refuses_text_and_overflow_and_keeps_the_ttl():
    sm, results = applied(
        Put(b"t", b"abc"), IncrBy(b"t", 1),
        Put(b"big", str(2**63 - 1).encode()), IncrBy(b"big", 1),
        Put(b"n", b"10", expires_at_ms=500), IncrBy(b"n", -3),
    )
    assert results[1].outcome is Outcome.NOT_INTEGER
    assert results[3].outcome is Outcome.OVERFLOW
    entry = sm.keyspace.get(b"n", 0)
    assert entry.value == b"7" and entry.expires_at_ms == 500


def test_parse_int64_follows_redis():
    assert [parse_int64(v) for v in (b"0", b"-5", b"9223372036854775807")] == [0, -5, 2**63 - 1]
    assert parse_int64(b"-9223372036854775808") == -2**63
    for bad in (b"", b"-", b"+1", b" 1", b"01", b"-0", b"-01", b"1.5", b"1-", b"9223372036854775808",
                b"-9223372036854775809", b"1e3", b"\xd9\xa1", b"99999999999999999999"):
        assert parse_int64(bad) is None, bad


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=21) | st.text("-0123456789+ .", max_size=21).map(str.encode)
       | st.integers(-2**64, 2**64).map(lambda n: b"%d" % n))
def test_parse_int64_is_redis_rule_on_any_bytes(raw):
    """Redis's string2ll: an optional '-', then '0' or digits without a leading zero,
    not "-0", within signed 64 bits."""
    expected = None
    if re.fullmatch(rb"-?(0|[1-9][0-9]*)", raw) and raw != b"-0" \
            and -2**63 <= int(raw) <= 2**63 - 1:
        expected = int(raw)
    assert parse_int64(raw) == expected


def test_expire_in_the_past_deletes_and_persist_removes_the_deadline():
    sm, results = applied(
        Put(b"a", b"1"), Expire(b"a", 5, now_ms=10),
        Put(b"b", b"1", expires_at_ms=100), Expire(b"b", None, now_ms=10),
        Expire(b"missing", 50),
    )
    assert sm.keyspace.get(b"a", 0) is None and results[1].affected == 1
    assert sm.keyspace.get(b"b", 10_000).expires_at_ms is None
    assert results[4].outcome is Outcome.NOT_FOUND


def test_keep_ttl_keeps_the_deadline_and_a_plain_put_drops_it():
    sm, _ = applied(Put(b"k", b"1", expires_at_ms=900), Put(b"k", b"2", keep_ttl=True),
                    Put(b"j", b"1", expires_at_ms=900), Put(b"j", b"2"))
    assert sm.keyspace.get(b"k", 0).expires_at_ms == 900
    assert sm.keyspace.get(b"j", 0).expires_at_ms is None


def test_delete_expired_spares_keys_refreshed_since_the_scan():
    sm, results = applied(
        Put(b"old", b"1", expires_at_ms=10), Put(b"fresh", b"1", expires_at_ms=10),
        Put(b"fresh", b"2", expires_at_ms=1000),
        DeleteExpired((b"old", b"fresh"), now_ms=20),
    )
    assert results[-1].affected == 1 and sm.expired_total == 1
    assert sm.keyspace.raw(b"old") is None and sm.keyspace.get(b"fresh", 20).value == b"2"


def test_msetnx_sets_nothing_when_any_key_exists():
    sm, results = applied(Put(b"b", b"x"), MultiPut(((b"a", b"1"), (b"b", b"2")), True),
                          MultiPut(((b"a", b"1"), (b"b", b"2"))))
    assert results[1].outcome is Outcome.CONDITION_FAILED
    assert sm.keyspace.get(b"a", 0).value == b"1" and sm.keyspace.get(b"b", 0).value == b"2"


def test_append_evict_and_noop():
    sm, results = applied(Append(b"s", b"ab"), Append(b"s", b"cd"), Noop(), Evict((b"s", b"zz")))
    assert results[1].entry.value == b"abcd"
    assert results[3].affected == 1 and sm.evicted_total == 1 and len(sm.keyspace) == 0


def test_apply_refuses_to_go_backwards():
    sm, _ = applied(Noop())
    try:
        sm.apply(1, Noop())
    except ValueError:
        return
    raise AssertionError("applied index 1 twice")


def test_snapshot_restore_gives_an_identical_machine():
    sm, _ = applied(Put(b"a", b"1", expires_at_ms=99, request_id=b"r1"), Put(b"b", b"2"),
                    IncrBy(b"c", 3, request_id=b"r2"))
    image = sm.snapshot()
    sm.apply(4, Put(b"d", b"after"))  # not in the image
    twin = StateMachine()
    twin.restore(image)
    assert twin.applied_index == 3
    assert [e.key for e in twin.keyspace.scan(0)] == [b"a", b"b", b"c"]
    assert twin.keyspace.get(b"a", 0).expires_at_ms == 99
    retry = twin.apply(5, IncrBy(b"c", 3, request_id=b"r2"))
    assert retry.revision == 3 and twin.keyspace.get(b"c", 0).value == b"3"


def test_a_key_past_65535_versions_keeps_taking_plain_and_ttl_writes():
    # Past 2**16 versions an entry needs the full header, without a deadline: the
    # batched SET path once took that for a TTL and failed on every later write.
    sm = StateMachine()
    index = 0
    for _ in range(66):
        index += 1
        assert sm.apply(index, MultiPut(((b"hot", b"v"),) * 1000)).ok
    assert sm.keyspace.get(b"hot", 0).version == 66_000
    rest = [Put(b"hot", b"ttl", expires_at_ms=500), MultiPut(((b"hot", b"plain"),)),
            Put(b"hot", b"ttl", expires_at_ms=700), Put(b"hot", b"kept", keep_ttl=True)]
    for command in rest:
        index += 1
        assert sm.apply(index, command).ok
    entry = sm.keyspace.get(b"hot", 0)
    assert (entry.value, entry.version, entry.expires_at_ms) == (b"kept", 66_004, 700)
    assert sm.keyspace.volatile_count == 1
    assert [key for key in sm.keyspace.due(1000, 10)] == [b"hot"]


def test_commands_entries_and_results_are_values():
    import raftkv.core.commands as commands
    from raftkv.core.commands import Entry, Result

    sm, (first, again) = applied(Put(b"k", b"v", request_id=b"r1"),
                                 Put(b"k", b"other", request_id=b"r1"))
    assert again == first and hash(again) == hash(first)  # the retry's result is the first's
    assert first.entry == Entry(b"k", b"v", 1, 1, 1, None) == sm.keyspace.get(b"k", 0)
    assert first.entry != Entry(b"k", b"v", 1, 1, 2, None) and first.entry != (b"k", b"v")
    assert first == Result(Outcome.OK, 1, first.entry) != Result(Outcome.OK, 2, first.entry)
    assert repr(first.entry) == ("Entry(key=b'k', value=b'v', version=1, create_revision=1, "
                                 "mod_revision=1, expires_at_ms=None, kind=0)")
    put = Put(b"k", b"v", request_id=b"r1")
    assert put == Put(b"k", b"v", request_id=b"r1") and hash(put) == hash(put.replace())
    assert put.replace(request_id=b"r2") == Put(b"k", b"v", request_id=b"r2") != put
    with pytest.raises(TypeError, match="no field 'nope'"):
        put.replace(nope=1)
    if commands.__file__.endswith(".so"):  # compiled, Final fields are read-only at run time
        for obj, field in ((first.entry, "version"), (first, "entry"), (put, "key")):
            try:
                setattr(obj, field, None)
            except AttributeError:
                continue
            raise AssertionError(f"{type(obj).__name__}.{field} was assigned")


def test_expire_options_compare_with_the_deadline_at_apply_time():
    """Redis 7's NX/XX/GT/LT: a key without a deadline counts as never expiring."""
    sm = StateMachine()
    sm.apply(1, Put(b"k", b"v"))  # no deadline
    W = ExpireWhen
    assert sm.apply(2, Expire(b"k", 500, now_ms=10, when=W.XX)).affected == 0
    assert sm.apply(3, Expire(b"k", 500, now_ms=10, when=W.GT)).affected == 0
    assert sm.apply(4, Expire(b"k", 500, now_ms=10, when=W.XX_LT)).affected == 0
    assert sm.apply(5, Expire(b"k", 900, now_ms=10, when=W.LT)).affected == 1  # < infinity
    assert sm.apply(6, Expire(b"k", 100, now_ms=10, when=W.NX)).affected == 0
    assert sm.apply(7, Expire(b"k", 950, now_ms=10, when=W.LT)).affected == 0
    assert sm.apply(8, Expire(b"k", 950, now_ms=10, when=W.GT)).affected == 1
    assert sm.apply(9, Expire(b"k", 940, now_ms=10, when=W.XX_LT)).affected == 1
    assert sm.keyspace.get(b"k", 10).expires_at_ms == 940
    assert sm.apply(10, Expire(b"missing", 940, now_ms=10, when=W.NX)).outcome \
        is Outcome.NOT_FOUND
    assert sm.apply(11, Expire(b"k", 5, now_ms=10, when=W.LT)).entry is None  # past: deleted
    assert sm.keyspace.raw(b"k") is None


def test_flush_deletes_every_key_and_later_writes_start_again():
    sm = StateMachine()
    for i in range(1, 51):
        sm.apply(i, Put(b"k%d" % i, b"v", expires_at_ms=10**6 if i % 2 else None))
    result = sm.apply(51, Flush())
    assert result.ok and result.affected == 50
    assert len(sm.keyspace) == 0 and sm.keyspace.volatile_count == 0
    assert sm.keyspace.due(2 * 10**6, 10) == []
    assert sm.apply(52, Put(b"k1", b"again")).entry.version == 1


def test_setrange_pads_overwrites_keeps_the_ttl_and_creates_nothing_for_nothing():
    from raftkv.core.commands import SetRange

    sm = StateMachine()
    assert sm.apply(1, SetRange(b"new", 3, b"")).entry is None and sm.keyspace.raw(b"new") is None
    assert sm.apply(2, SetRange(b"pad", 2, b"xy")).entry.value == b"\0\0xy"
    sm.apply(3, Put(b"k", b"Hello World", expires_at_ms=10**9))
    result = sm.apply(4, SetRange(b"k", 6, b"Redis!!"))
    assert result.entry.value == b"Hello Redis!!" and result.entry.expires_at_ms == 10**9


def test_incrbyfloat_adds_in_long_double_and_writes_as_redis_does():
    from raftkv.core.commands import IncrByFloat

    sm = StateMachine()
    sm.apply(1, Put(b"f", b"10.50"))
    assert sm.apply(2, IncrByFloat(b"f", b"0.1")).entry.value == b"10.6"
    assert sm.apply(3, IncrByFloat(b"f", b"5.0e3")).entry.value == b"5010.6"
    assert sm.apply(4, IncrByFloat(b"f", b"2.0e-3")).entry.value == b"5010.602"
    assert sm.apply(5, IncrByFloat(b"n", b"-0")).entry.value == b"0"
    sm.apply(6, Put(b"w", b"abc"))
    assert sm.apply(7, IncrByFloat(b"w", b"1")).outcome is Outcome.NOT_FLOAT
    sm.apply(8, Put(b"big", b"1e4931"))
    assert sm.apply(9, IncrByFloat(b"big", b"9e4931")).outcome is Outcome.OVERFLOW
    assert sm.keyspace.get(b"big", 0).value == b"1e4931"  # unchanged


def test_rename_moves_value_and_deadline_and_renamenx_refuses_an_existing_target():
    from raftkv.core.commands import Rename

    sm = StateMachine()
    sm.apply(1, Put(b"a", b"1", expires_at_ms=10**9))
    sm.apply(2, Put(b"b", b"2"))
    assert sm.apply(3, Rename(b"missing", b"x")).outcome is Outcome.NOT_FOUND
    assert sm.apply(4, Rename(b"a", b"b", only_if_absent=True)).outcome \
        is Outcome.CONDITION_FAILED
    moved = sm.apply(5, Rename(b"a", b"b"))
    assert moved.ok and sm.keyspace.raw(b"a") is None
    entry = sm.keyspace.get(b"b", 0)
    assert (entry.value, entry.expires_at_ms, entry.version, entry.mod_revision) == \
        (b"1", 10**9, 2, 5)


def test_copy_keeps_the_source_and_replaces_only_when_asked():
    from raftkv.core.commands import Copy

    sm = StateMachine()
    sm.apply(1, Put(b"s", b"v", expires_at_ms=10**9))
    sm.apply(2, Put(b"t", b"old"))
    assert sm.apply(3, Copy(b"s", b"t")).outcome is Outcome.CONDITION_FAILED
    assert sm.apply(4, Copy(b"s", b"t", replace_target=True)).ok
    assert sm.keyspace.get(b"t", 0).value == b"v" and sm.keyspace.get(b"s", 0).value == b"v"
    assert sm.keyspace.get(b"t", 0).expires_at_ms == 10**9
    assert sm.apply(5, Copy(b"missing", b"u")).outcome is Outcome.CONDITION_FAILED


def test_a_transaction_applies_its_ops_in_order_at_one_revision_without_rollback():
    from raftkv.core.commands import IncrBy, Read, Txn, TxnResult
    from raftkv.core.image import decode_result, encode_result

    sm = StateMachine()
    sm.apply(1, Put(b"word", b"abc"))
    result = sm.apply(2, Txn((Put(b"n", b"1"), IncrBy(b"n", 5), Read(b"n"), IncrBy(b"word", 1),
                              Delete(b"word"), Read(b"word"), Read(b"missing"))))
    assert isinstance(result, TxnResult) and result.revision == 2
    outcomes = [r.outcome for r in result.results]
    assert outcomes == [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.NOT_INTEGER, Outcome.OK,
                        Outcome.OK, Outcome.OK]
    assert result.results[2].entry.value == b"6"  # a read sees the ops before it
    assert result.results[5].entry is None and result.results[6].entry is None
    assert sm.keyspace.get(b"n", 0).mod_revision == 2  # every op at the entry's revision
    assert result.affected == 7 - 1
    assert decode_result(encode_result(result)) == result  # as snapshots keep it


def test_a_retried_transaction_applies_once():
    from raftkv.core.commands import IncrBy, Txn

    sm = StateMachine()
    first = sm.apply(1, Txn((IncrBy(b"n", 1), IncrBy(b"n", 1)), request_id=b"tx-1"))
    again = sm.apply(2, Txn((IncrBy(b"n", 1), IncrBy(b"n", 1)), request_id=b"tx-1"))
    assert again == first and sm.keyspace.get(b"n", 0).value == b"2"


def test_watch_sees_writes_deletes_expiry_and_flushes_after_its_revision():
    from raftkv.core.commands import IncrBy, Txn

    sm = StateMachine()
    sm.apply(1, Put(b"k", b"1"))
    sm.apply(2, Put(b"brief", b"x", expires_at_ms=1_000))
    since = 2
    watched = ((b"k", 1, since), (b"absent", 0, since))
    assert not sm.changed_since(b"k", 1, since, now_ms=0)
    assert sm.apply(3, Txn((IncrBy(b"n", 1),), watched=watched)).succeeded
    sm.apply(4, Put(b"absent", b"now"))
    sm.apply(5, Delete(b"absent"))  # back to absent, but it changed
    spoiled = sm.apply(6, Txn((IncrBy(b"n", 1),), watched=watched))
    assert not spoiled.succeeded and spoiled.results == ()
    assert sm.keyspace.get(b"n", 0).value == b"1"  # nothing applied
    assert sm.changed_since(b"brief", 2, since, now_ms=1_000)  # expired counts
    assert not sm.changed_since(b"brief", 2, since, now_ms=999)
    sm.apply(7, Flush())
    assert sm.changed_since(b"never", 0, 6, now_ms=0)  # a flush after it: the safe side
    assert not sm.changed_since(b"never", 0, 7, now_ms=0)


def test_compares_choose_the_branch_as_etcd_does():
    from raftkv.core.commands import Compare, Read, Relation, Target, Txn

    sm = StateMachine()
    sm.apply(1, Put(b"cfg", b"v1"))
    R, T = Relation, Target

    def branch(*compares: Compare) -> bool:
        index = sm.applied_index + 1
        result = sm.apply(index, Txn((Read(b"cfg"),), compares=compares, failure=()))
        return result.succeeded

    assert branch(Compare(b"cfg", T.VALUE, R.EQUAL, value=b"v1"))
    assert not branch(Compare(b"cfg", T.VALUE, R.EQUAL, value=b"v2"))
    assert branch(Compare(b"cfg", T.MOD_REVISION, R.EQUAL, 1), Compare(b"cfg", T.VERSION,
                                                                        R.LESS, 2))
    assert branch(Compare(b"missing", T.EXISTS, R.EQUAL, 0),
                  Compare(b"missing", T.CREATE_REVISION, R.EQUAL, 0))
    assert not branch(Compare(b"cfg", T.EXISTS, R.EQUAL, 0))
    assert branch(Compare(b"cfg", T.VALUE, R.GREATER, value=b"v0"))


def test_an_atomic_transaction_whose_op_fails_changes_nothing():
    from raftkv.core.commands import Copy, IncrBy, Rename, Txn

    sm = StateMachine()
    sm.apply(1, Put(b"a", b"1", expires_at_ms=10**9))
    sm.apply(2, Put(b"word", b"abc"))
    before = {e.key: e for e in sm.keyspace.scan(0, limit=100)}
    size, volatile = sm.keyspace.data_bytes, sm.keyspace.volatile_count
    result = sm.apply(3, Txn((Put(b"a", b"2"), Put(b"new", b"x"), Delete(b"word"),
                              Rename(b"a", b"b"), Copy(b"new", b"c"), IncrBy(b"new", 1)),
                             atomic=True))
    assert result.failed_at == 5 and result.outcome is Outcome.TXN_FAILED
    assert {e.key: e for e in sm.keyspace.scan(0, limit=100)} == before
    assert (sm.keyspace.data_bytes, sm.keyspace.volatile_count) == (size, volatile)
    assert list(sm.keyspace.iter_keys()) == [b"a", b"word"]  # the ordered index too
    ok = sm.apply(4, Txn((Put(b"a", b"2"), IncrBy(b"n", 1)), atomic=True))
    assert ok.ok and ok.failed_at == -1 and sm.keyspace.get(b"a", 0).value == b"2"


def test_a_lease_holds_its_keys_until_it_runs_out_and_a_keep_alive_moves_its_deadline():
    from raftkv.core.commands import LeaseExpire, LeaseGrant, LeaseKeepAlive, LeaseRevoke

    sm = StateMachine()
    granted = sm.apply(1, LeaseGrant(0, 1000, b"", 5_000))
    assert granted.ok and granted.affected == 1  # the id: the entry's index
    assert sm.leases.by_id[1].deadline_ms == 6_000
    assert sm.apply(2, LeaseGrant(1, 50, b"", 5_000)).outcome is Outcome.CONDITION_FAILED
    assert sm.apply(3, LeaseGrant(0, 50, b"", 5_000)).affected == 3
    assert sm.apply(4, Put(b"a", b"1", lease=1, now_ms=5_000)).ok
    assert sm.apply(5, Put(b"b", b"1", lease=1, now_ms=5_000)).ok
    refused = sm.apply(6, Put(b"c", b"1", lease=99, now_ms=5_000))
    assert refused.outcome is Outcome.NO_LEASE and sm.keyspace.raw(b"c") is None
    assert sm.apply(7, Put(b"b", b"2", now_ms=5_000)).ok  # a put without it detaches
    assert sm.leases.by_id[1].keys == {b"a"} and sm.leases.of_key == {b"a": 1}
    assert sm.apply(8, LeaseKeepAlive(1, b"", 5_900)).affected == 1000
    assert sm.leases.by_id[1].deadline_ms == 6_900
    # the leader's expiry entry checks the deadline again: lease 1 was kept alive
    assert sm.apply(9, LeaseExpire((1, 3), b"", 6_000)).ok
    assert 1 in sm.leases.by_id and 3 not in sm.leases.by_id
    assert sm.keyspace.raw(b"a") is not None
    assert sm.apply(10, LeaseKeepAlive(1, b"", 6_900)).outcome is Outcome.NOT_FOUND  # ran out
    assert sm.apply(11, LeaseExpire((1,), b"", 6_900)).affected == 1
    assert sm.keyspace.raw(b"a") is None and sm.keyspace.raw(b"b") is not None
    assert list(sm.history.after(10, 11)) == [(11, b"a", 2, None, 0, 0)]
    assert sm.apply(12, LeaseRevoke(1)).outcome is Outcome.NOT_FOUND


def test_a_revoked_lease_deletes_its_keys_and_deleted_keys_leave_their_lease():
    from raftkv.core.commands import Delete, LeaseGrant, LeaseRevoke

    sm = StateMachine()
    sm.apply(1, LeaseGrant(7, 10_000))
    for index, key in enumerate((b"x", b"y", b"z"), start=2):
        sm.apply(index, Put(key, b"v", lease=7))
    sm.apply(5, Delete(b"y"))
    assert sm.leases.by_id[7].keys == {b"x", b"z"}
    assert sm.apply(6, LeaseRevoke(7)).affected == 2
    assert len(sm.keyspace) == 0 and not sm.leases.by_id and not sm.leases.of_key


def test_leases_are_in_the_image_and_an_undone_transaction_keeps_the_key_on_its_lease():
    from raftkv.core.commands import IncrBy, LeaseGrant, Txn
    from raftkv.core.image import decode, encode

    sm = StateMachine()
    sm.apply(1, LeaseGrant(3, 10_000, b"", 100))
    sm.apply(2, Put(b"held", b"v", lease=3))
    sm.apply(3, Put(b"text", b"abc"))
    failed = sm.apply(4, Txn((Put(b"held", b"w"), IncrBy(b"text", 1)), atomic=True))
    assert failed.outcome is Outcome.TXN_FAILED and sm.leases.of_key == {b"held": 3}
    twin = StateMachine()
    decode(encode(sm.snapshot()), "test").restore(twin)
    assert twin.leases.by_id == sm.leases.by_id and twin.leases.of_key == {b"held": 3}
    assert twin.leases.by_id[3].deadline_ms == 10_100


def test_a_put_on_a_missing_lease_undoes_its_atomic_transaction():
    from raftkv.core.commands import LeaseGrant, Txn

    sm = StateMachine()
    sm.apply(1, LeaseGrant(5, 10_000))
    result = sm.apply(2, Txn((Put(b"a", b"1"), Put(b"b", b"2", lease=99)), atomic=True))
    assert result.outcome is Outcome.TXN_FAILED and result.failed_at == 1
    assert result.results[1].outcome is Outcome.NO_LEASE and sm.keyspace.raw(b"a") is None
    assert sm.apply(3, Txn((Put(b"a", b"1"), Put(b"b", b"2", lease=5)), atomic=True)).ok
    assert sm.leases.of_key == {b"b": 5}
