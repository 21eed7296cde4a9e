"""Numbers as Redis reads them from strings: what "is an integer" means for INCR,
EXPIRE, SETRANGE offsets and every other integer argument (``string2ll``)."""

from __future__ import annotations

from typing import Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def parse_int64(value: bytes) -> int | None:
    """Redis's rule for "is an integer": base 10, optional '-', no '+', spaces or
    leading zeros, within signed 64 bits. None when the value is not one."""
    if not value or len(value) > 20:
        return None
    digits = value[1:] if value[:1] == b"-" else value
    if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0") or value == b"-0":
        return None
    number = int(value)
    return number if INT64_MIN <= number <= INT64_MAX else None
