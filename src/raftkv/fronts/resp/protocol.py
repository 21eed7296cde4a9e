"""A sans-IO RESP2 codec: bytes in, commands out; replies to bytes.

Requests are arrays of bulk strings (what every client sends), parsed by
``hiredis.Reader``, or inline commands (``PING\\r\\n`` typed into telnet), mixed
in one stream as Redis allows: where hiredis stops at an inline command's first byte,
the parser resumes from the parsed commands' encoded lengths. Limits
answer with Redis's own errors, after which the connection must be closed:

* more than ``max_request_bytes`` buffered for one command -> ``invalid bulk length``
* more than ``max_args`` arguments -> ``invalid multibulk length``
* an inline line over ``max_inline_bytes`` -> ``too big inline request``
* anything that is not an array of bulk strings -> ``Protocol error: ...``
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import hiredis

MAX_INLINE_BYTES: Final = 64 * 1024
MAX_ARGS: Final = 1024 * 1024


class ProtocolError(Exception):
    """The stream is broken; reply with ``error_reply(str(exc))`` and close."""


class RequestParser:
    # (not "_inline": mypyc would name the C field "__inline", a GCC keyword)
    __slots__ = ("_boundary", "_inline_bytes", "_partial", "_reader", "max_args",
                 "max_request_bytes")

    def __init__(self, max_request_bytes: int, max_args: int = MAX_ARGS) -> None:
        self._reader = hiredis.Reader()
        self._inline_bytes = bytearray()
        self._boundary = True  # every byte fed so far belonged to complete commands
        self._partial = 0  # bytes hiredis holds of a command not yet complete
        self.max_request_bytes = max_request_bytes
        self.max_args = max_args

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Every complete command in the stream so far (raises ProtocolError)."""
        commands: list[list[bytes]] = []
        if self._inline_bytes or (self._boundary and data[:1] != b"*"):
            data = self._inline_commands(data, commands)
            if not data:
                return commands
        reader = self._reader
        reader.feed(data)
        first = len(commands)
        self._boundary = False
        completed = False
        empty = 0  # empty arrays: Redis skips them, their bytes still count
        try:
            while (command := reader.gets()) is not False:
                if type(command) is not list:
                    raise ProtocolError(f"Protocol error: expected '*', got "
                                        f"'{_type_byte(command)}'")
                for arg in command:
                    if type(arg) is not bytes:
                        raise ProtocolError("Protocol error: expected '$', got ':'")
                if len(command) > self.max_args:
                    raise ProtocolError("Protocol error: invalid multibulk length")
                if command:
                    commands.append(command)
                else:
                    empty += 1
                completed = True
                # here, not after the loop: a failed gets() may consume a partial
                # command into hiredis's own state and leave has_data() False
                self._boundary = not reader.has_data()
        except hiredis.ProtocolError as exc:
            # Redis reads each command by its first byte, so an inline command may
            # follow a multibulk one in the same packet; hiredis stops there.
            offset = _encoded_length(commands[first:], empty) - self._partial
            if (not completed or not 1 <= offset < len(data)
                    or data[offset - 1] != 10 or data[offset] == 42):  # "\n", "*"
                raise ProtocolError(f"Protocol error: {exc}") from None
            self._reader = hiredis.Reader()
            self._boundary = True
            self._partial = 0
            commands += self.feed(data[offset:])
            return commands
        except (TypeError, ValueError):
            # hiredis also reads RESP3 types; a map keyed by an array fails to build
            # (found by tests/fuzz): still a client's protocol error, not a crash.
            raise ProtocolError("Protocol error: expected '$' inside the command array") \
                from None
        if self._boundary:
            self._partial = 0
        elif completed:  # this packet ends inside a command: count that one's bytes
            self._partial = max(0, len(data) - (_encoded_length(commands[first:], empty)
                                                - self._partial))
        else:
            self._partial += len(data)
        if self._partial > self.max_request_bytes:
            raise ProtocolError("Protocol error: invalid bulk length")
        return commands

    def _inline_commands(self, data: bytes, commands: list[list[bytes]]) -> bytes:
        """Split inline lines off the front; return what is left for the RESP reader."""
        buffer = self._inline_bytes
        buffer += data
        while buffer and buffer[:1] != b"*":
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_INLINE_BYTES:
                    raise ProtocolError("Protocol error: too big inline request")
                return b""
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            args = line.split()
            if args:
                commands.append(args)
        rest = bytes(buffer)
        buffer.clear()
        return rest


def _encoded_length(commands: list[list[bytes]], empty: int) -> int:
    """Bytes these commands (and ``empty`` empty arrays) take as clients encode them."""
    total = 4 * empty
    for command in commands:
        total += 3 + len(str(len(command)))
        for arg in command:
            total += len(arg) + 5 + len(str(len(arg)))
    return total


def _type_byte(value: object) -> str:
    if isinstance(value, int):
        return ":"
    if isinstance(value, bytes):
        return "$"
    return "+"


# --- replies -----------------------------------------------------------------------

OK: Final = b"+OK\r\n"
PONG: Final = b"+PONG\r\n"
NIL: Final = b"$-1\r\n"
EMPTY_ARRAY: Final = b"*0\r\n"
ZERO: Final = b":0\r\n"
ONE: Final = b":1\r\n"


def simple(text: str) -> bytes:
    return b"+%s\r\n" % text.encode()


def error_reply(message: str) -> bytes:
    """``message`` starts with its code (ERR, NOAUTH, WRONGPASS...), as Redis sends it."""
    return b"-%s\r\n" % message.replace("\r", " ").replace("\n", " ").encode()


def integer(n: int) -> bytes:
    return b":%d\r\n" % n


def bulk(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: Iterable[bytes | None]) -> bytes:
    """An array of bulk strings (None items are nil)."""
    parts = [bulk(item) for item in items]
    return b"*%d\r\n%s" % (len(parts), b"".join(parts))


def raw_array(encoded: list[bytes]) -> bytes:
    """An array of already-encoded replies (mixed types)."""
    return b"*%d\r\n%s" % (len(encoded), b"".join(encoded))


class Encoder:
    """Replies whose encoding differs between RESP2 and RESP3 (nil, pushes, maps).

    A connection switches to RESP3 with ``HELLO 3``; everything else (simple
    strings, errors, integers, bulk strings, arrays) is the same in both."""

    __slots__ = ("NIL", "push_prefix", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.NIL = b"_\r\n" if version == 3 else NIL
        self.push_prefix = b">" if version == 3 else b"*"

    def bulk(self, value: bytes | None) -> bytes:
        if value is None:
            return self.NIL
        return b"$%d\r\n%s\r\n" % (len(value), value)

    def array(self, items: Iterable[bytes | None]) -> bytes:
        parts = [self.bulk(item) for item in items]
        return b"*%d\r\n%s" % (len(parts), b"".join(parts))

    def push(self, encoded: list[bytes]) -> bytes:
        """Out-of-band data (pub/sub messages and confirmations)."""
        return b"%s%d\r\n%s" % (self.push_prefix, len(encoded), b"".join(encoded))

    def map(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Pairs of already-encoded replies: a RESP3 map, a flat RESP2 array."""
        if self.version == 3:
            return b"%%%d\r\n%s" % (len(pairs), b"".join(k + v for k, v in pairs))
        return raw_array([part for pair in pairs for part in pair])


RESP2 = Encoder(2)
RESP3 = Encoder(3)


def encode_command(*args: bytes) -> bytes:
    """A request as clients send it (used by tests and the benchmark client)."""
    return array(args)
