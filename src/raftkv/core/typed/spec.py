"""A typed command's row: its name, Redis's arity and flags, where its keys are, and
the op that runs it (``fn(ctx, args) -> Reply``, ``args`` the whole command line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from raftkv.core.typed.context import Ctx
from raftkv.core.typed.replies import Reply

Op = Callable[[Ctx, list[bytes]], Reply]


class TypedSpec:
    """(A plain class, not a dataclass: compiled, its attributes and ``keys`` are native
    on every typed command's path. Rows are made once; ``Final`` keeps them so.)"""

    def __init__(self, name: str, arity: int, flags: str, fn: Op, first_key: int = 1,
                 last_key: int = 1, key_step: int = 1,
                 find_keys: Callable[[list[bytes]], list[bytes]] | None = None) -> None:
        self.name: Final = name
        self.arity: Final = arity  # Redis's: n exactly, -n at least (the name included)
        self.flags: Final = flags  # Redis's words: "write", "readonly", "fast", "denyoom"...
        self.fn: Final = fn
        self.first_key: Final = first_key
        self.last_key: Final = last_key  # -1: through the last argument
        self.key_step: Final = key_step
        # for commands whose keys follow a count (LMPOP, ZUNIONSTORE...): args -> keys
        self.find_keys: Final = find_keys
        words = flags.split()  # (a script may write: it goes through the log)
        self.writes: Final = "write" in words or "may_replicate" in words
        # a write whose one key is its first argument (LPUSH, SADD, HSET, ZADD...): the
        # state machine runs consecutive ones on the same key in one context
        self.one_key: Final = self.writes and find_keys is None and first_key == last_key == 1

    def keys(self, args: list[bytes]) -> list[bytes]:
        if self.find_keys is not None:
            try:
                return self.find_keys(args)
            except Exception:  # malformed: the op itself will say why
                return []
        first = self.first_key
        if first == self.last_key:  # one key (LPUSH, HSET...): a slice without a step
            return args[first : first + 1]
        last = len(args) - 1 if self.last_key < 0 else self.last_key
        return args[first : last + 1 : self.key_step]


def row(name: str, arity: int, flags: str, fn: Op, first_key: int = 1, last_key: int = 1,
        key_step: int = 1, find_keys: Callable[[list[bytes]], list[bytes]] | None = None
        ) -> TypedSpec:
    return TypedSpec(name, arity, flags, fn, first_key, last_key, key_step, find_keys)
