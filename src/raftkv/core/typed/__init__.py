"""Redis's hash, list, set, sorted-set and stream commands, and its scripts, as ops of
the state machine (DATA-MODEL.md sections 2 and 4).

A typed command travels in the log as its command line (``TypedOp``, as Redis's own
replication stream carries commands) and every replica runs the same op on it at
apply time, so the reply, the errors and the seeded randomness are the same
everywhere. Reads run the same ops outside the log, where they cannot write. Each op
parses its arguments and checks its keys' types before changing anything.
"""

from __future__ import annotations

from typing import Final

from raftkv.core.commands import OUTCOME_OK, Outcome
from raftkv.core.typed import hashes, lists, scripts, sets, streams, strings, zsets
from raftkv.core.typed.context import WRONGTYPE, Ctx, OpError
from raftkv.core.typed.replies import Reply
from raftkv.core.typed.spec import TypedSpec

COMMANDS: Final[dict[str, TypedSpec]] = {
    spec.name: spec
    for family in (hashes.COMMANDS, lists.COMMANDS, sets.COMMANDS, zsets.COMMANDS,
                   streams.COMMANDS, scripts.COMMANDS)
    for spec in family
}
# the same rows by the name as a command line carries it (lower case): looked up per op
BY_NAME: Final[dict[bytes, TypedSpec]] = {name.encode(): spec for name, spec in COMMANDS.items()}
# the writes whose one key is their first argument (``TypedSpec.one_key``)
ONE_KEY: Final = frozenset(name for name, spec in BY_NAME.items() if spec.one_key)
# what a script's redis.call can run, and whether the op needs a context of its own
# (the typed ops: they finish their changes at the end) - these rows but the scripting
# ones, and the string and key commands (the RESP front has its own rows for those)
CALLABLE: Final[dict[bytes, tuple[TypedSpec, bool]]] = {
    name: (spec, True) for name, spec in BY_NAME.items() if "noscript" not in spec.flags.split()
} | {spec.name.encode(): (spec, False) for spec in strings.COMMANDS}


def attempt(ctx: Ctx, args: list[bytes]) -> tuple[Outcome, Reply]:
    """``run``, its error as an outcome: (OK, the reply) or (WRONG_TYPE or ERROR, the
    error's text) - how the state machine and the service's reads both answer."""
    try:
        return OUTCOME_OK, run(ctx, args)
    except OpError as refused:
        return (Outcome.WRONG_TYPE if refused.text == WRONGTYPE else Outcome.ERROR,
                refused.text)


def run(ctx: Ctx, args: list[bytes]) -> Reply:
    """Run the command line ``args`` (its name in lower case first); raises OpError."""
    spec = BY_NAME.get(args[0])
    if spec is None:
        raise OpError(b"ERR unknown command '%s'" % args[0])
    if spec.writes and not ctx.index:
        raise AssertionError(f"{spec.name} writes: it runs from the log, not as a read")
    return spec.fn(ctx, args)


__all__ = ["BY_NAME", "CALLABLE", "COMMANDS", "ONE_KEY", "Ctx", "OpError", "Reply", "TypedSpec", "attempt",
           "run"]
