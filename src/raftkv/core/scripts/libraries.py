"""The libraries Redis puts inside a script besides its own API - ``bit``, ``cjson``
and ``cmsgpack`` - written here in Python, since the Lua that lupa ships has none of
them. Each follows the C library Redis bundles (LuaBitOp, lua-cjson 2.1,
lua-cmsgpack) in what a script can see: 32-bit wrap-around, ``%.14g`` numbers and
``\\/`` in JSON, the smallest msgpack encoding of a number.

They run inside the state machine, so they are deterministic: a table's pairs are
read in Lua's own ``next`` order, the same on every replica.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, Final

import orjson

_U32: Final = 0xFFFFFFFF


class LibraryError(Exception):
    """An error a library raises inside the script (its text, as the C library's)."""


# --- bit (LuaBitOp) ----------------------------------------------------------------

def tobit(x: Any) -> int:
    """A Lua number as LuaBitOp normalizes it: rounded to an integer (half to even,
    as the FPU does), wrapped to 32 bits, signed."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise LibraryError("bad argument to bit operation (number expected)")
    n = x if isinstance(x, int) else (round(x) if math.isfinite(x) else 0)
    n &= _U32
    return n - (1 << 32) if n & 0x80000000 else n


def _bits(*xs: Any) -> list[int]:
    return [tobit(x) & _U32 for x in xs]


def _signed(n: int) -> int:
    n &= _U32
    return n - (1 << 32) if n & 0x80000000 else n


def _band(*xs: Any) -> int:
    out = _U32
    for x in _bits(*xs):
        out &= x
    return _signed(out)


def _bor(*xs: Any) -> int:
    out = 0
    for x in _bits(*xs):
        out |= x
    return _signed(out)


def _bxor(*xs: Any) -> int:
    out = 0
    for x in _bits(*xs):
        out ^= x
    return _signed(out)


def _shift(x: Any, n: Any) -> tuple[int, int]:
    return tobit(x) & _U32, tobit(n) & 31


def _lshift(x: Any, n: Any) -> int:
    v, s = _shift(x, n)
    return _signed(v << s)


def _rshift(x: Any, n: Any) -> int:
    v, s = _shift(x, n)
    return _signed(v >> s)


def _arshift(x: Any, n: Any) -> int:
    return _signed(tobit(x) >> (tobit(n) & 31))


def _rol(x: Any, n: Any) -> int:
    v, s = _shift(x, n)
    return _signed((v << s) | (v >> (32 - s)) if s else v)


def _ror(x: Any, n: Any) -> int:
    v, s = _shift(x, n)
    return _signed((v >> s) | (v << (32 - s)) if s else v)


def _bswap(x: Any) -> int:
    return _signed(int.from_bytes((tobit(x) & _U32).to_bytes(4, "little"), "big"))


def _tohex(x: Any, n: Any = 8) -> bytes:
    width = tobit(n)
    digits = "0123456789ABCDEF" if width < 0 else "0123456789abcdef"
    width = min(abs(width), 8)
    v = tobit(x) & _U32
    return "".join(digits[(v >> (4 * i)) & 15] for i in reversed(range(width))).encode()


BIT: Final[dict[str, Callable[..., Any]]] = {
    "tobit": tobit, "bnot": lambda x: _signed(~tobit(x)), "band": _band, "bor": _bor,
    "bxor": _bxor, "lshift": _lshift, "rshift": _rshift, "arshift": _arshift, "rol": _rol,
    "ror": _ror, "bswap": _bswap, "tohex": _tohex,
}


# --- numbers as Lua writes them ------------------------------------------------------

def lua_number(x: float) -> bytes:
    """A number as Lua 5.1's tostring writes it (``%.14g``)."""
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if math.isnan(x):
        return b"nan" if math.copysign(1.0, x) > 0 else b"-nan"
    return b"%.14g" % x


# --- values read out of Lua ----------------------------------------------------------

class Table:
    """A Lua table read into Python: its pairs in ``next`` order."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs

    def as_array(self, sparse_ratio: int = 2, safe: int = 10) -> list[Any] | None:
        """The values by index 1..n when every key is a positive integer (lua-cjson's
        rule, holes allowed up to ``sparse_ratio``), else None."""
        if not self.pairs:
            return None
        top = 0
        for key, _ in self.pairs:
            if isinstance(key, bool) or not isinstance(key, int | float) or key < 1 \
                    or key != int(key):
                return None
            top = max(top, int(key))
        if top > safe and top > sparse_ratio * len(self.pairs):
            raise LibraryError("Cannot serialise table: excessively sparse array")
        items: list[Any] = [None] * top
        for key, value in self.pairs:
            items[int(key) - 1] = value
        return items


# --- cjson (lua-cjson 2.1) -----------------------------------------------------------

NULL: Final = object()  # cjson.null: the runtime maps it to its own sentinel
_JSON_ESCAPES: Final = {i: f"\\u{i:04x}" for i in range(32)} | {
    ord('"'): '\\"', ord("\\"): "\\\\", ord("/"): "\\/", 8: "\\b", 12: "\\f", 10: "\\n",
    13: "\\r", 9: "\\t", 127: "\\u007f"}
MAX_DEPTH: Final = 1000


def json_encode(value: Any, depth: int = 0) -> bytes:
    if depth > MAX_DEPTH:
        raise LibraryError("Cannot serialise, excessive nesting (1001)")
    if value is None or value is NULL:
        return b"null"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise LibraryError("Cannot serialise number: must not be NaN or Inf")
        return lua_number(float(value))
    if isinstance(value, bytes):
        return _json_string(value)
    if isinstance(value, Table):
        items = value.as_array()
        if items is not None:
            return b"[" + b",".join(json_encode(item, depth + 1) for item in items) + b"]"
        parts = []
        for key, item in value.pairs:
            if isinstance(key, bytes):
                name = key
            elif isinstance(key, int | float) and not isinstance(key, bool):
                name = lua_number(float(key))
            else:
                raise LibraryError(f"Cannot serialise {_lua_type(key)}: table key must be "
                                   f"a number or string")
            parts.append(_json_string(name) + b":" + json_encode(item, depth + 1))
        return b"{" + b",".join(parts) + b"}"
    raise LibraryError(f"Cannot serialise {_lua_type(value)}: type not supported")


def _json_string(raw: bytes) -> bytes:
    return b'"' + raw.decode("latin-1").translate(_JSON_ESCAPES).encode("latin-1") + b'"'


def json_decode(raw: bytes) -> Any:
    """JSON into Python (arrays: list, objects: dict with bytes keys, null: NULL)."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as bad:
        raise LibraryError(f"Expected value but found invalid token at character "
                           f"{bad.pos + 1}") from None
    return _from_json(parsed)


def _from_json(value: Any) -> Any:
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        return {key.encode(): _from_json(item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value) if abs(value) >= 2**53 else value
    return value


# --- cmsgpack (lua-cmsgpack) ---------------------------------------------------------

def msgpack_pack(*values: Any) -> bytes:
    out = bytearray()
    for value in values:
        _pack(value, out, 0)
    return bytes(out)


def _pack(value: Any, out: bytearray, depth: int) -> None:
    if value is None or value is NULL:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int | float):
        if math.isfinite(value) and value == int(value) and -(2**63) <= value < 2**64:
            _pack_int(int(value), out)
        elif struct.unpack("<f", struct.pack("<f", value))[0] == value or math.isnan(value):
            out.append(0xCA)
            out += struct.pack(">f", value)
        else:
            out.append(0xCB)
            out += struct.pack(">d", value)
    elif isinstance(value, bytes):
        size = len(value)
        if size < 32:
            out.append(0xA0 | size)
        elif size < 256:
            out += b"\xd9" + bytes([size])
        elif size < 65536:
            out += b"\xda" + struct.pack(">H", size)
        else:
            out += b"\xdb" + struct.pack(">I", size)
        out += value
    elif isinstance(value, Table):
        if depth >= 16:  # lua-cmsgpack's LUACMSGPACK_MAX_NESTING: deeper is nil
            out.append(0xC0)
            return
        items = _msgpack_array(value)
        if items is not None:
            _pack_head(len(items), out, 0x90, 0xDC)
            for item in items:
                _pack(item, out, depth + 1)
        else:
            _pack_head(len(value.pairs), out, 0x80, 0xDE)
            for key, item in value.pairs:
                _pack(key, out, depth + 1)
                _pack(item, out, depth + 1)
    else:
        out.append(0xC0)  # functions and the like pack as nil


def _msgpack_array(table: Table) -> list[Any] | None:
    """lua-cmsgpack's rule: an array when the keys are exactly 1..n."""
    keys = [key for key, _ in table.pairs]
    n = len(keys)
    if not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= n for k in keys):
        return None
    values = dict(table.pairs)
    return [values[i] for i in range(1, n + 1)]


