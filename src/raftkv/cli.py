"""The ``raftkv`` command: ``serve``, client commands, ``backup``, ``restore``,
``config``, ``token`` and ``upgrade``.

Exit status: 0 success; 1 the key is missing or the server said no; 2 usage or
configuration errors (one line on stderr naming the setting).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from raftkv import __version__
from raftkv.client import cli as client_commands
from raftkv.config import ConfigError, load, masked

EXIT_OK, EXIT_NO, EXIT_USAGE = 0, 1, 2

_SERVE_FLAGS = [
    ("--host", "host", "bind address for every listener (default 127.0.0.1)"),
    ("--port", "port", "HTTP port (default 8080)"),
    ("--resp-port", "resp_port", "Redis protocol port; 0 disables (default 6380, off in a cluster)"),
    ("--udp-port", "udp_port", "UDP ping port; 0 disables (default: --port)"),
    ("--data-dir", "data_dir", "directory for all durable state (default ./data)"),
    ("--fsync", "fsync", "always | everysec | no (default always)"),
    ("--node-id", "node_id", "this node's id (default n1)"),
    ("--peers", "peers", "comma-separated base URLs of the other nodes"),
    ("--cluster-secret", "cluster_secret", "shared HMAC key for peer traffic (>= 16 chars)"),
    ("--tls-cert", "tls_cert", "PEM certificate: HTTP and RESP speak TLS only"),
    ("--tls-key", "tls_key", "PEM private key of --tls-cert"),
    ("--tls-client-ca", "tls_client_ca", "require client certificates signed by this CA"),
    ("--peer-tls-cert", "peer_tls_cert", "PEM certificate for peer links (mutual TLS)"),
    ("--peer-tls-key", "peer_tls_key", "PEM private key of --peer-tls-cert"),
    ("--peer-tls-ca", "peer_tls_ca", "the CA that signs every node's peer certificate"),
    ("--raft-tick-ms", "raft_tick_ms", "Raft tick; elections after 10-20 ticks (default 100)"),
    ("--max-value-bytes", "max_value_bytes", "largest value accepted (default 1048576)"),
    ("--shutdown-timeout", "shutdown_timeout_s", "drain limit in seconds (default 10)"),
    ("--log-format", "log_format", "console | json"),
    ("--log-level", "log_level", "debug | info | warning | error"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftkv", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"raftkv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a node")
    serve.add_argument("--config", help="TOML file (or RAFTKV_CONFIG)")
    for flag, dest, text in _SERVE_FLAGS:
        serve.add_argument(flag, dest=dest, help=text)
    serve.add_argument("--insecure", action="store_const", const=True, default=None,
                       help="allow a non-loopback --host without auth")

    client_commands.add_commands(sub)
    bench = sub.add_parser("bench", help="load-test a node's HTTP API")
    bench.add_argument("--url", default=os.environ.get("RAFTKV_URL", "http://127.0.0.1:8080"))
    bench.add_argument("--token", default=os.environ.get("RAFTKV_TOKEN"))
    bench.add_argument("--workload", choices=["get", "put", "mixed", "cas"], default="get")
    bench.add_argument("--keys", type=int, default=1000)
    bench.add_argument("--value-bytes", type=int, default=100)
    bench.add_argument("--distribution", choices=["uniform", "zipf"], default="uniform")
    bench.add_argument("--read-ratio", type=float, default=0.9, help="for --workload mixed")
    bench.add_argument("--connections", type=int, default=50)
    bench.add_argument("--duration", type=float, default=10.0, help="seconds")
    bench.add_argument("--requests", type=int, default=0, help="stop after N (overrides "
                       "--duration)")
    bench.add_argument("--rate", type=float, default=0.0,
                       help="open loop at R requests/s (latency from the scheduled time)")
    bench.add_argument("--protocol", choices=["http", "resp"], default="http",
                       help="resp: --url is the Redis port, e.g. http://127.0.0.1:6380")
    bench.add_argument("--pipeline", type=int, default=1, help="resp: commands in flight")
    bench.add_argument("--json", action="store_true", help="print the result as JSON")

    cluster = sub.add_parser("cluster", help="see or change a cluster's membership (admin)")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)

    def cluster_command(name: str, text: str) -> argparse.ArgumentParser:
        p = cluster_sub.add_parser(name, help=text)
        p.add_argument("--url", default=os.environ.get("RAFTKV_URL", "http://127.0.0.1:8080"),
                       help="one node or several, comma-separated (the leader is found)")
        p.add_argument("--token", default=os.environ.get("RAFTKV_TOKEN"))
        client_commands.add_tls_flags(p)
        return p

    cluster_command("members", "list the members and who leads")
    cluster_command("add", "add a node (a learner until caught up); start it first "
                    "with PEERS naming the members").add_argument("id")
    cluster_command("remove", "remove a node").add_argument("id")
    cluster_command("transfer", "hand leadership to another voter").add_argument("id")

    config = sub.add_parser("config", help="check or show configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a TOML file without starting")
    check.add_argument("file")
    show = config_sub.add_parser("show", help="print the effective config, secrets masked")
    show.add_argument("--config")

    backup = sub.add_parser("backup", help="save a consistent backup of a live node or "
                            "cluster into FILE (admin)")
    backup.add_argument("file")
    backup.add_argument("--url", default=os.environ.get("RAFTKV_URL", "http://127.0.0.1:8080"),
                        help="a node (any member of a cluster)")
    backup.add_argument("--token", default=os.environ.get("RAFTKV_TOKEN"))
    client_commands.add_tls_flags(backup)
    restore = sub.add_parser("restore", help="seed a new data directory from a backup FILE")
    restore.add_argument("file")
    restore.add_argument("--data-dir", required=True, help="a new (empty) data directory")
    restore.add_argument("--node-id", default="n1",
                         help="the node that will serve it (a new cluster's first member)")

    upgrade = sub.add_parser("upgrade", help="convert a data directory written by an "
                             "earlier raftkv (format 1) to this one's (stop the node first)")
    upgrade.add_argument("--data-dir", required=True)

    token = sub.add_parser("token", help="make an auth token")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser("new", help="print a new token and the line to paste")
    new.add_argument("--name", default="client")
    new.add_argument("--role", choices=["read", "write", "admin"], default="write")
    new.add_argument("--prefix", action="append", dest="prefixes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words, run = client_commands.split_command(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(words)
    args.run = run
    command = args.command
    if command == "serve":
        return _serve(args)
    if command == "config":
        return _config(args)
    if command == "upgrade":
        return _upgrade(args)
    if command == "backup":
        return _backup(args)
    if command == "restore":
        return _restore(args)
    if command == "token":
        return _token_new(args)
    if command == "bench":
        return _bench(args)
    if command == "cluster":
        return _cluster(args)
    return client_commands.run(args)


def _serve(args: argparse.Namespace) -> int:
    flags = {dest: getattr(args, dest) for _, dest, _ in _SERVE_FLAGS}
    flags["insecure"] = args.insecure
    try:
        config = load(flags, config_file=args.config)
    except ConfigError as exc:
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    import uvloop

    from raftkv import app, logs
    from raftkv.errors import CorruptionError

    logs.setup(config.log_format, config.log_level)
    try:
        return uvloop.run(app.run(config))  # 1 when a part failed (logged)
    except ConfigError as exc:  # found only once the data directory is read
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CorruptionError as exc:
        print(f"raftkv: refusing to start: {exc}", file=sys.stderr)
        return EXIT_NO
    except OSError as exc:
        print(f"raftkv: cannot start: {exc}", file=sys.stderr)
        return EXIT_NO
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _upgrade(args: argparse.Namespace) -> int:
    from raftkv.errors import CorruptionError
    from raftkv.storage.fs import OsFileSystem
    from raftkv.storage.upgrade import upgrade

    try:
        done = upgrade(OsFileSystem(), args.data_dir,
                       lambda step: print(f"raftkv upgrade: {step}", file=sys.stderr))
    except (CorruptionError, OSError) as exc:
        print(f"raftkv: cannot upgrade: {exc}", file=sys.stderr)
        return EXIT_NO
    print(f"{args.data_dir}: a {done.kind}, now format 2 (snapshot at {done.snapshot_index}, "
          f"{done.entries} entries after it); the old files are in {done.kept_in}")
    return EXIT_OK


def _backup(args: argparse.Namespace) -> int:
    """Stream the node's backup to FILE.part, check it, then rename it to FILE."""
    import httpx

    from raftkv.client.endpoints import tls_verify
    from raftkv.errors import CorruptionError
    from raftkv.progress import ProgressBar
    from raftkv.service.backup import check

    url = args.url.split(",")[0].strip().rstrip("/") + "/v1/admin/backup"
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    part = args.file + ".part"
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=600),
                          verify=tls_verify(True, args.cacert, args.cert, args.tls_key)) as r:
            if r.status_code != 200:
                r.read()
                print(f"raftkv: {url}: {_message(r.content, r.status_code)}", file=sys.stderr)
                return EXIT_NO
            bar = ProgressBar(f"backup {args.file}", int(r.headers.get("content-length", 0)))
            with open(part, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.advance(len(chunk))
                f.flush()
                os.fsync(f.fileno())
            bar.finish()
            expected = r.headers.get("x-raftkv-backup-sha256", "")
    except (httpx.HTTPError, OSError) as exc:
        print(f"raftkv: backup from {url} failed: {exc}", file=sys.stderr)
        return EXIT_NO
    try:
        if digest.hexdigest() != expected:
            raise CorruptionError(f"sha256 {digest.hexdigest()} is not the node's {expected}")
        with open(part, "rb") as f:
            snapshot = check(f.read(), args.file)
    except CorruptionError as exc:
        print(f"raftkv: the backup arrived damaged, not saved: {exc}", file=sys.stderr)
        os.remove(part)
        return EXIT_NO
    os.replace(part, args.file)
    _sync_dir(os.path.dirname(os.path.abspath(args.file)))
    print(f"{args.file}: {os.path.getsize(args.file)} bytes, index {snapshot.index}, "
          f"sha256 {digest.hexdigest()}")
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from raftkv.errors import CorruptionError
    from raftkv.progress import ProgressBar
    from raftkv.service.backup import check, restore
    from raftkv.storage.fs import OsFileSystem

    try:
        bar = ProgressBar(f"restore {args.file}", os.path.getsize(args.file))
        chunks = []
        with open(args.file, "rb") as f:
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
                bar.advance(len(chunk))
        bar.finish()
        snapshot = check(b"".join(chunks), args.file)
        restore(OsFileSystem(), args.data_dir, snapshot, args.node_id)
    except CorruptionError as exc:
        print(f"raftkv: refusing {args.file}: it is damaged or truncated ({exc})",
              file=sys.stderr)
        return EXIT_NO
    except FileExistsError as exc:
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"raftkv: cannot restore {args.file}: {exc}", file=sys.stderr)
        return EXIT_NO
    print(f"{args.data_dir}: restored from {args.file} (index {snapshot.index}); start it with "
          f"`raftkv serve --data-dir {args.data_dir}`")
    return EXIT_OK


