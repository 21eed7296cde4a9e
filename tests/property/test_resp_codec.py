"""The RESP request parser: round trips, any split of the stream, and garbage that
ends in a ProtocolError, never another exception."""

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.fronts.resp import protocol as p

args_strategy = st.lists(st.binary(min_size=0, max_size=50), min_size=1, max_size=8)


def _parse_in_pieces(stream: bytes, data) -> list[list[bytes]]:
    """Feed ``stream`` to one parser cut at up to five points Hypothesis draws."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    parser = p.RequestParser(max_request_bytes=1 << 20)
    parsed = []
    last = 0
    for cut in [*cuts, len(stream)]:
        parsed += parser.feed(stream[last:cut]) if cut > last else []
        last = cut
    return parsed


@given(st.lists(args_strategy, min_size=1, max_size=6), st.data())
@settings(deadline=None)
def test_commands_survive_any_split_of_the_stream(commands, data):
    stream = b"".join(p.encode_command(*c) for c in commands)
    parsed = _parse_in_pieces(stream, data)
    assert parsed == [list(c) for c in commands]


# an inline command's name starts with a letter (a line opening with a RESP type byte,
# such as "-" or ":", right after a multibulk command is read as RESP)
inline_args = st.builds(
    lambda name, args: [name, *args],
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9:_-]{0,7}", fullmatch=True).map(str.encode),
    st.lists(st.text("abcXYZ019:_-", min_size=1, max_size=8).map(str.encode), max_size=3))


@given(st.lists(st.tuples(st.booleans(), args_strategy, inline_args), min_size=1, max_size=6),
       st.data())
@settings(deadline=None)
def test_inline_and_multibulk_commands_mix_in_one_stream(specs, data):
    """Redis tells each command's form by its first byte, whatever came before it in
    the same packet; so does the parser, for any split of the stream."""
    commands = [list(multi if is_multibulk else inline) for is_multibulk, multi, inline in specs]
    stream = b"".join(p.encode_command(*c) if is_multibulk else b" ".join(c) + b"\r\n"
                      for (is_multibulk, _, _), c in zip(specs, commands, strict=True))
    parsed = _parse_in_pieces(stream, data)
    assert parsed == commands


def test_a_bad_byte_inside_a_command_after_a_complete_one_is_still_an_error():
    parser = p.RequestParser(max_request_bytes=1 << 20)
    try:
        parser.feed(p.encode_command(b"PING") + b"*1\r\nX\r\n")
    except p.ProtocolError as exc:
        assert "Protocol error" in str(exc)
    else:
        raise AssertionError("a broken second command was accepted")


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_parse_or_raise_protocol_error(blob):
    parser = p.RequestParser(max_request_bytes=4096, max_args=64)
    try:
        for command in parser.feed(blob):
            assert isinstance(command, list) and all(isinstance(a, bytes) for a in command)
    except p.ProtocolError as exc:
        assert str(exc).startswith("Protocol error")


@given(st.lists(st.sampled_from([b"*", b"$", b"\r\n", b"-1", b"3", b"abc", b"99999999",
                                 b":", b"+OK", b"\n"]), max_size=30))
@settings(max_examples=500, deadline=None)
def test_resp_shaped_garbage_never_crashes(parts):
    parser = p.RequestParser(max_request_bytes=1024, max_args=16)
    with contextlib.suppress(p.ProtocolError):
        parser.feed(b"*" + b"".join(parts))


def test_limits_answer_with_redis_errors():
    parser = p.RequestParser(max_request_bytes=100)
    try:
        parser.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500\r\n" + b"x" * 200)
    except p.ProtocolError as exc:
        assert "invalid bulk length" in str(exc)
    else:
        raise AssertionError("an oversized bulk was buffered")
    parser = p.RequestParser(max_request_bytes=1 << 20, max_args=2)
    try:
        parser.feed(p.encode_command(b"MGET", b"a", b"b"))
    except p.ProtocolError as exc:
        assert "invalid multibulk length" in str(exc)
    else:
        raise AssertionError("too many arguments were accepted")
    parser = p.RequestParser(max_request_bytes=1 << 20)
    try:
        parser.feed(b"GET " + b"k" * (p.MAX_INLINE_BYTES + 10))
    except p.ProtocolError as exc:
        assert "too big inline request" in str(exc)
    else:
        raise AssertionError("an endless inline line was buffered")


def test_replies_encode_as_redis_does():
    assert p.bulk(b"hi") == b"$2\r\nhi\r\n" and p.bulk(None) == b"$-1\r\n"
    assert p.RESP3.bulk(None) == b"_\r\n"
    assert p.array([b"a", None]) == b"*2\r\n$1\r\na\r\n$-1\r\n"
    assert p.integer(-3) == b":-3\r\n"
    assert p.error_reply("ERR bad\r\nthing") == b"-ERR bad  thing\r\n"
    assert p.RESP3.push([p.bulk(b"x")]) == b">1\r\n$1\r\nx\r\n"


def test_a_resp3_map_inside_a_command_is_a_protocol_error():
    # Found by the atheris target: hiredis raised TypeError building a map keyed by a list.
    parser = p.RequestParser(max_request_bytes=1 << 20)
    try:
        parser.feed(b"*1\r\n%1\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n")
    except p.ProtocolError as exc:
        assert str(exc).startswith("Protocol error")
    else:
        raise AssertionError("a map inside a command was accepted")
