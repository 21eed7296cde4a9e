"""What a typed op answers, independent of the wire: the RESP front renders these
(RESP2 or RESP3), and the state machine keeps them, encoded here, in the results it
remembers for retried requests.

    None            a nil                  int     an integer
    bytes           a bulk string          float   a double (a score)
    list            an array of replies    Status  a simple string (+OK)
    NIL_ARRAY       a nil array            Map     RESP3 map (RESP2: a flat array)
    Pairs           RESP3 array of pairs (WITHSCORES; RESP2: a flat array)
    Members         RESP3 set (RESP2: an array)
    KeyedMap        RESP3 map (RESP2: an array of [key, value] arrays: XREAD)
    ErrorReply      an error inside an array (a script's reply can hold one)
"""

from __future__ import annotations

import struct
from typing import Any, Final, TypeAlias

from raftkv.core.binary import U32, BinaryReader


class Status:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Status({self.text!r})"


class NilArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_ARRAY"


class ErrorReply:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"ErrorReply({self.text!r})"


class Map(list):  # type: ignore[type-arg]
    """Alternating keys and values."""


class Pairs(list):  # type: ignore[type-arg]
    """Alternating members and scores (or fields and values)."""


class Members(list):  # type: ignore[type-arg]
    """The members of a set."""


class KeyedMap(list):  # type: ignore[type-arg]
    """Alternating keys and values, a pair per key in RESP2 (XREAD's streams)."""


OK: Final = Status(b"OK")
NIL_ARRAY: Final = NilArray()
Reply: TypeAlias = "int | bytes | float | list[Any] | Status | ErrorReply | NilArray | None"

_I64: Final = struct.Struct("<q")
_F64: Final = struct.Struct("<d")
_LISTS: Final[dict[type, int]] = {list: 4, Map: 7, Pairs: 8, Members: 9, KeyedMap: 11}
_LIST_TYPES: Final[dict[int, type[list[Any]]]] = {4: list, 7: Map, 8: Pairs, 9: Members,
                                                  11: KeyedMap}


def encode_reply(reply: Reply, out: bytearray) -> None:
    if reply is None:
        out.append(0)
    elif isinstance(reply, bool):
        raise TypeError("a reply is never a bool")
    elif isinstance(reply, int):
        out.append(1)
        out += _I64.pack(reply)
    elif isinstance(reply, bytes):
        out.append(2)
        out += U32.pack(len(reply))
        out += reply
    elif isinstance(reply, float):
        out.append(3)
        out += _F64.pack(reply)
    elif isinstance(reply, list):
        out.append(_LISTS[type(reply)])
        out += U32.pack(len(reply))
        for item in reply:
            encode_reply(item, out)
    elif isinstance(reply, Status):
        out.append(5)
        out += U32.pack(len(reply.text))
        out += reply.text
    elif isinstance(reply, ErrorReply):
        out.append(10)
        out += U32.pack(len(reply.text))
        out += reply.text
    else:
        out.append(6)


def decode_reply(r: BinaryReader) -> Reply:
    (tag,) = r.fixed(_U8)
    if tag == 0:
        return None
    if tag == 1:
        return r.fixed(_I64)[0]
    if tag == 2:
        return r.blob()
    if tag == 3:
        return r.double()
    if tag in _LIST_TYPES:
        (count,) = r.fixed(U32)
        items = _LIST_TYPES[tag]()
        for _ in range(count):
            items.append(decode_reply(r))
        return items
    if tag == 5:
        return Status(r.blob())
    if tag == 6:
        return NIL_ARRAY
    if tag == 10:
        return ErrorReply(r.blob())
    raise r.error(f"unknown reply tag {tag}")


_U8: Final = struct.Struct("<B")
