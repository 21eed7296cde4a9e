"""RESP replies: the C module (``fronts/resp/writer.c``) against its plain Python
reference (``writer.py``) on any strings, nils, integers and items that are not theirs
to encode - the same bytes, the same None, the same exceptions - and the replies read
back by redis-py's own parser, as a client reads them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers import Encoder
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SocketBuffer

import raftkv.fronts.resp.writer as native
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/fronts/resp/writer.py")

ITEMS = st.lists(st.none() | st.binary(max_size=300)
                 | st.sampled_from([b"", b"\r\n", b"x" * 70_000]), max_size=12)
ODD = st.sampled_from(["text", 7, 1.5, bytearray(b"ab"), [b"nested"]])
NILS = st.sampled_from([b"$-1\r\n", b"_\r\n"])


def test_the_native_module_is_the_c_one() -> None:
    assert native.__file__.endswith(".so") and reference.__file__.endswith("writer.py")


def _outcomes(call) -> list[tuple[str, object]]:
    outcomes = []
    for module in (native, reference):
        try:
            outcomes.append(("ok", call(module)))
        except TypeError:
            outcomes.append(("raised", TypeError))
    return outcomes


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    def settimeout(self, timeout) -> None:
        pass


def _parsed(data: bytes):
    parser = _RESP2Parser(socket_read_size=65536)
    parser.encoder = Encoder("utf-8", "strict", decode_responses=False)
    parser._buffer = SocketBuffer(_Socket(data), 65536, None)
    return parser.read_response()


@settings(max_examples=300, deadline=None)
@given(items=ITEMS, odd=st.none() | ODD, at=st.integers(0, 12), as_tuple=st.booleans(),
       nil=NILS)
def test_array_matches_its_reference(items, odd, at, as_tuple, nil) -> None:
    if odd is not None:
        items = [*items[:at], odd, *items[at:]]
    outcomes = _outcomes(lambda m: m.array(tuple(items) if as_tuple else items, nil))
    assert outcomes[0] == outcomes[1]
    if odd is not None:  # not a bulk string: the caller encodes the array itself
        assert outcomes[0] == ("ok", None)
        return
    encoded = outcomes[0][1]
    assert isinstance(encoded, bytes)
    if nil == b"$-1\r\n":
        assert _parsed(encoded) == items


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=300) | st.sampled_from([b"x" * 70_000]) | ODD)
def test_bulk_matches_its_reference(value) -> None:
    outcomes = _outcomes(lambda m: m.bulk(value))
    assert outcomes[0] == outcomes[1]
    if isinstance(value, bytes | bytearray):
        assert outcomes[0] == ("ok", b"$%d\r\n%s\r\n" % (len(value), value))
        assert _parsed(outcomes[0][1]) == bytes(value)
    else:
        assert outcomes[0] == ("raised", TypeError)


def test_array_refuses_what_is_not_a_tuple_or_a_list() -> None:
    for module in (native, reference):
        for odd in (b"abc", iter([b"a"]), {b"a": b"b"}):
            try:
                module.array(odd, b"$-1\r\n")
            except TypeError:
                continue
            raise AssertionError(f"{module.__name__} encoded {odd!r}")


@settings(max_examples=300, deadline=None)
@given(n=st.integers() | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1,
                                          10**40, True]) | ODD)
def test_integer_matches_its_reference(n) -> None:
    outcomes = _outcomes(lambda m: m.integer(n))
    assert outcomes[0] == outcomes[1]
    if isinstance(n, int):
        assert _parsed(outcomes[0][1]) == int(n)
    else:
        assert outcomes[0] == ("raised", TypeError)
