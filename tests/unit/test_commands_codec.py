from hypothesis import given
from hypothesis import strategies as st

from raftkv.core import commands as c

keys = st.binary(min_size=1, max_size=40)
values = st.binary(max_size=200)
rids = st.binary(max_size=24)
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
opt_ms = st.none() | st.integers(min_value=0, max_value=2**62)

any_command = st.one_of(
    st.builds(c.Noop, rids, i64),
    st.builds(c.Put, keys, values, opt_ms, st.booleans(), st.sampled_from(c.Cond), i64, rids, i64),
    st.builds(c.Delete, keys, st.sampled_from(c.Cond), i64, rids, i64),
    st.builds(c.Expire, keys, opt_ms, rids, i64, st.sampled_from(c.ExpireWhen)),
    st.builds(c.IncrBy, keys, i64, rids, i64),
    st.builds(c.Append, keys, values, rids, i64),
    st.builds(c.MultiPut, st.lists(st.tuples(keys, values), max_size=5).map(tuple),
              st.booleans(), rids, i64),
    st.builds(c.DeleteExpired, st.lists(keys, max_size=5).map(tuple), rids, i64),
    st.builds(c.Evict, st.lists(keys, max_size=5).map(tuple), rids, i64),
    st.builds(c.Flush, rids, i64),
    st.builds(c.SetRange, keys, st.integers(min_value=0, max_value=2**62), values, rids, i64),
    st.builds(c.IncrByFloat, keys, st.binary(max_size=30), rids, i64),
    st.builds(c.Rename, keys, keys, st.booleans(), rids, i64),
    st.builds(c.Copy, keys, keys, st.booleans(), rids, i64),
    st.builds(c.Read, keys, rids, i64),
    st.builds(c.Put, keys, values, opt_ms, st.booleans(), st.sampled_from(c.Cond), i64, rids, i64,
              st.booleans(), st.integers(min_value=1, max_value=2**63 - 1)),
    st.builds(c.LeaseGrant, st.integers(min_value=0, max_value=2**63 - 1),
              st.integers(min_value=1, max_value=2**62), rids, i64),
    st.builds(c.LeaseKeepAlive, st.integers(min_value=1, max_value=2**63 - 1), rids, i64),
    st.builds(c.LeaseRevoke, st.integers(min_value=1, max_value=2**63 - 1), rids, i64),
    st.builds(c.LeaseExpire, st.lists(st.integers(min_value=1, max_value=2**63 - 1),
                                      max_size=5).map(tuple), rids, i64),
)
watched = st.lists(st.tuples(keys, st.integers(min_value=0, max_value=2**62),
                             st.integers(min_value=0, max_value=2**62)), max_size=3)
any_command = any_command | st.builds(
    c.Txn, st.lists(any_command.filter(lambda cmd: isinstance(cmd, c.OP_TYPES)),
                    max_size=4).map(tuple), rids, i64, watched.map(tuple))


def test_an_expire_as_earlier_versions_wrote_it_still_decodes():
    # u8 version 1 | u8 tag 3 | rid "" | key "k" | has_ttl 1 | deadline 5000 | now 7
    old = bytes.fromhex("0103" "00000000" "01000000" "6b" "01" "8813000000000000"
                        "0700000000000000")
    assert c.decode(old) == c.Expire(b"k", 5000, b"", 7)
    assert c.encode(c.Expire(b"k", 5000, b"", 7)) == old  # unconditional: the old form


def test_a_put_without_a_lease_keeps_the_bytes_earlier_versions_wrote():
    plain = c.Put(b"k", b"v", None, False, c.Cond.NONE, 0, b"r", 9)
    leased = plain.replace(lease=7)
    assert c.encode(plain)[1] == 1 and c.encode(leased)[1] == 22
    assert c.encode(leased)[:-8][2:] == c.encode(plain)[2:]  # the same fields, then the lease
    assert c.decode(c.encode(leased)) == leased


@given(any_command)
def test_every_command_survives_a_round_trip(cmd):
    assert c.decode(c.encode(cmd)) == cmd


@given(any_command, st.data())
def test_truncated_or_extended_bytes_are_rejected_not_misread(cmd, data):
    raw = c.encode(cmd)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    for damaged in (raw[:cut], raw + b"\x00"):
        try:
            decoded = c.decode(damaged)
        except c.CodecError:
            continue
        raise AssertionError(f"decoded damaged bytes to {decoded!r}")


def test_unknown_version_is_refused():
    raw = bytearray(c.encode(c.Noop()))
    raw[0] = 99
    try:
        c.decode(bytes(raw))
    except c.CodecError as exc:
        assert "version 99" in str(exc)
    else:
        raise AssertionError("accepted an unknown codec version")


def test_a_transaction_cannot_hold_what_no_client_can_send():
    inner = c.encode(c.Evict((b"k",)))
    raw = bytearray(c.encode(c.Txn((c.Read(b"k"),))))
    read = c.encode(c.Read(b"k"))
    at = raw.index(read)
    forged = bytes(raw[: at - 4]) + len(inner).to_bytes(4, "little") + inner
    try:
        c.decode(forged)
    except c.CodecError as exc:
        assert "cannot hold" in str(exc)
    else:
        raise AssertionError("decoded a transaction holding an Evict")
