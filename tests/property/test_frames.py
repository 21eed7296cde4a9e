"""Length-prefixed frames: the C module (``core/frames.c``) against its plain Python
reference (``frames.py``) on any strings, in a tuple or a list, and on what is not
bytes - the same results, the same exceptions - and the frames (and a record's
fields) read back by the codec's own reader."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.core.frames as native
from raftkv.core.binary import BinaryReader
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/frames.py")

STRINGS = st.lists(st.binary(max_size=300) | st.sampled_from([b"", b"x" * 70_000]), max_size=10)
ODD = st.sampled_from(["text", 7, None, bytearray(b"ab")])


def test_the_native_module_is_the_c_one() -> None:
    assert native.__file__.endswith(".so") and reference.__file__.endswith("frames.py")


@settings(max_examples=300, deadline=None)
@given(strings=STRINGS, odd=st.none() | ODD, as_tuple=st.booleans())
def test_join_matches_its_reference_and_reads_back(strings, odd, as_tuple) -> None:
    items = [*strings, odd] if odd is not None else strings
    outcomes = []
    for module in (native, reference):
        try:
            outcomes.append(("ok", module.join(tuple(items) if as_tuple else items)))
        except TypeError:
            outcomes.append(("raised", TypeError))
    assert outcomes[0] == outcomes[1]
    if odd is not None:
        assert outcomes[0] == ("raised", TypeError)
        return
    reader = BinaryReader(outcomes[0][1], ValueError)
    assert [reader.blob() for _ in strings] == strings and reader.at_end


def test_join_refuses_what_is_not_a_tuple_or_a_list() -> None:
    for module in (native, reference):
        for odd in (b"abc", iter([b"a"]), {b"a": b"b"}):
            try:
                module.join(odd)
            except TypeError:
                continue
            raise AssertionError(f"{module.__name__} joined {odd!r}")


@settings(max_examples=300, deadline=None)
@given(strings=STRINGS, odd=st.none() | ODD, head=st.binary(max_size=4), rid=st.binary(max_size=40),
       stamp=st.integers(-(2**64), 2**64) | st.sampled_from([0, 2**63 - 1, -(2**63), True]),
       as_tuple=st.booleans())
def test_record_matches_its_reference_and_reads_back(strings, odd, head, rid, stamp,
                                                     as_tuple) -> None:
    items = [*strings, odd] if odd is not None else strings
    outcomes = []
    for module in (native, reference):
        try:
            outcomes.append(("ok", module.record(head, rid, stamp,
                                                 tuple(items) if as_tuple else items)))
        except (TypeError, OverflowError) as exc:
            outcomes.append(("raised", type(exc)))
    assert outcomes[0] == outcomes[1]
    if not -(2**63) <= stamp < 2**63:
        assert outcomes[0] == ("raised", OverflowError)
        return
    if odd is not None:
        assert outcomes[0] == ("raised", TypeError)
        return
    encoded = outcomes[0][1]
    assert encoded[:len(head)] == head
    reader = BinaryReader(encoded[len(head):], ValueError)
    assert reader.blob() == rid and reader.fixed(struct.Struct("<Iq")) == (len(strings), stamp)
    assert [reader.blob() for _ in strings] == strings and reader.at_end


def test_record_refuses_a_head_rid_or_stamp_of_the_wrong_type() -> None:
    for module in (native, reference):
        for args in (("h", b"", 0, []), (b"h", None, 0, []), (b"h", b"", 1.5, [])):
            try:
                module.record(*args)
            except TypeError:
                continue
            raise AssertionError(f"{module.__name__} recorded {args!r}")
