"""Order keys: the C module (``core/order.c``) against its plain Python reference
(``order.py``) on any float, either zero, the infinities and any member - the same key,
the same exceptions - and keys that sort as Redis orders (score, member) pairs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.core.order as native
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/order.py")

SCORES = st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, float("inf"), float("-inf"),
                                                       5e-324, -5e-324, 1.5, -1.5])
MEMBERS = st.binary(max_size=40)


def test_the_native_module_is_the_c_one() -> None:
    assert native.__file__.endswith(".so") and reference.__file__.endswith("order.py")
    assert native.SCORE_BYTES == reference.SCORE_BYTES == 8


@settings(max_examples=500, deadline=None)
@given(score=SCORES | st.integers(-(2**60), 2**60), member=MEMBERS)
def test_key_matches_its_reference(score, member) -> None:
    key = native.key(score, member)
    assert key == reference.key(score, member)
    assert key[native.SCORE_BYTES:] == member


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(SCORES, MEMBERS), max_size=12))
def test_keys_sort_as_redis_orders_pairs(pairs) -> None:
    assert sorted(pairs, key=lambda pair: native.key(*pair)) == sorted(pairs)


def test_what_is_not_a_score_or_a_member_is_refused_alike() -> None:
    for score, member in (("1", b"m"), (None, b"m"), (1.0, "m"), (1.0, bytearray(b"m")),
                          (10**400, b"m"), (10**400, "m")):
        outcomes = []
        for module in (native, reference):
            try:
                outcomes.append(module.key(score, member))
            except (TypeError, OverflowError) as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1] and isinstance(outcomes[0], type), (score, member)
