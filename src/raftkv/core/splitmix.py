"""The random stream of a typed op (``Ctx.randrange``: SPOP, the RAND commands, a
script's math.random): splitmix64, whose state is one 64-bit number and whose draw is
a few multiplications, seeded by the log entry's index so every replica draws the
same numbers.

This file is the reference, in plain Python. What runs is ``splitmix.c``, built into
an extension module of the same name, which Python imports instead of this file: in
Python each step's products pass 64 bits, so every draw made big integers, and one
SPOP spent 6,500 instructions drawing its member (``benchmarks/instructions``). The
tests hold the two to the same numbers (``tests/property/test_splitmix.py``).
"""

from __future__ import annotations

from typing import Final

GOLDEN: Final = 0x9E3779B97F4A7C15  # the step between states: 2**64 over the golden ratio
_MASK64: Final = (1 << 64) - 1


def start(seed: int) -> int:
    """The state a stream seeded with ``seed`` (any integer) starts from."""
    if not isinstance(seed, int):
        raise TypeError("a seed is an integer")
    return (seed * GOLDEN + 1) & _MASK64


def draw(state: int, n: int) -> tuple[int, int]:
    """The state after ``state`` (taken modulo 2**64), and a number drawn at it
    modulo ``n``: in [0, n) for a positive ``n``."""
    state = ((state & _MASK64) + GOLDEN) & _MASK64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, (z ^ (z >> 31)) % n
