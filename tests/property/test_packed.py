"""Small containers' packed form: the C module (``core/packed.c``) against its plain
Python reference (``packed.py``) on any strings, any edits and damaged blobs - the same
results, the same exceptions - and the reference against plain lists and dicts."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.core.packed as native
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/packed.py")

SHORT = st.binary(max_size=12) | st.sampled_from([b"", b"a", b"x" * 64, b"y" * 255])
STRINGS = st.lists(SHORT, max_size=12)
PAIRS = st.dictionaries(SHORT, SHORT, max_size=8)
ODD = st.sampled_from([b"z" * 65, b"w" * 256, "text", 7])


def same(call):
    """``call(module)`` answers alike (or raises the same type) in both modules."""
    outcomes = []
    for module in (native, reference):
        try:
            outcomes.append(("ok", call(module)))
        except Exception as exc:  # (its type is what is compared)
            outcomes.append(("raised", type(exc)))
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


@settings(max_examples=300, deadline=None)
@given(strings=STRINGS, max_count=st.integers(0, 14), max_len=st.integers(0, 256),
       odd=st.none() | ODD, as_deque=st.booleans())
def test_pack_and_unpack(strings, max_count, max_len, odd, as_deque) -> None:
    items = [*strings, odd] if odd is not None else strings
    packed = same(lambda m: m.pack(deque(items) if as_deque else items, max_count, max_len))
    fits = len(items) <= max_count and max_len <= 255 and odd is None and \
        all(len(s) <= max_len for s in strings)
    if fits:
        assert packed[0] == "ok" and packed[1] is not None
        assert same(lambda m: m.unpack(packed[1])) == ("ok", strings)
        assert same(lambda m: m.count(packed[1])) == ("ok", len(strings))


@settings(max_examples=300, deadline=None)
@given(fields=PAIRS, field=SHORT | ODD, value=SHORT | ODD, left=st.booleans())
def test_pairs_and_their_edits(fields, field, value, left) -> None:
    outcome = same(lambda m: m.pack_pairs(fields, 8, 255))
    assert outcome[0] == "ok"
    blob = outcome[1]
    assert same(lambda m: m.unpack_pairs(blob)) == ("ok", fields)
    assert same(lambda m: m.find(blob, field)) == ("ok", fields.get(field)) or \
        not isinstance(field, bytes)
    put = same(lambda m: m.put_pair(blob, field, value))
    if put[0] == "ok":
        after = dict(fields)
        after[field] = value
        assert put[1][1] == fields.get(field)
        assert reference.unpack_pairs(put[1][0]) == after
        assert list(reference.unpack_pairs(put[1][0])) == list(after)  # (the order too)
    dropped = same(lambda m: m.drop_pair(blob, field))
    if dropped[0] == "ok":
        remaining = {k: v for k, v in fields.items() if k != field}
        assert reference.unpack_pairs(dropped[1][0]) == remaining
        assert dropped[1][1] == fields.get(field)
    items = [s for pair in fields.items() for s in pair]
    pushed = same(lambda m: m.push(reference.pack(items, 16, 255), value, left))
    if pushed[0] == "ok":
        assert reference.unpack(pushed[1]) == ([value, *items] if left else [*items, value])
    popped = same(lambda m: m.pop(reference.pack(items, 16, 255), left))
    if items:
        assert popped == ("ok", (items[0] if left else items[-1],
                                 reference.pack(items[1:] if left else items[:-1], 16, 255)))
    else:
        assert popped == ("raised", IndexError)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=40), field=SHORT)
def test_a_damaged_blob_is_refused_alike(blob, field) -> None:
    for call in (lambda m: m.unpack(blob), lambda m: m.count(blob),
                 lambda m: m.unpack_pairs(blob), lambda m: m.find(blob, field),
                 lambda m: m.put_pair(blob, field, field), lambda m: m.drop_pair(blob, field),
                 lambda m: m.push(blob, field, True), lambda m: m.pop(blob, False)):
        same(call)


@pytest.mark.parametrize("module", [native, reference], ids=["c", "python"])
def test_the_form_is_a_length_byte_before_each_string(module) -> None:
    assert module.pack([b"ab", b"", b"c"], 3, 64) == b"\x02ab\x00\x01c"
    assert module.pack([b"ab", b"c"], 1, 64) is None  # too many
    assert module.pack([b"x" * 65], 3, 64) is None  # too long
    assert module.pack_pairs({b"f": b"v", b"g": b""}, 2, 64) == b"\x01f\x01v\x01g\x00"
    with pytest.raises(ValueError):
        module.pack([b"a"], 3, 256)  # a length takes one byte
    with pytest.raises(ValueError):
        module.unpack(b"\x05ab")  # runs past the end
