"""Numbers as Redis reads them from strings: what "is an integer" means for INCR,
EXPIRE, SETRANGE offsets and every other integer argument (``string2ll``), what "is a
float" means for INCRBYFLOAT, and how Redis writes a float back."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def parse_int64(value: bytes) -> int | None:
    """Redis's rule for "is an integer": base 10, optional '-', no '+', spaces or
    leading zeros, within signed 64 bits. None when the value is not one. (Digit by
    digit: compiled, a loop costs less than slicing and ``int``.)"""
    size = len(value)
    if size == 0 or size > 20:
        return None
    negative = value[0] == 45  # '-'
    start = 1 if negative else 0
    if start == size or (value[start] == 48 and size - start > 1):  # '-' alone, '0...'
        return None
    number = 0
    for i in range(start, size):
        digit = value[i] - 48
        if digit < 0 or digit > 9:
            return None
        number = number * 10 + digit
    if negative:
        if number == 0:  # '-0'
            return None
        number = -number
    return number if INT64_MIN <= number <= INT64_MAX else None


# Redis does INCRBYFLOAT in C's long double: on x86-64 an 80-bit float with a 64-bit
# significand, about 19 significant decimal digits, and an exponent to about 1e4932.
# Decimal arithmetic in a context of that size gives the same answers for the numbers
# people add (0.1 + 0.2 is 0.3, 1e308 + 1e308 is finite), and the same on every
# replica - a binary double would not (5005.6 + 0.002 is 5005.602000000001 there).
LONG_DOUBLE: Final = Context(prec=19, Emax=4931, Emin=-4950, rounding=ROUND_HALF_EVEN,
                             traps=[])
_FIXED: Final = Context(prec=10_000, Emax=4931, Emin=-4950, traps=[])
_SEVENTEEN_PLACES: Final = Decimal(1).scaleb(-17)


def parse_long_double(value: bytes) -> Decimal | None:
    """Redis's rule for "is a float" (``string2ld``: strtold, no surrounding space, not
    NaN), rounded to long double's precision. None when the value is not one."""
    if not value or len(value) > 5000 or value[:1].isspace() or value[-1:].isspace() \
            or b"_" in value:
        return None
    try:
        number = LONG_DOUBLE.create_decimal(value.decode("ascii"))
    except (InvalidOperation, UnicodeDecodeError):
        return None
    return None if number.is_nan() else number


def add_long_double(a: Decimal, b: Decimal) -> Decimal | None:
    """``a + b`` in long double; None when it is infinite or not a number."""
    total = LONG_DOUBLE.add(a, b)
    return None if total.is_infinite() or total.is_nan() else total


def format_long_double(number: Decimal) -> bytes:
    """As Redis writes INCRBYFLOAT's result (``%.17Lf`` with the trailing zeros and
    point removed): fixed notation, never an exponent."""
    text = format(number.quantize(_SEVENTEEN_PLACES, context=_FIXED), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()
