"""The RESP request reader: the C reader (``fronts/resp/reader.c``) against its plain
Python reference (``reader.py``) on any stream cut anywhere, and both against the rules
of Redis's processInputBuffer that they claim."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.fronts.resp.reader as native
from raftkv.fronts.resp import protocol as p
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/fronts/resp/reader.py")
READERS = pytest.mark.parametrize("impl", [native, reference], ids=["c", "python"])

# Pieces that recombine into valid, broken and borderline requests.
FRAGMENTS = [b"*", b"$", b"\r\n", b"\r", b"\n", b"0", b"1", b"2", b"3", b"-", b"-1", b"9" * 20,
             b"a", b"GET", b" ", b"\t", b'"', b"'", b"\\", b"x", b"4F", b"\0",
             b"*1\r\n$4\r\nPING\r\n", b"*2\r\n", b"$3\r\nabc\r\n", b"$0\r\n\r\n", b"PING\r\n"]


def run(impl, stream: bytes, cuts: list[int], limited: bool = False, **limits):
    """Commands and the error (class name, message) from feeding ``stream`` in pieces;
    while ``limited``, the caller feeds b"" again after each command, as the server does."""
    reader = impl.RequestReader(**limits)
    reader.limited = limited
    commands: list[list[bytes]] = []
    last = 0
    try:
        for cut in [*cuts, len(stream)]:
            got = reader.feed(stream[last:cut])
            commands += got
            while limited and got:
                got = reader.feed(b"")
                commands += got
            last = cut
    except impl.ProtocolError as exc:
        return commands + exc.commands, (type(exc).__name__, str(exc))
    return commands, None


@st.composite
def streams(draw):
    stream = b"".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=40)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    limits = {"max_args": draw(st.sampled_from([2, 4, 1000])),
              "max_bulk_bytes": draw(st.sampled_from([1, 3, 1000])),
              "max_query_bytes": draw(st.sampled_from([8, 64, 100_000]))}
    return stream, cuts, draw(st.booleans()), limits


def test_the_extension_is_what_runs():
    assert native.__file__.endswith(".so"), native.__file__
    assert native.RequestReader is not reference.RequestReader


@given(streams())
@settings(max_examples=3000, deadline=None)
def test_c_and_python_readers_agree_on_any_stream_cut_anywhere(case):
    stream, cuts, limited, limits = case
    assert run(native, stream, cuts, limited, **limits) == \
        run(reference, stream, cuts, limited, **limits)


def test_a_million_random_bytes_in_random_chunks_agree():
    rng = random.Random(7)
    for _ in range(300):
        stream = b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 200)))
        cuts = sorted(rng.randint(0, len(stream)) for _ in range(rng.randint(0, 20)))
        limits = {"max_args": rng.choice([3, 100]), "max_bulk_bytes": rng.choice([2, 100]),
                  "max_query_bytes": rng.choice([16, 10_000])}
        limited = rng.random() < 0.3
        assert run(native, stream, cuts, limited, **limits) == \
            run(reference, stream, cuts, limited, **limits), (stream, cuts, limits, limited)


args_strategy = st.lists(st.binary(max_size=50), min_size=1, max_size=8)


@READERS
@given(commands=st.lists(args_strategy, min_size=1, max_size=6), data=st.data())
@settings(deadline=None)
def test_commands_survive_any_split_of_the_stream(impl, commands, data):
    stream = b"".join(p.encode_command(*c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    assert run(impl, stream, cuts) == ([list(c) for c in commands], None)


@READERS
@pytest.mark.parametrize("stream, error", [
    (b"*3000000000\r\n", "Protocol error: invalid multibulk length"),
    (b"*1048577\r\n", "Protocol error: invalid multibulk length"),
    (b"*abc\r\n", "Protocol error: invalid multibulk length"),
    (b"*01\r\n", "Protocol error: invalid multibulk length"),
    (b"*1\r\n$2000000000\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$1048577\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$+1\r\n", "Protocol error: invalid bulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "Protocol error: expected '$', got 'f'"),
    (b'SET "a b\r\n', "Protocol error: unbalanced quotes in request"),
    (b"SET 'a'b c\r\n", "Protocol error: unbalanced quotes in request"),
    (b"GET " + b"k" * 70_000, "Protocol error: too big inline request"),
    (b"GET " + b"k" * 70_000 + b"\r\n", "Protocol error: too big inline request"),
    (b"*" + b"1" * 70_000, "Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * 70_000, "Protocol error: too big bulk count string"),
])
def test_limits_and_broken_headers_answer_with_redis_errors(impl, stream, error):
    assert run(impl, stream, [], max_bulk_bytes=1 << 20) == ([], ("ProtocolError", error))


@READERS
def test_a_declared_size_is_refused_before_anything_of_it_is_buffered(impl):
    reader = impl.RequestReader(max_bulk_bytes=1 << 20)
    with pytest.raises(impl.ProtocolError, match="invalid bulk length"):
        reader.feed(b"*1\r\n$4000000\r\n")  # 4 MB declared, nothing of it sent
    reader = impl.RequestReader()
    with pytest.raises(impl.ProtocolError, match="invalid multibulk length"):
        reader.feed(b"*3000000000\r\n")


@READERS
def test_commands_before_a_broken_one_are_kept_for_the_caller(impl):
    commands, error = run(impl, b"PING\r\n*1\r\n$4\r\nECHO\r\n*1\r\nX\r\n", [])
    assert commands == [[b"PING"], [b"ECHO"]]
    assert error == ("ProtocolError", "Protocol error: expected '$', got 'X'")


@READERS
def test_empty_and_negative_counts_are_skipped_as_redis_skips_them(impl):
    assert run(impl, b"*-10\r\n*0\r\n\r\n  \r\nPING\r\n", []) == ([[b"PING"]], None)


@READERS
def test_inline_commands_split_as_sdssplitargs_does(impl):
    line = b'SET "a b" \'c\\\'d\' "\\x41\\n\\t\\q" plain\tx \x0bv\r\n'
    assert run(impl, line, []) == ([[b"SET", b"a b", b"c'd", b"A\n\tq", b"plain", b"x",
                                     b"v"]], None)
    assert run(impl, b"ECHO hi\0 ignored after a NUL\n", []) == ([[b"ECHO", b"hi"]], None)
    assert run(impl, b'ECHO a"b c"\r\n', []) == ([[b"ECHO", b"ab c"]], None)


@READERS
def test_a_query_buffer_over_its_limit_is_refused_without_a_reply(impl):
    reader = impl.RequestReader(max_query_bytes=1000)
    assert reader.feed(b"*3\r\n$3\r\nSET\r\n$900\r\n" + b"x" * 900 + b"\r\n") == []
    with pytest.raises(impl.QueryBufferFull):
        reader.feed(b"$500\r\n" + b"y" * 100)  # 903 bytes of arguments + 106 buffered
    assert issubclass(impl.QueryBufferFull, impl.ProtocolError)


@READERS
def test_unauthenticated_limits_are_redis_s(impl):
    reader = impl.RequestReader()
    reader.limited = True
    with pytest.raises(impl.ProtocolError, match="unauthenticated multibulk length"):
        reader.feed(b"*11\r\n")
    reader = impl.RequestReader()
    reader.limited = True
    with pytest.raises(impl.ProtocolError, match="unauthenticated bulk length"):
        reader.feed(b"*1\r\n$16385\r\n")
    reader = impl.RequestReader()
    reader.limited = True
    auth_then_more = p.encode_command(b"AUTH", b"t") + p.encode_command(b"MGET", *[b"k"] * 20)
    assert reader.feed(auth_then_more) == [[b"AUTH", b"t"]]  # one command per feed
    reader.limited = False  # AUTH succeeded
    assert reader.feed(b"") == [[b"MGET", *[b"k"] * 20]]


@READERS
@pytest.mark.parametrize("raw, value", [(b"0", 0), (b"-1", -1), (b"9223372036854775807", 2**63 - 1),
                                        (b"-9223372036854775808", -(2**63)), (b"", None),
                                        (b"-", None), (b"01", None), (b"-0", None), (b"+1", None),
                                        (b"9223372036854775808", None), (b" 1", None)])
def test_lengths_parse_as_string2ll(impl, raw, value):
    assert impl.parse_length(raw) == value


@READERS
def test_a_big_value_in_many_small_packets_is_read_once_whole(impl):
    value = bytes(range(256)) * 4096  # 1 MiB
    stream = p.encode_command(b"SET", b"k", value)
    reader = impl.RequestReader(max_bulk_bytes=len(value))
    got = []
    for i in range(0, len(stream), 4096):
        got += reader.feed(stream[i:i + 4096])
    assert got == [[b"SET", b"k", value]]


def test_replies_encode_as_redis_does():
    assert p.bulk(b"hi") == b"$2\r\nhi\r\n" and p.bulk(None) == b"$-1\r\n"
    assert p.RESP3.bulk(None) == b"_\r\n"
    assert p.array([b"a", None]) == b"*2\r\n$1\r\na\r\n$-1\r\n"
    assert p.integer(-3) == b":-3\r\n"
    assert p.error_reply("ERR bad\r\nthing") == b"-ERR bad  thing\r\n"
    assert p.RESP3.push([p.bulk(b"x")]) == b">1\r\n$1\r\nx\r\n"
