"""The ``raftkv`` command's client commands, on :class:`raftkv.client.Client`:
get, put, delete, list, health, txn, watch, lease, lock and elect.

``--url`` may name several nodes, comma-separated (the leader is found). Exit status:
0 success; 1 the key is missing or the server said no (or could not be reached); 2
usage errors; ``lock`` and ``elect`` with a command exit with the command's status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from raftkv.client import Client, ClientError, Compacted, Hold, Unavailable

EXIT_OK, EXIT_NO, EXIT_USAGE = 0, 1, 2


def add_commands(sub: Any) -> None:
    """The client commands, on the ``raftkv`` parser's subcommands."""

    def client(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text)
        p.add_argument("--url", default=os.environ.get("RAFTKV_URL", "http://127.0.0.1:8080"),
                       help="one node or several, comma-separated")
        p.add_argument("--token", default=os.environ.get("RAFTKV_TOKEN"))
        add_tls_flags(p)
        return p

    client("get", "read a key").add_argument("key")
    put = client("put", "write a key")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--ttl", type=float, help="seconds until the key expires")
    put.add_argument("--lease", type=int, help="put the key on this lease")
    client("delete", "delete a key").add_argument("key")
    listing = client("list", "list keys")
    listing.add_argument("--prefix", default="")
    listing.add_argument("--limit", type=int, default=1000)
    client("health", "show a node's health")
    client("txn", "run an atomic transaction: a JSON body of POST /v1/txn from FILE "
           "('-' for stdin); exit 1 when the failure ops ran").add_argument("file")

    watch = client("watch", "print every change under a prefix (or to --exact KEY) as it "
                   "happens")
    watch.add_argument("prefix", nargs="?")
    watch.add_argument("--exact", metavar="KEY", help="watch this one key")
    watch.add_argument("--from-revision", type=int)
    watch.add_argument("--count", type=int, help="stop after this many changes")

    lease = client("lease", "grant, keep alive, show, list or revoke leases")
    lease.add_argument("action", choices=["grant", "keepalive", "show", "list", "revoke"])
    lease.add_argument("arg", nargs="?", help="grant: TTL in seconds; others: the lease id")
    lease.add_argument("--once", action="store_true", help="keepalive: one beat, not forever")

    lock = client("lock", "run COMMAND while holding lock NAME: raftkv lock NAME [options] "
                  "-- COMMAND (RAFTKV_LOCK_TOKEN is its fencing token)")
    lock.add_argument("name")
    lock.add_argument("--ttl", type=float, default=10.0, help="the lease's TTL in seconds")
    lock.add_argument("--wait", type=float, help="give up after this many seconds")

    elect = client("elect", "campaign in election NAME with VALUE and run COMMAND while "
                   "leading: raftkv elect NAME VALUE [options] [-- COMMAND] (without one, "
                   "lead until interrupted); --observe prints each leader")
    elect.add_argument("name")
    elect.add_argument("value", nargs="?")
    elect.add_argument("--observe", action="store_true")
    elect.add_argument("--ttl", type=float, default=10.0, help="the lease's TTL in seconds")
    elect.add_argument("--wait", type=float, help="give up after this many seconds")


def add_tls_flags(p: argparse.ArgumentParser) -> None:
    """--cacert/--cert/--key: how a client command verifies an https:// node and
    proves who it is."""
    p.add_argument("--cacert", default=os.environ.get("RAFTKV_CACERT"),
                   help="PEM CA file to verify the node's certificate (https URLs)")
    p.add_argument("--cert", default=os.environ.get("RAFTKV_CERT"),
                   help="PEM client certificate, when the node asks for one")
    p.add_argument("--key", dest="tls_key", default=os.environ.get("RAFTKV_KEY"),
                   help="the client certificate's PEM private key")


NAMES = ("get", "put", "delete", "list", "health", "txn", "watch", "lease", "lock", "elect")


def run(args: argparse.Namespace) -> int:
    urls = [url.strip() for url in args.url.split(",") if url.strip()]
    with Client(urls, token=args.token, timeout_s=30, cacert=args.cacert, cert=args.cert,
                key=args.tls_key) as kv:
        try:
            return _HANDLERS[args.command](kv, args)
        except Unavailable as exc:
            return _fail(f"cannot reach {args.url}: {exc}")
        except Compacted as exc:
            return _fail(f"{exc} (the current revision is {exc.revision})")
        except ClientError as exc:
            return _fail(str(exc).split(": ", 1)[-1])
        except KeyboardInterrupt:
            return EXIT_OK


def _fail(message: str, status: int = EXIT_NO) -> int:
    print(f"raftkv: {message}", file=sys.stderr)
    return status


def _get(kv: Client, args: argparse.Namespace) -> int:
    found = kv.get(args.key)
    if found is None:
        return _fail("key not found")
    print(found.value.decode("utf-8", "replace"))
    return EXIT_OK


def _put(kv: Client, args: argparse.Namespace) -> int:
    ttl_ms = None
    if args.ttl is not None:
        if args.ttl <= 0:
            return _fail("--ttl must be more than 0 seconds", EXIT_USAGE)
        ttl_ms = max(1, round(args.ttl * 1000))
    revision = kv.put(args.key, args.value, ttl_ms=ttl_ms, lease=args.lease)
    print(f"stored {args.key} (modRevision {revision})")
    return EXIT_OK