def _pack_head(size: int, out: bytearray, fix: int, wide: int) -> None:
    if size < 16:
        out.append(fix | size)
    elif size < 65536:
        out.append(wide)
        out += struct.pack(">H", size)
    else:
        out.append(wide + 1)
        out += struct.pack(">I", size)


def _pack_int(n: int, out: bytearray) -> None:
    if 0 <= n < 128:
        out.append(n)
    elif -32 <= n < 0:
        out.append(n & 0xFF)
    elif n >= 0:
        for limit, tag, fmt in ((256, 0xCC, ">B"), (65536, 0xCD, ">H"), (2**32, 0xCE, ">I"),
                                (2**64, 0xCF, ">Q")):
            if n < limit:
                out.append(tag)
                out += struct.pack(fmt, n)
                return
    else:
        for limit, tag, fmt in ((-128, 0xD0, ">b"), (-32768, 0xD1, ">h"),
                                (-(2**31), 0xD2, ">i"), (-(2**63), 0xD3, ">q")):
            if n >= limit:
                out.append(tag)
                out += struct.pack(fmt, n)
                return


def msgpack_unpack(raw: bytes) -> list[Any]:
    """Every value packed one after another in ``raw`` (maps: dict, arrays: list)."""
    values, pos = [], 0
    while pos < len(raw):
        value, pos = _unpack(raw, pos)
        values.append(value)
    return values


