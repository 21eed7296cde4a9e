"""The server family of RESP commands: COMMAND, INFO, CONFIG, DBSIZE, TIME, FLUSHDB and
FLUSHALL, answered as Redis 7.0 answers them (field names, order, error texts), about
this node.

``redis_version`` is the Redis release whose behaviour raftkv follows and is tested
against, so clients that parse it (to pick commands) see a plain ``7.x.y``; raftkv's
own version is ``raftkv_version``. CONFIG SET changes, at run time and on this node
only, the parameters that can change without a restart (``SETTABLE``); the rest are
refused with Redis's "can't set immutable config".
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from raftkv import __version__
from raftkv.core.eviction import Limits, Policy
from raftkv.core.glob import compile_glob
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client, ServerState
from raftkv.fronts.resp.docs import DOCS, Doc
from raftkv.fronts.resp.pubsub import KeyspaceEvents
from raftkv.fronts.resp.spec import SYNTAX, CommandError, Reply, Spec, later, spec, to_int

REDIS_VERSION: Final = b"7.0.15"
RUN_ID: Final = os.urandom(20).hex()  # Redis's run_id: new at every start
INFO_DEFAULT: Final = ("server", "clients", "memory", "persistence", "stats", "replication",
                       "cpu", "modules", "errorstats", "cluster", "keyspace")
INFO_ALL: Final = (*INFO_DEFAULT[:8], "commandstats", *INFO_DEFAULT[8:])


# --- COMMAND ----------------------------------------------------------------------------

def command_(client: Client, args: list[bytes]) -> Reply:
    table = client.state.table
    sub = args[1].upper() if len(args) > 1 else None
    if sub is None:
        return p.raw_array([_command_info(row) for row in table.values()])
    if sub == b"COUNT":
        return p.integer(len(table))
    if sub == b"INFO":
        return p.raw_array([_command_info(table[n.lower()]) if n.lower() in table
                            else client.enc.NIL for n in args[2:]])
    if sub == b"DOCS":
        names = [n.lower().decode(errors="replace") for n in args[2:]] or \
            [n.decode() for n in table]
        enc = client.enc
        return enc.map([(p.bulk(name.encode()), _doc_reply(DOCS[name], enc))
                        for name in names if name in DOCS and name.encode() in table])
    raise CommandError(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try "
                       f"COMMAND HELP.")


# Commands whose subcommands say where their keys are (OBJECT ENCODING key...): Redis
# reports no key positions for the container itself.
CONTAINERS: Final = frozenset({"object", "client", "config", "command", "script", "xgroup",
                                "xinfo"})


def _doc_reply(doc: Doc, enc: p.Encoder) -> bytes:
    fields = [(p.bulk(b"summary"), p.bulk(doc.summary.encode())),
              (p.bulk(b"since"), p.bulk(doc.since.encode())),
              (p.bulk(b"group"), p.bulk(doc.group.encode()))]
    if doc.arguments:
        fields.append((p.bulk(b"arguments"), _arguments_reply(doc.arguments, enc)))
    return enc.map(fields)


def _arguments_reply(arguments: list[dict[str, Any]], enc: p.Encoder) -> bytes:
    out = []
    for argument in arguments:
        fields = [(p.bulk(b"name"), p.bulk(argument["name"].encode())),
                  (p.bulk(b"type"), p.bulk(argument["type"].encode()))]
        if "token" in argument:
            fields.append((p.bulk(b"token"), p.bulk(argument["token"].encode())))
        if "flags" in argument:
            fields.append((p.bulk(b"flags"),
                           p.raw_array([p.simple(f) for f in argument["flags"]])))
        if "arguments" in argument:
            fields.append((p.bulk(b"arguments"), _arguments_reply(argument["arguments"], enc)))
        out.append(enc.map(fields))
    return p.raw_array(out)


def _command_info(row: Spec) -> bytes:
    """Redis 7's ten fields: name, arity, flags, first/last key, step, ACL categories,
    tips, key specs, subcommands (the last three empty here)."""
    # keys after a count: Redis says movablekeys, 0 0 0 (a container says 0 0 0 alone:
    # its subcommands know their keys)
    movable = row.find_keys is not None and row.name not in CONTAINERS
    names = sorted(row.flags - {"noauth", "movablekeys"}) + (["movablekeys"] if movable else [])
    movable = movable or row.name in CONTAINERS
    flags = p.raw_array([p.simple(f) for f in names])
    categories = ["@write" if "write" in row.flags else "@read" if "readonly" in row.flags
                  else "@connection"]
    return p.raw_array([p.bulk(row.name.encode()), p.integer(row.arity), flags,
                        p.integer(0 if movable else row.first_key),
                        p.integer(0 if movable else row.last_key),
                        p.integer(row.key_step if row.first_key and not movable else 0),
                        p.raw_array([p.simple(c) for c in categories]),
                        p.EMPTY_ARRAY, p.EMPTY_ARRAY, p.EMPTY_ARRAY])


# --- INFO -------------------------------------------------------------------------------

def info(client: Client, args: list[bytes]) -> Reply:
    wanted = {a.lower().decode(errors="replace") for a in args[1:]} or {"default"}
    if wanted & {"all", "everything"}:
        names: tuple[str, ...] = INFO_ALL
    else:
        names = tuple(n for n in INFO_ALL if n in wanted or
                      ("default" in wanted and n in INFO_DEFAULT))
    sections = []
    for name in names:
        fields = _INFO_SECTIONS[name](client.state)
        sections.append(f"# {name.capitalize()}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))
    return p.bulk("\r\n".join(sections).encode())


Fields = list[tuple[str, object]]


def _server_info(server: ServerState) -> Fields:
    status = server.service.status()
    uptime_s = int(time.monotonic() - server.started)
    return [
        ("redis_version", REDIS_VERSION.decode()), ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0), ("redis_build_id", "0"), ("redis_mode", "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", 64 if platform.architecture()[0] == "64bit" else 32),
        ("multiplexing_api", "epoll"), ("gcc_version", "0.0.0"),
        ("process_id", os.getpid()), ("process_supervised", "no"), ("run_id", RUN_ID),
        ("tcp_port", server.port), ("server_time_usec", time.time_ns() // 1000),
        ("uptime_in_seconds", uptime_s), ("uptime_in_days", uptime_s // 86400),
        ("hz", 10), ("configured_hz", 10),
        ("executable", os.path.abspath(sys.argv[0]) if sys.argv else ""),
        ("config_file", server.config.config_file or ""),
        ("raftkv_version", __version__), ("raftkv_node_id", status.node_id),
    ]


def _clients_info(server: ServerState) -> Fields:
    connections = server.clients
    return [
        ("connected_clients", len(connections)), ("cluster_connections", 0),
        ("maxclients", server.max_clients), ("client_recent_max_input_buffer", 0),
        ("client_recent_max_output_buffer", 0), ("blocked_clients", 0),
        ("tracking_clients", 0), ("clients_in_timeout_table", 0),
        ("pubsub_clients", sum(1 for c in connections if c.subscriptions or c.patterns)),
    ]


def _memory_info(server: ServerState) -> Fields:
    used = server.service.stats().memory_bytes
    limits = server.service.limits.eviction
    return [
        ("used_memory", used), ("used_memory_human", _human(used)),
        ("used_memory_rss", _rss_bytes()), ("maxmemory", limits.max_memory_bytes),
        ("maxmemory_human", _human(limits.max_memory_bytes)),
        ("maxmemory_policy", str(limits.policy)),
    ]  # (used_memory is eviction's estimate: payload plus a fixed overhead per key)


def _persistence_info(server: ServerState) -> Fields:
    stats = server.service.stats()
    return [
        ("loading", 0), ("async_loading", 0), ("rdb_changes_since_last_save", 0),
        ("rdb_bgsave_in_progress", 0), ("rdb_last_bgsave_status", "ok"),
        ("aof_enabled", 1), ("aof_rewrite_in_progress", 0), ("aof_last_write_status", "ok"),
        ("raftkv_fsync", str(server.config.fsync)), ("raftkv_applied_index", stats.applied_index),
    ]


def _stats_info(server: ServerState) -> Fields:
    stats, keyspace = server.stats, server.service.stats()
    return [
        ("total_connections_received", stats.connections_received),
        ("total_commands_processed", stats.commands),
        ("rejected_connections", stats.rejected_connections),
        ("expired_keys", keyspace.expired_total), ("evicted_keys", keyspace.evicted_total),
        ("keyspace_hits", stats.keyspace_hits), ("keyspace_misses", stats.keyspace_misses),
        ("pubsub_channels", len(server.pubsub.channels)),
        ("pubsub_patterns", len(server.pubsub.patterns)),
        ("total_error_replies", sum(row.stats.failed + row.stats.rejected
                                    for row in server.table.values())),
    ]


def _replication_info(server: ServerState) -> Fields:
    status = server.service.status()
    return [
        ("role", "master" if status.role == "leader" else "slave"), ("connected_slaves", 0),
        ("master_repl_offset", status.commit_index),
        ("raftkv_role", status.role), ("raftkv_leader_id", status.leader_id or ""),
        ("raftkv_term", status.term), ("raftkv_commit_index", status.commit_index),
    ]


def _cpu_info(server: ServerState) -> Fields:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [("used_cpu_sys", f"{me.ru_stime:.6f}"), ("used_cpu_user", f"{me.ru_utime:.6f}"),
            ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
            ("used_cpu_user_children", f"{children.ru_utime:.6f}")]


def _commandstats_info(server: ServerState) -> Fields:
    out: Fields = []
    for row in server.table.values():
        s = row.stats
        if s.calls or s.rejected or s.failed:
            usec = s.ns // 1000
            per_call = usec / s.calls if s.calls else 0.0
            out.append((f"cmdstat_{row.name}", f"calls={s.calls},usec={usec},usec_per_call="
                        f"{per_call:.2f},rejected_calls={s.rejected},failed_calls={s.failed}"))
    return out


def _keyspace_info(server: ServerState) -> Fields:
    stats = server.service.stats()
    if not stats.keys:
        return []
    return [("db0", f"keys={stats.keys},expires={stats.volatile_keys},avg_ttl=0")]


_INFO_SECTIONS: Final[dict[str, Callable[[ServerState], Fields]]] = {
    "server": _server_info, "clients": _clients_info, "memory": _memory_info,
    "persistence": _persistence_info, "stats": _stats_info, "replication": _replication_info,
    "cpu": _cpu_info, "modules": lambda server: [], "commandstats": _commandstats_info,
    "errorstats": lambda server: [], "cluster": lambda server: [("cluster_enabled", 0)],
    "keyspace": _keyspace_info,
}


def _human(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# --- CONFIG -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Parameter:
    """One CONFIG parameter: how to read it and, when it can change at run time, how to
    parse and apply a new value (``parse`` raises ValueError with Redis's reason)."""

    get: Callable[[ServerState], bytes]
    parse: Callable[[bytes], object] | None = None
    apply: Callable[[ServerState, object], None] | None = None


def _memory_value(raw: bytes) -> int:
    """Redis's memtoull: bytes, or k/kb/m/mb/g/gb (k = 1000, kb = 1024)."""
    text = raw.decode(errors="replace").lower()
    digits = text.rstrip("kmgb")
    units = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 1 << 20, "g": 10**9,
             "gb": 1 << 30}
    unit = text[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise ValueError("argument must be a memory value")
    return int(digits) * units[unit]


def _integer(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("argument couldn't be parsed into an integer") from None


def _bounded(lo: int, hi: int, parse: Callable[[bytes], int] = _integer
             ) -> Callable[[bytes], int]:
    def check(raw: bytes) -> int:
        value = parse(raw)
        if not lo <= value <= hi:
            raise ValueError(f"argument must be between {lo} and {hi} inclusive")
        return value
    return check


def _policy(raw: bytes) -> Policy:
    names = [policy.value for policy in Policy]
    try:
        return Policy(raw.decode(errors="replace").lower())
    except ValueError:
        raise ValueError(f"argument(s) must be one of the following: {', '.join(names)}") \
            from None


def _set_eviction(server: ServerState, **change: object) -> None:
    current = server.service.limits.eviction
    fields = {"policy": current.policy, "max_keys": current.max_keys,
              "max_memory_bytes": current.max_memory_bytes,
              "sample_size": current.sample_size, **change}
    server.service.configure_eviction(Limits(**fields))  # type: ignore[arg-type]


def _set_query_buffer_limit(server: ServerState, value: object) -> None:
    assert isinstance(value, int)
    server.query_buffer_limit_bytes = value  # (each connection reads it per request)


def _fixed(value: bytes) -> Parameter:
    return Parameter(lambda server: value)


PARAMETERS: Final[dict[bytes, Parameter]] = {
    b"appendonly": _fixed(b"yes"),  # every write goes through the log
    b"appendfsync": Parameter(lambda s: str(s.config.fsync).encode()),
    b"bind": Parameter(lambda s: s.config.host.encode()),
    b"client-query-buffer-limit": Parameter(
        lambda s: b"%d" % s.query_buffer_limit_bytes, _bounded(1 << 20, 2**63 - 1, _memory_value),
        _set_query_buffer_limit),
    b"cluster-enabled": _fixed(b"no"),
    b"daemonize": _fixed(b"no"),
    b"databases": _fixed(b"1"),
    b"dir": Parameter(lambda s: os.path.abspath(s.config.data_dir).encode()),
    b"hz": _fixed(b"10"),
    b"io-threads": _fixed(b"1"),
    b"lfu-decay-time": _fixed(b"1"),
    b"lfu-log-factor": _fixed(b"10"),
    b"logfile": _fixed(b""),  # logs go to standard error
    b"loglevel": Parameter(lambda s: {"debug": b"debug", "info": b"notice",
                                      "warning": b"warning", "error": b"warning"}
                           .get(s.config.log_level, b"notice")),
    b"maxclients": Parameter(lambda s: b"%d" % s.max_clients, _bounded(1, 4294967295),
                             lambda s, v: setattr(s, "max_clients", v)),
    b"maxmemory": Parameter(lambda s: b"%d" % s.service.limits.eviction.max_memory_bytes,
                            _bounded(0, 2**63 - 1, _memory_value),
                            lambda s, v: _set_eviction(s, max_memory_bytes=v)),
    b"maxmemory-policy": Parameter(lambda s: str(s.service.limits.eviction.policy).encode(),
                                   _policy, lambda s, v: _set_eviction(s, policy=v)),
    b"maxmemory-samples": Parameter(lambda s: b"%d" % s.service.limits.eviction.sample_size,
                                    _bounded(1, 64),
                                    lambda s, v: _set_eviction(s, sample_size=v)),
    b"notify-keyspace-events": Parameter(lambda s: s.events.flags.encode(),
                                         lambda raw: KeyspaceEvents.check(
                                             raw.decode(errors="replace")),
                                         lambda s, v: s.events.configure(str(v))),
    b"port": Parameter(lambda s: b"%d" % s.port),
    b"protected-mode": _fixed(b"yes"),
    b"proto-max-bulk-len": Parameter(lambda s: b"%d" % s.max_bulk_bytes),
    b"replica-read-only": _fixed(b"yes"),
    b"requirepass": _fixed(b""),  # tokens are hashed in [auth]; never shown
    b"save": _fixed(b""),
    b"supervised": _fixed(b"no"),  # snapshots follow the log's size, not save points
    b"tcp-keepalive": _fixed(b"0"),
    b"timeout": Parameter(lambda s: b"%d" % s.idle_timeout_s, _bounded(0, 2147483647),
                          lambda s, v: setattr(s, "idle_timeout_s", float(v))),  # type: ignore[arg-type]
}


def config(client: Client, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    server = client.state
    if sub == b"GET" and len(args) > 2:
        patterns = [compile_glob(a.lower()) for a in args[2:]]
        return client.enc.map([(p.bulk(name), p.bulk(parameter.get(server)))
                             for name, parameter in PARAMETERS.items()
                             if any(pattern.match(name) for pattern in patterns)])
    if sub == b"SET" and len(args) > 3 and len(args) % 2 == 0:
        return _config_set(server, args[2::2], args[3::2])
    if sub == b"RESETSTAT" and len(args) == 2:
        server.reset_stats()
        return p.OK
    if sub in (b"GET", b"SET", b"RESETSTAT"):
        raise CommandError(f"ERR wrong number of arguments for 'config|{sub.lower().decode()}' "
                           f"command")
    raise CommandError(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try "
                       f"CONFIG HELP.")


def _config_set(server: ServerState, names: list[bytes], raws: list[bytes]) -> bytes:
    """Every pair is checked before any is applied, as Redis 7 does."""
    changes = []
    seen: set[bytes] = set()
    for raw_name, raw in zip(names, raws, strict=True):
        name = raw_name.lower()
        parameter = PARAMETERS.get(name)
        shown = raw_name.decode(errors="replace")
        if parameter is None:
            raise CommandError(f"ERR Unknown option or number of arguments for CONFIG SET - "
                               f"'{shown}'")
        if name in seen:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{shown}') "
                               f"- duplicate parameter")
        seen.add(name)
        if parameter.parse is None or parameter.apply is None:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{shown}') "
                               f"- can't set immutable config")
        try:
            changes.append((parameter.apply, parameter.parse(raw)))
        except ValueError as exc:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument "
                               f"'{shown}') - {exc}") from None
    for apply, value in changes:
        apply(server, value)
    return p.OK


