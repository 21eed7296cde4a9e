"""Redis glob patterns (``stringmatchlen``): ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``
and ``\\`` escapes, compiled to a regex; plus the literal prefix a scan can seek to."""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"\\" and i + 1 < n:
            out += re.escape(pattern[i + 1 : i + 2])
            i += 2
            continue
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"[":
            end = i + 1
            if end < n and pattern[end : end + 1] == b"^":
                end += 1
            while end < n and pattern[end : end + 1] != b"]":
                end += 2 if pattern[end : end + 1] == b"\\" else 1
            if end >= n:  # no closing bracket: Redis matches the rest literally
                out += re.escape(pattern[i:])
                break
            body = pattern[i + 1 : end]
            negate = body[:1] == b"^"
            if negate:
                body = body[1:]
            cls = bytearray()
            j = 0
            while j < len(body):
                ch = body[j : j + 1]
                if ch == b"\\" and j + 1 < len(body):
                    cls += re.escape(body[j + 1 : j + 2])
                    j += 2
                elif j + 2 < len(body) and body[j + 1 : j + 2] == b"-":
                    lo, hi = sorted((body[j : j + 1], body[j + 2 : j + 3]))
                    cls += re.escape(lo) + b"-" + re.escape(hi)
                    j += 3
                else:
                    cls += re.escape(ch)
                    j += 1
            out += b"[" + (b"^" if negate else b"") + bytes(cls) + b"]" if cls else (
                b"." if negate else b"(?!)")
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(bytes(out) + b"\\Z", re.DOTALL)


def literal_prefix(pattern: bytes) -> bytes:
    """The part before the first special character: every match starts with it."""
    out = bytearray()
    i = 0
    while i < len(pattern):
        c = pattern[i : i + 1]
        if c in (b"*", b"?", b"["):
            break
        if c == b"\\" and i + 1 < len(pattern):
            out += pattern[i + 1 : i + 2]
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)