def _message(raw: bytes, status: int) -> str:
    try:
        return str(json.loads(raw).get("message", f"HTTP {status}"))
    except (ValueError, AttributeError):
        return f"HTTP {status}"


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _config(args: argparse.Namespace) -> int:
    try:
        if args.config_command == "check":
            load({}, env={}, config_file=args.file)
            print(f"{args.file}: ok")
        else:
            print(json.dumps(masked(load({}, config_file=args.config)), indent=2, default=str))
    except ConfigError as exc:
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    import uvloop

    from raftkv.loadgen import Bench, BenchConfig, render

    if (args.keys < 1 or args.connections < 1 or args.duration <= 0 or args.requests < 0
            or args.rate < 0 or not 0 <= args.read_ratio <= 1 or args.value_bytes < 0
            or args.pipeline < 1):
        print("raftkv: bench settings must be positive (and --read-ratio within 0-1)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.protocol == "resp" and (args.workload == "cas" or args.rate):
        print("raftkv: --protocol resp supports --workload get, put or mixed, closed loop",
              file=sys.stderr)
        return EXIT_USAGE
    config = BenchConfig(args.url, args.workload, args.keys, args.value_bytes,
                         args.distribution, args.read_ratio, args.connections, args.duration,
                         args.requests, args.rate, args.token, protocol=args.protocol,
                         pipeline=args.pipeline)
    try:
        result = uvloop.run(Bench(config).run(progress=not args.json))
    except OSError as exc:
        print(f"raftkv: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_NO
    summary = result.summary()
    print(json.dumps(summary, indent=2) if args.json else render(summary, config))
    return EXIT_NO if summary["ok"] == 0 else EXIT_OK


def _token_new(args: argparse.Namespace) -> int:
    token = "rkv_" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    prefixes = json.dumps(args.prefixes or [""])
    print(f"token (give this to the client; it is not stored anywhere): {token}")
    print("add to the [auth] section of the TOML file:")
    print(f'[[auth.tokens]]\nname = "{args.name}"\nsha256 = "{digest}"\nrole = "{args.role}"\n'
          f"prefixes = {prefixes}")
    return EXIT_OK


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None
             ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    context = None
    if getattr(args, "cacert", None) or getattr(args, "cert", None):
        from raftkv.client.endpoints import tls_verify
        context = tls_verify(True, args.cacert, args.cert, args.tls_key)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"message": raw.decode("utf-8", "replace")}


def _cluster(args: argparse.Namespace) -> int:
    """Like etcdctl's --endpoints: --url may list several nodes; a change goes to
    whichever one is the leader."""
    sub = args.cluster_command
    method, path, payload = {
        "members": ("GET", "/v1/cluster/members", None),
        "add": ("POST", "/v1/cluster/members", {"id": getattr(args, "id", "")}),
        "remove": ("DELETE", "/v1/cluster/members/" + urllib.parse.quote(
            getattr(args, "id", ""), safe=""), None),
        "transfer": ("POST", "/v1/cluster/transfer-leadership", {"to": getattr(args, "id", "")}),
    }[sub]
    status, body, url = 0, None, args.url
    for url in (u.strip() for u in args.url.split(",") if u.strip()):
        try:
            status, body = _request(argparse.Namespace(**{**vars(args), "url": url}), method,
                                    path, payload)
        except (urllib.error.URLError, OSError) as exc:
            print(f"raftkv: cannot reach {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            continue
        if (body or {}).get("code") != "not_leader":
            break
    if status == 0:
        return EXIT_NO
    body = body or {}
    if status >= 300:
        print(f"raftkv: {url}: {body.get('message', f'HTTP {status}')}", file=sys.stderr)
        return EXIT_NO
    if sub == "members":
        for m in body["members"]:
            print(f"{m['id']}\t{m['role']}{' (leader)' if m['isLeader'] else ''}\t"
                  f"{'reachable' if m['reachable'] else 'unreachable'}\t"
                  f"match={m['matchIndex'] if m['matchIndex'] is not None else '-'}")
    elif sub == "add":
        print(f"added {body['id']} as a learner; it becomes a voter once it has caught up")
    elif sub == "remove":
        print(f"removed {body['id']}")
    else:
        print(f"asked the leader to hand over to {body['to']}")
    return EXIT_OK
