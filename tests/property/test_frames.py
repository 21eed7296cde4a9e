"""Length-prefixed frames: the C module (``core/frames.c``) against its plain Python
reference (``frames.py``) on any strings, in a tuple or a list, and on what is not
bytes - the same results, the same exceptions - and the frames read back by the
codec's own reader."""

from __future__ import annotations

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
