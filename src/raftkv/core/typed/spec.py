"""A typed command's row: its name, Redis's arity and flags, where its keys are, and
the op that runs it (``fn(ctx, args) -> Reply``, ``args`` the whole command line)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from raftkv.core.typed.context import Ctx
from raftkv.core.typed.replies import Reply

Op = Callable[[Ctx, list[bytes]], Reply]


@dataclass(frozen=True, slots=True)
class TypedSpec:
    name: str
    arity: int  # Redis's: n exactly, -n at least (the name included)
    flags: str  # Redis's words: "write", "readonly", "fast", "denyoom", "may_replicate"
    fn: Op
    first_key: int = 1
    last_key: int = 1  # -1: through the last argument
    key_step: int = 1
    # for commands whose keys follow a count (LMPOP, ZUNIONSTORE...): args -> keys
    find_keys: Callable[[list[bytes]], list[bytes]] | None = None
    writes: bool = field(init=False)
    # a write whose one key is its first argument (LPUSH, SADD, HSET, ZADD...): the
    # state machine runs consecutive ones on the same key in one context
    one_key: bool = field(init=False)

    def __post_init__(self) -> None:
        words = self.flags.split()  # (a script may write: it goes through the log)
        writes = "write" in words or "may_replicate" in words
        object.__setattr__(self, "writes", writes)
        object.__setattr__(self, "one_key", writes and self.find_keys is None
                           and self.first_key == self.last_key == 1)

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
