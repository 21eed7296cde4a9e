"""Pub/Sub on this node, at-most-once as in Redis: a message goes to whoever is
subscribed right now and is never stored. Keyspace notifications are published
here too (``__keyspace@0__:<key>`` / ``__keyevent@0__:<event>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from raftkv.core.commands import (
    Append,
    Command,
    Copy,
    Delete,
    DeleteExpired,
    Evict,
    Expire,
    IncrBy,
    IncrByFloat,
    MultiPut,
    Put,
    Rename,
    Result,
    SetRange,
    Txn,
    TxnResult,
    TypedResult,
)
from raftkv.core.glob import compile_glob
from raftkv.fronts.resp import protocol as p

if TYPE_CHECKING:
    from raftkv.service.service import KVService


class Subscriber(Protocol):
    enc: p.Encoder

    def push(self, data: bytes) -> None: ...


class PubSub:
    def __init__(self) -> None:
        self.channels: dict[bytes, set[Subscriber]] = {}
        self.patterns: dict[bytes, set[Subscriber]] = {}
        self.published = 0

    @staticmethod
    def add(table: dict[bytes, set[Subscriber]], who: Subscriber, name: bytes) -> None:
        """Subscribe ``who`` to a channel (``table`` is ``channels``) or pattern."""
        table.setdefault(name, set()).add(who)

    @staticmethod
    def remove(table: dict[bytes, set[Subscriber]], who: Subscriber, name: bytes) -> None:
        subs = table.get(name)
        if subs is not None:
            subs.discard(who)
            if not subs:
                del table[name]

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver now; return how many subscriptions received it (Redis's reply)."""
        self.published += 1
        receivers = 0
        subs = self.channels.get(channel)
        if subs:
            parts = [p.bulk(b"message"), p.bulk(channel), p.bulk(message)]
            for who in list(subs):
                who.push(who.enc.push(parts))
            receivers += len(subs)
        for pattern, psubs in list(self.patterns.items()):
            if compile_glob(pattern).match(channel):
                parts = [p.bulk(b"pmessage"), p.bulk(pattern), p.bulk(channel), p.bulk(message)]
                for who in list(psubs):
                    who.push(who.enc.push(parts))
                receivers += len(psubs)
        return receivers


ALL_CLASSES: Final = "g$lshzxet"  # what "A" stands for
EXTRA_CLASSES: Final = "dn"  # module and new-key events: accepted, never sent here
BAD_CLASS: Final = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."


class KeyspaceEvents:
    """Redis's keyspace notifications (``notify-keyspace-events``): after each applied
    command, ``__keyspace@0__:<key>`` gets the event name (flag K) and
    ``__keyevent@0__:<event>`` gets the key (flag E), for the event classes the flags
    name (g generic, $ string, x expired, e evicted, ...). Off while the flags are
    empty: then no observer is installed and applying costs nothing more."""

    def __init__(self, pubsub: PubSub, service: KVService) -> None:
        self.pubsub = pubsub
        self.service = service
        self.flags = ""  # as CONFIG GET shows them
        self._classes = ""
        self._keyspace = self._keyevent = False

    @staticmethod
    def check(flags: str) -> str:
        """``flags`` if every character names a class; else ValueError, Redis's text."""
        if any(c not in ALL_CLASSES + EXTRA_CLASSES + "AKEm" for c in flags):
            raise ValueError(BAD_CLASS)
        return flags

    def configure(self, flags: str) -> None:
        """Set the flags (checked: see ``check``)."""
        classes = ALL_CLASSES if "A" in flags else "".join(c for c in ALL_CLASSES if c in flags)
        shown = "A" if classes == ALL_CLASSES else classes
        if shown != "A":
            shown += "".join(c for c in EXTRA_CLASSES if c in flags)
        shown += "".join(c for c in "KEm" if c in flags)
        was_on = self._on
        self.flags, self._classes = shown, classes
        self._keyspace, self._keyevent = "K" in flags, "E" in flags
        if self._on and not was_on:
            self.service.add_observer(self.observe)
        elif was_on and not self._on:
            self.service.remove_observer(self.observe)

    @property
    def _on(self) -> bool:
        return bool(self._classes) and (self._keyspace or self._keyevent)

    def _notify(self, key: bytes, event: bytes, kind: str) -> None:
        pubsub = self.pubsub
        if kind not in self._classes or not (pubsub.channels or pubsub.patterns):
            return
        if self._keyspace:
            pubsub.publish(b"__keyspace@0__:" + key, event)
        if self._keyevent:
            pubsub.publish(b"__keyevent@0__:" + event, key)

    def observe(self, command: Command, result: Result) -> None:
        notify = self._notify
        if isinstance(result, TypedResult):  # (a failed script's earlier writes count)
            for event, key, kind in result.events:
                notify(key, event, kind)
            return
        if not result.ok:
            return
        if isinstance(command, Put):
            notify(command.key, b"set", "$")
        elif isinstance(command, Delete):
            notify(command.key, b"del", "g")
        elif isinstance(command, Expire):
            if result.affected:
                event = (b"persist" if command.expires_at_ms is None
                         else b"del" if result.entry is None else b"expire")
                notify(command.key, event, "g")
        elif isinstance(command, IncrBy):
            notify(command.key, b"incrby", "$")
        elif isinstance(command, Append):
            notify(command.key, b"append", "$")
        elif isinstance(command, MultiPut):
            for key, _ in command.items:
                notify(key, b"set", "$")
        elif isinstance(command, SetRange):
            notify(command.key, b"setrange", "$")
        elif isinstance(command, IncrByFloat):
            notify(command.key, b"incrbyfloat", "$")
        elif isinstance(command, Rename):
            if command.source != command.target:
                notify(command.source, b"rename_from", "g")
                notify(command.target, b"rename_to", "g")
        elif isinstance(command, Copy):
            notify(command.target, b"copy_to", "g")
        elif isinstance(command, Txn) and isinstance(result, TxnResult):
            for op, op_result in zip(command.ops, result.results, strict=True):
                self.observe(op, op_result)
        elif isinstance(command, DeleteExpired | Evict):
            expired = isinstance(command, DeleteExpired)
            event, kind = (b"expired", "x") if expired else (b"evicted", "e")
            for key in command.keys:
                if not self.service.is_stored(key):
                    notify(key, event, kind)