_FIXED: Final = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}


def _unpack(raw: bytes, pos: int) -> tuple[Any, int]:
    try:
        tag = raw[pos]
        pos += 1
        if tag < 0x80:
            return tag, pos
        if tag >= 0xE0:
            return tag - 256, pos
        if 0xA0 <= tag < 0xC0:
            return _take(raw, pos, tag & 31)
        if 0x90 <= tag < 0xA0:
            return _unpack_array(raw, pos, tag & 15)
        if 0x80 <= tag < 0x90:
            return _unpack_map(raw, pos, tag & 15)
        if tag == 0xC0:
            return None, pos
        if tag in (0xC2, 0xC3):
            return tag == 0xC3, pos
        if tag in _FIXED:
            fmt = _FIXED[tag]
            size = struct.calcsize(fmt)
            (value,) = struct.unpack_from(fmt, raw, pos)
            if len(raw) < pos + size:
                raise IndexError
            return value, pos + size
        for tags, fmt in (((0xD9, 0xC4), ">B"), ((0xDA, 0xC5), ">H"), ((0xDB, 0xC6), ">I")):
            if tag in tags:
                (size,) = struct.unpack_from(fmt, raw, pos)
                return _take(raw, pos + struct.calcsize(fmt), size)
        if tag in (0xDC, 0xDD, 0xDE, 0xDF):
            fmt = ">H" if tag in (0xDC, 0xDE) else ">I"
            (size,) = struct.unpack_from(fmt, raw, pos)
            pos += struct.calcsize(fmt)
            return (_unpack_array if tag < 0xDE else _unpack_map)(raw, pos, size)
    except (IndexError, struct.error):
        pass
    raise LibraryError("Missing bytes in input.")


def _take(raw: bytes, pos: int, size: int) -> tuple[bytes, int]:
    if pos + size > len(raw):
        raise IndexError
    return raw[pos : pos + size], pos + size


def _unpack_array(raw: bytes, pos: int, size: int) -> tuple[list[Any], int]:
    items = []
    for _ in range(size):
        item, pos = _unpack(raw, pos)
        items.append(item)
    return items, pos


def _unpack_map(raw: bytes, pos: int, size: int) -> tuple[dict[Any, Any], int]:
    items = {}
    for _ in range(size):
        key, pos = _unpack(raw, pos)
        value, pos = _unpack(raw, pos)
        if key is not None:
            items[key] = value
    return items, pos


def _lua_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, bytes):
        return "string"
    if isinstance(value, Table):
        return "table"
    return "function"
