"""The etcd v3 gateway calls whose answers are recorded from a real etcd into
``tests/fixtures/etcd-gateway/`` and held against raftkv's (test_etcd_gateway.py).

Record again (Debian's ``etcd-server``; a fresh data directory):

    etcd --data-dir /tmp/e --listen-client-urls http://127.0.0.1:23790 \\
         --advertise-client-urls http://127.0.0.1:23790 &
    python -m tests.support.etcd_cases http://127.0.0.1:23790 \\
         > tests/fixtures/etcd-gateway/etcd-3.4.json

``normalized`` replaces what differs by nature between two stores - ids, terms, and
revisions (raftkv's revision is its log index, which also counts lease grants and
leader no-ops) - with their kind, so two answers compare field by field: the same
fields, the same types, the same keys, values, counts, flags, TTLs and errors.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

import httpx


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CASES: list[tuple[str, str, Any]] = [
    ("put", "kv/put", {"key": b64("foo"), "value": b64("bar")}),
    ("range one", "kv/range", {"key": b64("foo")}),
    ("range missing", "kv/range", {"key": b64("none")}),
    ("put prev_kv", "kv/put", {"key": b64("foo"), "value": b64("baz"), "prev_kv": True}),
    ("put a1", "kv/put", {"key": b64("a1"), "value": b64("va1")}),
    ("put a2", "kv/put", {"key": b64("a2"), "value": b64("va2")}),
    ("put a3", "kv/put", {"key": b64("a3"), "value": b64("va3")}),
    ("range prefix limit", "kv/range", {"key": b64("a"), "range_end": b64("b"), "limit": 2}),
    ("range count only", "kv/range", {"key": b64("a"), "range_end": b64("b"),
                                      "count_only": True}),
    ("range keys only descending", "kv/range", {"key": b64("a"), "range_end": b64("b"),
                                                "keys_only": True, "sort_order": "DESCEND"}),
    ("range from key to the end", "kv/range", {"key": b64("a2"), "range_end": "AA=="}),
    ("txn success", "kv/txn", {
        "compare": [{"key": b64("a1"), "result": "EQUAL", "target": "VALUE",
                     "value": b64("va1")}],
        "success": [{"request_put": {"key": b64("t"), "value": b64("1")}},
                    {"request_range": {"key": b64("a1")}},
                    {"request_delete_range": {"key": b64("a3")}}],
        "failure": []}),
    ("txn failure", "kv/txn", {
        "compare": [{"key": b64("a1"), "result": "EQUAL", "target": "CREATE",
                     "create_revision": 0}],
        "success": [], "failure": [{"request_range": {"key": b64("a1")}}]}),
    ("txn mod compare", "kv/txn", {
        "compare": [{"key": b64("nothing"), "target": "MOD", "mod_revision": "0"}],
        "success": [{"request_put": {"key": b64("created"), "value": b64("x")}}]}),
    ("deleterange prefix prev_kv", "kv/deleterange", {"key": b64("a"), "range_end": b64("b"),
                                                      "prev_kv": True}),
    ("deleterange missing", "kv/deleterange", {"key": b64("a")}),
    ("lease grant", "lease/grant", {"TTL": 30, "ID": 1000}),
    ("lease grant taken", "lease/grant", {"TTL": 30, "ID": 1000}),
    ("put on lease", "kv/put", {"key": b64("lk"), "value": b64("v"), "lease": "1000"}),
    ("range leased key", "kv/range", {"key": b64("lk")}),
    ("lease time to live", "lease/timetolive", {"ID": 1000, "keys": True}),
    ("lease time to live (kv alias)", "kv/lease/timetolive", {"ID": "1000"}),
    ("lease list", "lease/leases", {}),
    ("lease keepalive", "lease/keepalive", {"ID": 1000}),
    ("lock", "lock/lock", {"name": b64("l1"), "lease": 1000}),
    ("unlock", "lock/unlock", {"key": b64("l1/3e8")}),
    ("campaign", "election/campaign", {"name": b64("e1"), "lease": 1000,
                                       "value": b64("me")}),
    ("election leader", "election/leader", {"name": b64("e1")}),
    ("lease revoke", "lease/revoke", {"ID": 1000}),
    ("leased key gone", "kv/range", {"key": b64("lk")}),
    ("lease time to live gone", "lease/timetolive", {"ID": 1000}),
    ("lease revoke gone", "kv/lease/revoke", {"ID": 1000}),
    ("lease keepalive gone", "lease/keepalive", {"ID": 1000}),
    ("put on a missing lease", "kv/put", {"key": b64("x"), "value": b64("v"),
                                          "lease": 777}),
    ("election no leader", "election/leader", {"name": b64("e1")}),
    ("put without a key", "kv/put", {"value": b64("v")}),
    ("put bad base64", "kv/put", {"key": "not base64!"}),
    ("range a future revision", "kv/range", {"key": b64("foo"), "revision": 1000}),
    ("member list", "cluster/member/list", {}),
    ("status", "maintenance/status", {}),
    ("authenticate", "auth/authenticate", {"name": "root", "password": "x"}),
]
WATCH = {"create_request": {"key": b64("w"), "range_end": b64("x"), "start_revision": 1}}
WATCH_WRITES = [("kv/put", {"key": b64("w1"), "value": b64("1")}),
                ("kv/put", {"key": b64("w2"), "value": b64("2")}),
                ("kv/deleterange", {"key": b64("w1")})]


def record(base: str) -> dict[str, Any]:
    """Every case's status and body, then a watch stream's first lines."""
    out: dict[str, Any] = {"version": httpx.get(f"{base}/version", timeout=10).json(),
                           "cases": []}
    for name, path, body in CASES:
        r = httpx.post(f"{base}/v3/{path}", json=body, timeout=10)
        out["cases"].append({"name": name, "path": path, "status": r.status_code,
                             "body": r.json()})
    for path, body in WATCH_WRITES:
        httpx.post(f"{base}/v3/{path}", json=body, timeout=10).raise_for_status()
    out["watch"] = watch_lines(base, WATCH, 2)
    return out


def watch_lines(base: str, request: dict[str, Any], count: int, timeout_s: float = 10
                ) -> list[Any]:
    """The first ``count`` JSON messages of a watch stream (read off a raw socket: the
    stream never ends by itself)."""
    parts = urlsplit(base)
    payload = json.dumps(request).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        sock.sendall(b"POST /v3/watch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n%s" % (parts.netloc.encode(), len(payload),
                                                           payload))
        reader = sock.makefile("rb")
        while reader.readline().strip():
            pass  # the head
        messages: list[Any] = []
        text = b""
        while len(messages) < count:
            size = int(reader.readline().strip(), 16)
            text += reader.read(size)
            reader.readline()
            *lines, text = text.split(b"\n")
            messages += [json.loads(line) for line in lines if line.strip()]
    return messages[:count]


_REVISIONS = {"revision", "create_revision", "mod_revision", "rev", "compact_revision",
              "raftIndex", "raftAppliedIndex"}
_IDS = {"cluster_id", "member_id", "leader", "raft_term", "raftTerm"}
_SIZES = {"dbSize", "dbSizeInUse"}


def normalized(value: Any, field: str = "") -> Any:
    """``value`` with what differs between two stores by nature replaced by its kind."""
    if isinstance(value, dict):
        out = {k: normalized(v, k) for k, v in value.items()}
        if "clientURLs" in value:  # a member: its name is the store's own
            out["name"] = "<name>"
        return out
    if isinstance(value, list):
        return [normalized(v, field) for v in value]
    numeric = isinstance(value, str) and value.isdigit()  # (etcd sends int64 as strings)
    if field in _REVISIONS and numeric:
        return "<revision>"
    if field in _IDS | _SIZES and numeric:
        return f"<{field}>"
    if field == "ID" and numeric and int(value) != 1000:
        return "<id>"
    if field in ("peerURLs", "clientURLs") or (field == "version" and "." in str(value)):
        return f"<{field}>"
    if field == "TTL" and isinstance(value, str) and value.isdigit() and int(value) > 20:
        return "<ttl>"  # (a second may tick between the grant and the read)
    return value


if __name__ == "__main__":
    json.dump(record(sys.argv[1].rstrip("/")), sys.stdout, indent=1, sort_keys=True)
    print()