def _delete(kv: Client, args: argparse.Namespace) -> int:
    if not kv.delete(args.key):
        return _fail("key not found")
    print(f"deleted {args.key}")
    return EXIT_OK


def _list(kv: Client, args: argparse.Namespace) -> int:
    for count, item in enumerate(kv.scan(args.prefix, min(args.limit, 1000))):
        if count >= args.limit:
            break
        print(f"{item.key}\t{item.value.decode('utf-8', 'replace')}")
    return EXIT_OK


def _health(kv: Client, args: argparse.Namespace) -> int:
    print(json.dumps(kv.health(), indent=2))
    return EXIT_OK


def _txn(kv: Client, args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115
        body = json.loads(text)
        if not isinstance(body, dict) or set(body) - {"compare", "success", "failure"}:
            raise ValueError("the body holds compare, success and failure lists")
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read the transaction from {args.file}: {exc}", EXIT_USAGE)
    result = kv.txn(body.get("compare", []), body.get("success", []), body.get("failure", []))
    print(json.dumps({"ok": True, "succeeded": result.succeeded, "revision": result.revision,
                      "results": result.results}, indent=2))
    return EXIT_OK if result.succeeded else EXIT_NO


def _watch(kv: Client, args: argparse.Namespace) -> int:
    if (args.prefix is None) == (args.exact is None):
        return _fail("give a PREFIX or --exact KEY", EXIT_USAGE)
    events = kv.watch(key=args.exact, prefix=args.prefix, from_revision=args.from_revision)
    for seen, event in enumerate(events, start=1):
        value = "" if event.value is None else event.value.decode("utf-8", "replace")
        print(f"{event.revision}\t{event.kind}\t{event.key}\t{value}", flush=True)
        if args.count is not None and seen >= args.count:
            break
    return EXIT_OK


def _lease(kv: Client, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        print(json.dumps(kv.leases()))
        return EXIT_OK
    if args.arg is None:
        return _fail(f"lease {action} needs {'a TTL' if action == 'grant' else 'a lease id'}",
                     EXIT_USAGE)
    try:
        number = float(args.arg) if action == "grant" else int(args.arg)
    except ValueError:
        return _fail(f"not a number: {args.arg}", EXIT_USAGE)
    if action == "grant":
        if number <= 0:
            return _fail("a lease's TTL is more than 0 seconds", EXIT_USAGE)
        lease = kv.lease(max(1, round(number * 1000)), keep_alive=False)
        print(lease.id)
    elif action == "keepalive":
        while True:
            ttl_ms = kv.keep_alive(int(number))
            print(f"lease {int(number)} kept alive for {ttl_ms / 1000:g} s", flush=True)
            if args.once:
                break
            time.sleep(ttl_ms / 3000)
    elif action == "show":
        info = kv.time_to_live(int(number))
        if info is None:
            return _fail(f"lease {int(number)} does not exist (or ran out)")
        print(json.dumps(info, indent=2))
    elif not kv.revoke(int(number)):
        return _fail(f"lease {int(number)} does not exist (or ran out)")
    return EXIT_OK


def _lock(kv: Client, args: argparse.Namespace) -> int:
    command = _command(args)
    if not command:
        return _fail("give the command to run: raftkv lock NAME -- COMMAND", EXIT_USAGE)
    with kv.lock(args.name, ttl_ms=round(args.ttl * 1000), wait_s=args.wait) as hold:
        return _run_holding(hold, "LOCK", command)


def _elect(kv: Client, args: argparse.Namespace) -> int:
    if args.observe:
        for leader in kv.observe(args.name):
            print("(nobody)" if leader is None else
                  f"{leader.value.decode('utf-8', 'replace')}\ttoken {leader.token}", flush=True)
        return EXIT_OK
    if args.value is None:
        return _fail("give the VALUE to campaign with (or --observe)", EXIT_USAGE)
    command = _command(args)
    with kv.campaign(args.name, args.value, ttl_ms=round(args.ttl * 1000),
                     wait_s=args.wait) as hold:
        print(f"leading {args.name} (token {hold.token})", flush=True)
        if command:
            return _run_holding(hold, "ELECTION", command)
        while True:
            time.sleep(3600)


def _run_holding(hold: Hold, what: str, command: list[str]) -> int:
    env = dict(os.environ, **{f"RAFTKV_{what}_TOKEN": str(hold.token),
                              f"RAFTKV_{what}_KEY": hold.key,
                              f"RAFTKV_{what}_LEASE": str(hold.lease)})
    try:
        return subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        return _fail(f"cannot run {command[0]}: {exc}")


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``raftkv lock NAME ... -- COMMAND``: the arguments, and the command after ``--``."""
    if "--" in argv and argv[:1] in (["lock"], ["elect"]):
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _command(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "run", []))


_HANDLERS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "get": _get, "put": _put, "delete": _delete, "list": _list, "health": _health,
    "txn": _txn, "watch": _watch, "lease": _lease, "lock": _lock, "elect": _elect,
}
