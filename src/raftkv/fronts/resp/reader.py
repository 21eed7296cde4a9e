"""The RESP request reader: bytes from a client in, complete commands out.

This file is the reference: what the reader does, in plain Python. What runs is
``reader.c``, built into an extension module of the same name, which Python imports
instead of this file (as ``core/table.c`` stands in for ``core/table.py``); the
tests hold the two to the same commands and the same errors for any stream cut
anywhere (``tests/property/test_resp_reader_model.py``).

It reads requests as Redis's ``processInputBuffer`` does, command by command, each
by its first byte: ``*`` starts an array of bulk strings, anything else an inline
command (a line typed into telnet, split as ``sdssplitargs`` splits it, quotes and
escapes included). Every limit is checked on the header that declares a size,
*before* anything of that size is buffered or allocated, so no declared length
costs memory or time by itself:

* an array longer than ``max_args`` -> ``invalid multibulk length``
  (``*`` with a count of 0 or less is an empty command and is skipped)
* a bulk longer than ``max_bulk_bytes`` -> ``invalid bulk length``
* a header or inline line over 64 KiB -> ``too big mbulk count string`` /
  ``too big bulk count string`` / ``too big inline request``
* while ``limited`` (auth is on and the client has not authenticated yet): more than
  10 arguments or a bulk over 16 KiB -> ``unauthenticated multibulk length`` /
  ``unauthenticated bulk length`` (Redis's CVE-2021-32675 rule); and at most one
  command comes back per ``feed``, so the rest is read under the limits the first
  command (AUTH) leaves
* more than ``max_query_bytes`` held for one unfinished command (its arguments so far
  plus what is buffered) -> :class:`QueryBufferFull`: Redis closes such a client
  without a reply (``client-query-buffer-limit``)

Any of these raises :class:`ProtocolError` carrying the commands that were complete
before it (``commands``): Redis runs them, then answers ``-ERR <message>`` and closes.
"""

from __future__ import annotations

from typing import Final

INLINE_MAX_BYTES: Final = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
UNAUTHENTICATED_MAX_ARGS: Final = 10
UNAUTHENTICATED_MAX_BULK_BYTES: Final = 16 * 1024
_SPACE: Final = b" \t\n\r\v\f"  # C's isspace
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


class ProtocolError(Exception):
    """The stream is broken: answer ``-ERR <message>`` after the replies to
    ``commands`` (those complete before the error), then close the connection."""

    def __init__(self, message: str, commands: list[list[bytes]] | None = None) -> None:
        super().__init__(message)
        self.commands = commands or []


class QueryBufferFull(ProtocolError):
    """One unfinished command holds more than ``max_query_bytes``: close without a
    reply, as Redis does."""


def parse_length(raw: bytes) -> int | None:
    """Redis's ``string2ll``: an optional '-', then digits without a leading zero
    (or a lone "0"), in the signed 64-bit range; anything else is None."""
    if raw == b"0":
        return 0
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits or not 49 <= digits[0] <= 57 or len(digits) > 19 \
            or not all(48 <= c <= 57 for c in digits):
        return None
    value = int(raw)
    return value if -(2**63) <= value < 2**63 else None


