"""The pub/sub family: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE (the
broker itself is ``fronts/resp/pubsub.py``)."""

from __future__ import annotations

from typing import Any, Final

from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.spec import Reply, spec


def publish(client: Client, args: list[bytes]) -> Reply:
    return p.integer(client.state.pubsub.publish(args[1], args[2]))


def _subscription_reply(client: Client, kind: bytes, name: bytes | None) -> bytes:
    return client.enc.push([p.bulk(kind), client.enc.bulk(name),
                            p.integer(client.subscription_count)])


def _join(client: Client, names: list[bytes], mine: set[bytes],
          table: dict[bytes, set[Any]], kind: bytes) -> bytes:
    out = []
    for name in names:
        if name not in mine:
            mine.add(name)
            client.state.pubsub.add(table, client, name)
        out.append(_subscription_reply(client, kind, name))
    return b"".join(out)


def _leave(client: Client, names: list[bytes], mine: set[bytes],
           table: dict[bytes, set[Any]], kind: bytes) -> bytes:
    names = names or sorted(mine)  # no names: leave them all
    if not names:
        return _subscription_reply(client, kind, None)
    out = []
    for name in names:
        mine.discard(name)
        client.state.pubsub.remove(table, client, name)
        out.append(_subscription_reply(client, kind, name))
    return b"".join(out)


def subscribe(client: Client, args: list[bytes]) -> Reply:
    return _join(client, args[1:], client.subscriptions, client.state.pubsub.channels,
                 b"subscribe")


def unsubscribe(client: Client, args: list[bytes]) -> Reply:
    return _leave(client, args[1:], client.subscriptions, client.state.pubsub.channels,
                  b"unsubscribe")


def psubscribe(client: Client, args: list[bytes]) -> Reply:
    return _join(client, args[1:], client.patterns, client.state.pubsub.patterns, b"psubscribe")


def punsubscribe(client: Client, args: list[bytes]) -> Reply:
    return _leave(client, args[1:], client.patterns, client.state.pubsub.patterns,
                  b"punsubscribe")


def leave_all(client: Client) -> None:
    """Drop every subscription of a client that went away."""
    pubsub = client.state.pubsub
    for channel in client.subscriptions:
        pubsub.remove(pubsub.channels, client, channel)
    for pattern in client.patterns:
        pubsub.remove(pubsub.patterns, client, pattern)


COMMANDS: Final = [
    spec("publish", 3, "pubsub fast", publish),
    spec("subscribe", -2, "pubsub", subscribe),
    spec("unsubscribe", -1, "pubsub", unsubscribe),
    spec("psubscribe", -2, "pubsub", psubscribe),
    spec("punsubscribe", -1, "pubsub", punsubscribe),
]
