"""The connection family: PING, ECHO, QUIT, AUTH, HELLO, SELECT and CLIENT - the
commands about the client's own session, answered as Redis 7.0 answers them."""

from __future__ import annotations

from typing import Final

from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.commands.blocking import client_unblock
from raftkv.fronts.resp.spec import SYNTAX, CommandError, Reply, spec, to_int

CLIENT_TYPES: Final = {b"normal", b"master", b"slave", b"replica", b"pubsub"}


def ping(client: Client, args: list[bytes]) -> Reply:
    if len(args) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if client.subscriptions or client.patterns:
        return client.enc.push([p.bulk(b"pong"), p.bulk(args[1] if len(args) > 1 else b"")])
    return client.enc.bulk(args[1]) if len(args) > 1 else p.PONG


def echo(client: Client, args: list[bytes]) -> Reply:
    return p.bulk(args[1])


def quit_(client: Client, args: list[bytes]) -> Reply:
    client.close_after_reply = True
    return p.OK


def auth(client: Client, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise CommandError(SYNTAX)
    authenticator = client.state.authenticator
    if not authenticator.enabled:
        raise CommandError("ERR AUTH <password> called without any password configured for "
                           "the default user. Are you sure your configuration is correct?")
    principal = authenticator.authenticate(args[-1])
    if principal is None:
        raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
    client.principal = principal
    return p.OK


def hello(client: Client, args: list[bytes]) -> Reply:
    rest = args[1:]
    if rest:
        try:
            version = int(rest[0])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 1
        while i < len(rest):
            option = rest[i].upper()
            if option == b"AUTH" and i + 2 < len(rest):
                auth(client, [b"auth", rest[i + 1], rest[i + 2]])
                i += 3
            elif option == b"SETNAME" and i + 1 < len(rest):
                client.name = client_name(rest[i + 1])
                i += 2
            else:
                raise CommandError(f"ERR Syntax error in HELLO option "
                                   f"'{rest[i].decode(errors='replace')}'")
        client.enc = p.RESP3 if version == 3 else p.RESP2
    if client.principal is None:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, "
                           "otherwise the HELLO <proto> AUTH <user> <pass> option can be used "
                           "to authenticate the client and select the RESP protocol version "
                           "at the same time")
    return client.enc.map([
        (p.bulk(b"server"), p.bulk(b"redis")),
        (p.bulk(b"version"), p.bulk(client.state.redis_version)),
        (p.bulk(b"proto"), p.integer(client.enc.version)),
        (p.bulk(b"id"), p.integer(client.id)),
        (p.bulk(b"mode"), p.bulk(b"standalone")),
        (p.bulk(b"role"), p.bulk(b"master")),
        (p.bulk(b"modules"), p.EMPTY_ARRAY),
    ])


def client_name(name: bytes) -> bytes | None:
    if any(c <= 32 or c > 126 for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special "
                           "characters.")
    return name or None


def select(client: Client, args: list[bytes]) -> Reply:
    if to_int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range")
    return p.OK


def client_(client: Client, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    if sub == b"ID" and len(args) == 2:
        return p.integer(client.id)
    if sub == b"GETNAME" and len(args) == 2:
        return client.enc.bulk(client.name)
    if sub == b"SETNAME" and len(args) == 3:
        client.name = client_name(args[2])
        return p.OK
    if sub == b"SETINFO" and len(args) == 4:
        return p.OK
    if sub == b"INFO" and len(args) == 2:
        return p.bulk(client.describe() + b"\n")
    if sub == b"LIST":
        return p.bulk(b"".join(c.describe() + b"\n" for c in _client_list(client, args)))
    if sub == b"KILL" and len(args) >= 3:
        return _client_kill(client, args)
    if sub == b"UNBLOCK" and len(args) in (3, 4):
        return client_unblock(client, args)
    raise CommandError(f"ERR unknown subcommand or wrong number of arguments for "
                       f"'{args[1].decode(errors='replace')}'. Try CLIENT HELP.")


def _client_list(client: Client, args: list[bytes]) -> list[Client]:
    everyone = sorted(client.state.clients, key=lambda c: c.id)
    if len(args) == 2:
        return everyone
    option = args[2].upper()
    if option == b"TYPE" and len(args) == 4:
        kind = args[3].lower()
        if kind not in CLIENT_TYPES:
            raise CommandError(f"ERR Unknown client type '{args[3].decode(errors='replace')}'")
        pubsub = kind == b"pubsub"
        if kind not in (b"normal", b"pubsub"):
            return []  # raftkv has no replication clients: its replicas speak Raft
        return [c for c in everyone if bool(c.subscriptions or c.patterns) == pubsub]
    if option == b"ID" and len(args) > 3:
        by_id = {c.id: c for c in everyone}
        wanted = []
        for raw in args[3:]:
            try:
                wanted.append(to_int(raw))
            except CommandError:
                raise CommandError("ERR Invalid client ID") from None
        return [by_id[i] for i in wanted if i in by_id]
    raise CommandError(SYNTAX)


def _client_kill(client: Client, args: list[bytes]) -> bytes:
    """CLIENT KILL addr (the old form: OK or an error) or KILL ID id / ADDR addr (a count)."""
    everyone = list(client.state.clients)
    if len(args) == 3:
        victims = [c for c in everyone if c.addr.encode() == args[2]]
        if not victims:
            raise CommandError("ERR No such client")
        victims[0].close()
        return p.OK
    if len(args) % 2:
        raise CommandError(SYNTAX)
    for option, value in zip(args[2::2], args[3::2], strict=True):
        option = option.upper()
        if option == b"ID":
            try:
                wanted = to_int(value)
            except CommandError:
                raise CommandError("ERR client-id should be greater than 0") from None
            everyone = [c for c in everyone if c.id == wanted]
        elif option == b"ADDR":
            everyone = [c for c in everyone if c.addr.encode() == value]
        elif option == b"SKIPME":
            if value.lower() not in (b"yes", b"no"):
                raise CommandError(SYNTAX)
            if value.lower() == b"yes":
                everyone = [c for c in everyone if c is not client]
        else:
            raise CommandError(SYNTAX)
    for victim in everyone:
        if victim is client:
            client.close_after_reply = True  # after this reply, as Redis does
        else:
            victim.close()
    return p.integer(len(everyone))


COMMANDS: Final = [
    spec("ping", -1, "fast pubsub", ping),
    spec("echo", 2, "fast", echo),
    spec("quit", -1, "fast noauth pubsub", quit_),
    spec("auth", -2, "fast noauth", auth),
    spec("hello", -1, "fast noauth", hello),
    spec("select", 2, "fast", select),
    spec("client", -2, "", client_),
]
