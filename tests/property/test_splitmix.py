"""A typed op's random stream: the C module (``core/splitmix.c``) against its plain
Python reference (``splitmix.py``) on any seed, state and bound - the same states, the
same numbers, the same exceptions - and a stream that is the one the log has always
drawn (an entry's SPOP picks the same member on a replica replaying an old log)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.core.splitmix as native
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/splitmix.py")

ANY_INT = st.integers() | st.sampled_from([0, -1, 2**63, 2**64 - 1, 2**64, -(2**64), 2**200])
BOUNDS = st.integers(1, 2**64 + 5) | st.sampled_from([1, 2, 3, 2**53, 2**64 - 1, 2**64, 2**70])


def test_the_native_module_is_the_c_one() -> None:
    assert native.__file__.endswith(".so") and reference.__file__.endswith("splitmix.py")
    assert native.GOLDEN == reference.GOLDEN


@settings(max_examples=500, deadline=None)
@given(seed=ANY_INT)
def test_start_matches_its_reference(seed: int) -> None:
    assert native.start(seed) == reference.start(seed)
    assert 0 <= native.start(seed) < 2**64


@settings(max_examples=1000, deadline=None)
@given(state=ANY_INT, n=BOUNDS | st.integers(max_value=-1))
def test_draw_matches_its_reference(state: int, n: int) -> None:
    assert native.draw(state, n) == reference.draw(state, n)


def test_a_stream_is_the_one_entries_have_always_drawn() -> None:
    """Index 7's first three draws below 1,000, as ``Ctx.randrange`` computed them in
    Python before the C module (its formula, written out here)."""
    mask = 2**64 - 1
    state, expected = (7 * 0x9E3779B97F4A7C15 + 1) & mask, []
    for _ in range(3):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        expected.append((z ^ (z >> 31)) % 1000)
    drawn, state = [], native.start(7)
    for _ in range(3):
        state, number = native.draw(state, 1000)
        drawn.append(number)
    assert drawn == expected


def test_what_is_not_an_integer_is_refused_alike() -> None:
    for module in (native, reference):
        for bad in (1.5, "1", None):
            with pytest.raises(TypeError):
                module.start(bad)
            with pytest.raises(TypeError):
                module.draw(bad, 10)
        with pytest.raises(ZeroDivisionError):
            module.draw(1, 0)