def split_args(line: bytes) -> list[bytes] | None:
    """Redis's ``sdssplitargs``: words split on blanks, "double quotes" with \\n, \\r,
    \\t, \\b, \\a and \\xHH escapes, 'single quotes' with \\' only. A closing quote
    must be followed by a blank or the end; None for unbalanced quotes. Like C, it
    stops at the first NUL byte."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            c = line[i] if i < n else 0
            if in_double:
                if c == 92 and i + 3 < n and line[i + 1] == 120 \
                        and _is_hex(line[i + 2]) and _is_hex(line[i + 3]):  # \xHH
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:  # backslash escape
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:  # closing "
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif i >= n:
                    return None  # unterminated
                else:
                    current.append(c)
            elif in_single:
                if c == 92 and i + 1 < n and line[i + 1] == 39:  # \'
                    i += 1
                    current.append(39)
                elif c == 39:  # closing '
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif i >= n:
                    return None
                else:
                    current.append(c)
            elif i >= n or c in (32, 10, 13, 9):
                break
            elif c == 34:
                in_double = True
            elif c == 39:
                in_single = True
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


def _header_end(buf: bytearray, pos: int, too_big: str) -> int:
    """Where the header line at ``pos`` ends (its "\r"); -1 while it is still coming.
    Like Redis, a header needs one byte after its "\r" (taken as the "\n")."""
    cr = buf.find(b"\r", pos)
    if cr < 0:
        if len(buf) - pos > INLINE_MAX_BYTES:
            raise ProtocolError(too_big)
        return -1
    return cr if cr + 1 < len(buf) else -1


def _is_hex(c: int) -> bool:
    return 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70


class RequestReader:
    """One client's requests. Not thread-safe."""

    __slots__ = ("_argv", "_argv_bytes", "_buffer", "_bulk_len", "_want", "limited",
                 "max_args", "max_bulk_bytes", "max_query_bytes")

    def __init__(self, max_args: int = 1024 * 1024, max_bulk_bytes: int = 512 * 1024 * 1024,
                 max_query_bytes: int = 1024 * 1024 * 1024) -> None:
        self.max_args = max_args
        self.max_bulk_bytes = max_bulk_bytes
        self.max_query_bytes = max_query_bytes
        self.limited = False
        self._buffer = bytearray()  # received, not yet consumed
        self._argv: list[bytes] = []  # the arguments of the unfinished command
        self._want = 0  # arguments it still needs (0: between commands)
        self._bulk_len = -1  # the declared length of the next argument (-1: not read)
        self._argv_bytes = 0

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Every command completed by ``data`` (see the module docstring)."""
        buf = self._buffer
        buf += data
        commands: list[list[bytes]] = []
        pos = 0
        try:
            pos = self._parse(buf, commands)
        except ProtocolError as exc:
            exc.commands = commands
            raise
        del buf[:pos]
        if self._argv_bytes + len(buf) > self.max_query_bytes:
            raise QueryBufferFull("query buffer limit reached", commands)
        return commands

    def _parse(self, buf: bytearray, commands: list[list[bytes]]) -> int:
        pos, n = 0, len(buf)
        while pos < n:
            if not self._want:
                if buf[pos] == 42:  # "*"
                    cr = _header_end(buf, pos, "Protocol error: too big mbulk count string")
                    if cr < 0:
                        return pos
                    count = parse_length(bytes(buf[pos + 1 : cr]))
                    if count is None or count > self.max_args:
                        raise ProtocolError("Protocol error: invalid multibulk length")
                    if self.limited and count > UNAUTHENTICATED_MAX_ARGS:
                        raise ProtocolError("Protocol error: unauthenticated multibulk length")
                    pos = cr + 2
                    if count > 0:
                        self._want, self._argv, self._argv_bytes = count, [], 0
                    continue
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if n - pos > INLINE_MAX_BYTES:
                        raise ProtocolError("Protocol error: too big inline request")
                    return pos
                end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
                if end - pos > INLINE_MAX_BYTES:
                    raise ProtocolError("Protocol error: too big inline request")
                args = split_args(bytes(buf[pos:end]))
                if args is None:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                pos = nl + 1
                if args:
                    commands.append(args)
                    if self.limited:
                        return pos
                continue
            while self._want:
                if self._bulk_len < 0:
                    cr = _header_end(buf, pos, "Protocol error: too big bulk count string")
                    if cr < 0:
                        return pos
                    if buf[pos] != 36:  # "$"
                        raise ProtocolError(f"Protocol error: expected '$', got "
                                            f"'{chr(buf[pos])}'")
                    size = parse_length(bytes(buf[pos + 1 : cr]))
                    if size is None or size < 0 or size > self.max_bulk_bytes:
                        raise ProtocolError("Protocol error: invalid bulk length")
                    if self.limited and size > UNAUTHENTICATED_MAX_BULK_BYTES:
                        raise ProtocolError("Protocol error: unauthenticated bulk length")
                    pos = cr + 2
                    self._bulk_len = size
                size = self._bulk_len
                if n - pos < size + 2:
                    return pos
                self._argv.append(bytes(buf[pos : pos + size]))  # (the CRLF is not checked,
                self._argv_bytes += size  # as in Redis)
                pos += size + 2
                self._bulk_len = -1
                self._want -= 1
            commands.append(self._argv)
            self._argv, self._argv_bytes = [], 0
            if self.limited:
                return pos
        return pos
