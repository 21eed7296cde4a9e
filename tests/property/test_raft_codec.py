import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.replication.raft.codec import MessageCodecError, decode_message, encode_message
from raftkv.replication.raft.messages import EntryKind, LogEntry, Message, MsgType

u64 = st.integers(min_value=0, max_value=2**64 - 1)
ids = st.text(min_size=1, max_size=8)
entries = st.lists(st.builds(LogEntry, u64, u64, st.binary(max_size=40),
                             st.sampled_from(EntryKind)), max_size=5).map(tuple)
messages = st.builds(Message, st.sampled_from(MsgType), ids, ids, u64, u64, u64, entries, u64,
                     st.booleans(), u64, st.binary(max_size=20), st.binary(max_size=60), u64,
                     st.booleans())


@given(messages)
def test_every_message_survives_a_round_trip(m):
    assert decode_message(encode_message(m)) == m


@given(messages, st.data())
@settings(deadline=None)
def test_damaged_bytes_are_refused_cleanly(m, data):
    raw = encode_message(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    for damaged in (raw[:cut], raw + b"\x00", bytes([99]) + raw[1:]):
        try:
            decode_message(damaged)
        except MessageCodecError:
            continue
        raise AssertionError("damaged bytes decoded")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_codec_errors(blob):
    with contextlib.suppress(MessageCodecError):
        decode_message(blob)
