"""Reading the project's little-endian binary formats safely: every fixed field and
length-prefixed blob is checked against the bytes left before it is sliced."""

from __future__ import annotations

import struct
from typing import Final

U32: Final = struct.Struct("<I")
_F64: Final = struct.Struct("<d")
_pack_u32: Final = U32.pack  # (compiled: a C static, no method lookup per call)
_SHORT_LENGTHS: Final = [U32.pack(n) for n in range(4096)]


def u32(n: int) -> bytes:
    """A length's four bytes, as ``U32`` packs it: a short one from a table (a list
    index costs a fraction of a call to struct)."""
    return _SHORT_LENGTHS[n] if n < 4096 else _pack_u32(n)


class BinaryReader:
    __slots__ = ("data", "error", "pos")

    def __init__(self, data: bytes, error: type[ValueError]) -> None:
        self.data = data
        self.pos = 0
        self.error = error  # raised, with a reason, when the bytes run out

    def fixed(self, fmt: struct.Struct) -> tuple[int, ...]:
        if self.pos + fmt.size > len(self.data):
            raise self.error("truncated")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def double(self) -> float:
        """A little-endian f64 field."""
        if self.pos + 8 > len(self.data):
            raise self.error("truncated")
        value: float = _F64.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return value

    def blob(self) -> bytes:
        """A ``u32 length | bytes`` field."""
        (n,) = self.fixed(U32)
        end = self.pos + n
        if end > len(self.data):
            raise self.error("a field is longer than the bytes left")
        value = self.data[self.pos: end]
        self.pos = end
        return value

    @property
    def at_end(self) -> bool:
        return self.pos == len(self.data)
