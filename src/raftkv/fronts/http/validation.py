"""Validation and transformation at the edge: bodies, keys, query parameters.

Strict JSON: orjson already rejects NaN/Infinity, invalid UTF-8, lone surrogates and
nesting past its depth limit; duplicate names are found by a second pass with
``object_pairs_hook``. Every failure is an InvalidArgument naming the field (400).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import orjson

from raftkv.core.commands import Cond
from raftkv.errors import InvalidArgument
from raftkv.fronts.http.errors import HttpError
from raftkv.fronts.http.messages import Request
from raftkv.service.ports import Consistency
from raftkv.service.service import validate_key

_loads: Final = orjson.loads


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise _Duplicate(next(n for n in names if names.count(n) > 1))
    return dict(pairs)


def json_object(body: bytes, allowed: frozenset[str], required: frozenset[str]) -> dict[str, Any]:
    if not body:
        raise InvalidArgument("the body must be a JSON object")
    try:
        data = _loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("the body must be a JSON object")
    for name in data:
        if name not in allowed:
            raise InvalidArgument(f"unknown field {name!r}")
    # orjson keeps the last of duplicate names silently. Only allowed names can be
    # duplicated now, and an unescaped '"name"' occurs in JSON text only as a whole
    # string token, so a name seen once cannot be duplicated: the exact (slower)
    # check runs only when some allowed name occurs more than once, or when \u
    # escapes could spell a name another way.
    if b"\\u" in body or any(body.count(b'"%s"' % name.encode()) > 1 for name in data):
        _check_duplicates(body)
    for name in required:
        if name not in data:
            raise InvalidArgument(f"the field {name!r} is required")
    return data


def _check_duplicates(body: bytes) -> None:
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate as dup:
        raise InvalidArgument(f"the field {dup} appears twice") from None
    except (ValueError, RecursionError):
        raise InvalidArgument("the body is not valid JSON") from None


def string_field(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise InvalidArgument(f"the field {name!r} must be a string")
    return value


def optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"the field {name!r} must be an integer")
    return value


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidArgument(f"the query parameter {name!r} must be an integer from {lo} to {hi}")
    return int(raw)


def key_from_path(raw: bytes) -> bytes:
    # find, not ``in``: CPython 3.11's ``bytes in bytes`` first tries the operand as
    # an int and builds (then drops) a TypeError, ~1,800 instructions on every request
    if raw.find(b"%") >= 0 or not raw.isascii():
        raw = unquote_to_bytes(raw)
        _utf8(raw, "key")
    return validate_key(raw)


def text_from_path(raw: bytes, what: str) -> str:
    return _utf8(unquote_to_bytes(raw), what)


def key_from_text(text: str) -> bytes:
    try:
        key = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("key must be valid UTF-8") from None
    return validate_key(key)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what} must be valid UTF-8") from None


def value_bytes(value: str, encoding: object) -> bytes:  # (any JSON value)
    if encoding in (None, "utf-8"):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument("the field 'value' is not valid Unicode") from None
    if encoding == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument("the field 'value' is not valid base64") from None
    raise InvalidArgument("the field 'encoding' must be 'utf-8' or 'base64'")


_LINEARIZABLE: Final = Consistency.LINEARIZABLE  # (Final: see routes.py)
_UNCONDITIONAL: Final = (Cond.NONE, 0)


def idempotency_key(request: Request) -> bytes:
    """The client's ``Idempotency-Key``: a write retried with it applies once."""
    key = request.headers.get(b"idempotency-key", b"")
    if len(key) > 128:
        raise InvalidArgument("Idempotency-Key is limited to 128 bytes")
    return key


def consistency(request: Request) -> Consistency:
    if not request.query_string:
        return _LINEARIZABLE
    raw = request.query.get("consistency", "linearizable")
    try:
        return Consistency(raw)
    except ValueError:
        raise InvalidArgument("the query parameter 'consistency' must be linearizable, leader "
                              "or stale") from None


def condition(request: Request) -> tuple[Cond, int]:
    if_match = request.headers.get(b"if-match")
    if_none_match = request.headers.get(b"if-none-match")
    if if_match is not None and if_none_match is not None:
        raise InvalidArgument("send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip() != b"*":
            raise InvalidArgument('If-None-Match supports only "*" (create-only)')
        return Cond.ABSENT, 0
    if if_match is not None:
        tag = if_match.strip()
        if tag == b"*":
            return Cond.EXISTS, 0
        tag = tag.removeprefix(b"W/")
        if len(tag) >= 3 and tag[:1] == b'"' and tag[-1:] == b'"' and tag[1:-1].isdigit() \
                and int(tag[1:-1]) < 2**63:  # revisions are signed 64-bit in the log
            return Cond.MOD_REVISION, int(tag[1:-1])
        raise InvalidArgument('If-Match must be "*" or an ETag like "42"')
    return _UNCONDITIONAL


JSON_TYPES: Final = frozenset({b"", b"application/json", b"application/x-www-form-urlencoded",
                               b"text/json"})


def media_type(request: Request) -> bytes:
    raw = request.headers.get(b"content-type", b"")
    if raw in JSON_TYPES:  # the usual header, already bare and lower-case
        return raw
    return raw.split(b";", 1)[0].strip().lower()


def require_json(request: Request) -> None:
    if media_type(request) not in JSON_TYPES:
        raise HttpError(415, "send application/json", "unsupported_media_type")


def encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def decode_cursor(cursor: str) -> bytes:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("the query parameter 'cursor' is not a cursor this API "
                              "returned") from None