# --- keyspace-wide commands ----------------------------------------------------------------

def dbsize(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.key_count(client.consistency), p.integer)


def time_(client: Client, args: list[bytes]) -> Reply:
    now_us = time.time_ns() // 1000  # this node's clock, as in Redis
    return p.array([b"%d" % (now_us // 1_000_000), b"%d" % (now_us % 1_000_000)])


def flushdb(client: Client, args: list[bytes]) -> Reply:
    """FLUSHDB / FLUSHALL [ASYNC|SYNC]: one log entry that deletes every key (raftkv has
    one database, so both are the same; both modes are synchronous)."""
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
        raise CommandError(SYNTAX)
    return later(client.service.flush(), lambda _: p.OK)


def wait(client: Client, args: list[bytes]) -> Reply:
    """WAIT numreplicas timeout: answered at once with how many other members hold
    everything this node has applied. In raftkv a write is acknowledged only once a
    majority has it, so there is nothing to wait for; only the leader knows the others'
    progress (a follower or a single node answers 0)."""
    to_int(args[1])
    if to_int(args[2]) < 0:
        raise CommandError("ERR timeout is negative")
    service = client.service
    status = service.status()
    return p.integer(sum(1 for member in service.members() if member["id"] != status.node_id
                         and (member["matchIndex"] or 0) >= status.applied_index))


COMMANDS: Final = [
    spec("command", -1, "", command_),
    spec("info", -1, "", info),
    spec("config", -2, "admin", config),
    spec("dbsize", 1, "readonly fast", dbsize),
    spec("time", 1, "fast", time_),
    spec("flushdb", -1, "write admin", flushdb),
    spec("flushall", -1, "write admin", flushdb),
    spec("wait", 3, "", wait),
]
