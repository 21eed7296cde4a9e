"""Pub/Sub on this node, at-most-once as in Redis: a message goes to whoever is
subscribed right now and is never stored. Keyspace notifications are published
here too (``__keyspace@0__:<key>`` / ``__keyevent@0__:<event>``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from raftkv.core.commands import (
    Append,
    Command,
    Delete,
    DeleteExpired,
    Evict,
    Expire,
    IncrBy,
    MultiPut,
    Put,
    Result,
)
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.glob import compile_glob


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


def keyspace_notifier(pubsub: PubSub, key_absent: Callable[[bytes], bool]
                      ) -> Callable[[Command, Result], None]:
    """An observer of applied commands that publishes Redis-style keyspace events."""

    def notify(key: bytes, event: bytes) -> None:
        if not (pubsub.channels or pubsub.patterns):
            return
        pubsub.publish(b"__keyspace@0__:" + key, event)
        pubsub.publish(b"__keyevent@0__:" + event, key)

    def observe(command: Command, result: Result) -> None:
        if not result.ok:
            return
        if isinstance(command, Put):
            notify(command.key, b"set")
        elif isinstance(command, Delete):
            notify(command.key, b"del")
        elif isinstance(command, Expire):
            if result.affected:
                event = (b"persist" if command.expires_at_ms is None
                         else b"del" if result.entry is None else b"expire")
                notify(command.key, event)
        elif isinstance(command, IncrBy):
            notify(command.key, b"incrby")
        elif isinstance(command, Append):
            notify(command.key, b"append")
        elif isinstance(command, MultiPut):
            for key, _ in command.items:
                notify(key, b"set")
        elif isinstance(command, DeleteExpired | Evict):
            event = b"expired" if isinstance(command, DeleteExpired) else b"evicted"
            for key in command.keys:
                if key_absent(key):
                    notify(key, event)

    return observe
