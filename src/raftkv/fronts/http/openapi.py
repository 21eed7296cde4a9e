"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json.

Kept next to the routes and checked against the running server by schemathesis in
the tests, so it stays true."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from raftkv import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


_ID_BODY = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}



_TXN_COMPARE = {
    "type": "object", "required": ["key", "target", "op", "value"],
    "additionalProperties": False,
    "properties": {"key": {"type": "string", "minLength": 1},
                   "target": {"enum": ["value", "version", "createRevision", "modRevision",
                                       "exists"]},
                   "op": {"enum": ["=", "!=", "<", ">"]},
                   "value": {"type": ["string", "integer", "boolean"]},
                   "encoding": {"enum": ["utf-8", "base64"]}}}
_TXN_OP = {
    "type": "object", "required": ["op", "key"], "additionalProperties": False,
    "properties": {"op": {"enum": ["put", "delete", "get", "incr"]},
                   "key": {"type": "string", "minLength": 1}, "value": {"type": "string"},
                   "encoding": {"enum": ["utf-8", "base64"]},
                   "ttlMs": {"type": "integer", "minimum": 1}, "by": {"type": "integer"}}}

def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


_COMMON_ERRORS = {
    "400": _err("Invalid input (the message names the field)"),
    "413": _err("Value or body over the limit"),
    "415": _err("Unsupported Content-Type"),
    "503": _err("No leader, or shutting down; the write was not applied"),
    "504": _err("Commit timed out; the outcome is unknown"),
    "507": _err("Out of memory under noeviction, or disk full"),
}

_KEY_PARAM = {"name": "key", "in": "path", "required": True,
              "description": "1-1024 bytes of UTF-8 after percent-decoding; may contain '/'",
              "schema": {"type": "string", "minLength": 1}}
_CONSISTENCY = {"name": "consistency", "in": "query", "required": False,
                "schema": {"type": "string", "enum": ["linearizable", "leader", "stale"]}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": 'compare-and-swap: "*" or the ETag "<modRevision>"',
             "schema": {"type": "string", "pattern": '^(\\*|(W/)?"[0-9]+")$'}}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "description": "create-only: *", "schema": {"type": "string", "enum": ["*"]}}
_SEED_KEY = {"name": "key", "in": "query", "required": True,
             "schema": {"type": "string", "minLength": 1}}
_SEED_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False, "required": ["key", "value"],
    "properties": {"key": {"type": "string", "minLength": 1}, "value": {"type": "string"}}}}}}
_PAIR = {"type": "object", "required": ["ok", "key", "value"],
         "properties": {"ok": {"const": True}, "key": {"type": "string"},
                        "value": {"type": "string"}}}
_MESSAGE = {"type": "object", "required": ["ok", "message", "key"],
            "properties": {"ok": {"const": True}, "message": {"type": "string"},
                           "key": {"type": "string"}}}


_WRONG_TYPE = {"description": "The key holds a hash, list, set or sorted set, which only the "
                             "Redis protocol reads (code wrong_type)",
               "content": {"application/json": {"schema": _ERROR}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_LEASE_ID = {"name": "id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
_NAME = {"name": "name", "in": "path", "required": True,
         "description": "1-512 bytes without '/'",
         "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}}
_HOLD = {"type": "object", "required": ["ok", "name", "token", "lease", "key", "value"],
         "properties": {"ok": {"const": True}, "name": {"type": "string"},
                        "token": {"type": "integer", "description": "the fencing token: the "
                                  "hold's key's create revision"},
                        "lease": {"type": "integer"}, "key": {"type": "string"},
                        "value": {"type": "string"}, "encoding": {"enum": ["base64"]},
                        "ttlMs": {"type": "integer"}}}
_RELEASE = [{"name": "lease", "in": "query", "required": True,
             "schema": {"type": "integer", "minimum": 1}},
            {"name": "token", "in": "query", "required": True,
             "schema": {"type": "integer", "minimum": 1}}]
_SSE = {"description": "Server-Sent Events (see the route's description)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}
_WAIT = {"name": "waitMs", "in": "query",
         "description": "give up after this long (408); without it, wait for ever",
         "schema": {"type": "integer", "minimum": 0, "maximum": 86_400_000}}


def _coordination() -> dict[str, Any]:
    """Watch, leases, locks and elections (fronts/http/watch.py, coordination.py)."""
    released = _json({"type": "object", "required": ["ok", "released"],
                      "properties": {"ok": {"const": True}, "released": {"type": "boolean"}}})
    lease_info = {"type": "object", "required": ["ok", "id", "ttlMs", "remainingMs", "keys"],
                  "properties": {"ok": {"const": True}, "id": {"type": "integer"},
                                 "ttlMs": {"type": "integer"},
                                 "remainingMs": {"type": "integer"},
                                 "keys": {"type": "array", "items": {"type": "string"}}}}
    campaign = {"type": "object", "additionalProperties": False, "required": ["value"],
                "properties": {"value": {"type": "string"}, "encoding": {"enum": ["utf-8",
                                                                                  "base64"]},
                               "lease": {"type": "integer", "minimum": 1},
                               "ttlMs": {"type": "integer", "minimum": 1000},
                               "waitMs": {"type": "integer", "minimum": 0}}}
    return {
        "/v1/watch": {"get": {
            "operationId": "watch",
            "summary": "Every change to a key or under a prefix, as Server-Sent Events",
            "description": "Each change is an event whose id is its revision and whose name "
                           "is its kind (put, delete, expire, evict, typed, flush); progress "
                           "events name the revision reached; the stream ends with a "
                           "compacted event (the history is gone) or a cut event (the "
                           "client read too slowly; resumeAfter says where to resume). "
                           "Last-Event-ID resumes after that revision.",
            "parameters": [
                {"name": "key", "in": "query", "schema": {"type": "string", "minLength": 1}},
                {"name": "prefix", "in": "query", "schema": {"type": "string"}},
                {"name": "fromRevision", "in": "query",
                 "schema": {"type": "integer", "minimum": 1}},
                {"name": "progressMs", "in": "query",
                 "schema": {"type": "integer", "minimum": 100}},
                {"name": "Last-Event-ID", "in": "header",
                 "schema": {"type": "string", "pattern": "^[0-9]+$"}}],
            "responses": {"200": _SSE, "400": _err("Not exactly one of key and prefix, or "
                                                   "a bad revision"),
                          "403": _err("Outside the token's prefixes"),
                          "503": _err("No leader to start at a linearizable point")}}},
        "/v1/leases": {
            "post": {"summary": "Grant a lease (its id is the grant's revision unless given)",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "additionalProperties": False,
                                    "required": ["ttlMs"],
                                    "properties": {"ttlMs": {"type": "integer",
                                                             "minimum": 1000},
                                                   "id": {"type": "integer", "minimum": 1}}}}}},
                     "responses": {"201": _json({"type": "object",
                                                 "required": ["ok", "id", "ttlMs"],
                                                 "properties": {"ok": {"const": True},
                                                                "id": {"type": "integer"},
                                                                "ttlMs": {"type": "integer"}}},
                                                "Granted"),
                                   "412": _err("The id asked for is in use"),
                                   **_COMMON_ERRORS}},
            "get": {"summary": "The ids of every lease",
                    "responses": {"200": _json({"type": "object", "required": ["ok", "leases"],
                                                "properties": {"ok": {"const": True},
                                                               "leases": {"type": "array"}}})}},
        },
        "/v1/leases/{id}": {
            "get": {"summary": "A lease's TTL, time left and keys",
                    "parameters": [_LEASE_ID, _CONSISTENCY],
                    "responses": {"200": _json(lease_info), "404": _err("No such lease"),
                                  **_COMMON_ERRORS}},
            "delete": {"summary": "Revoke a lease: its keys are deleted",
                       "parameters": [_LEASE_ID],
                       "responses": {"204": {"description": "Revoked"},
                                     "404": _err("No such lease"), **_COMMON_ERRORS}}},
        "/v1/leases/{id}/keepalive": {"post": {
            "summary": "Move the lease's deadline a TTL from now",
            "parameters": [_LEASE_ID],
            "responses": {"200": _json({"type": "object"}),
                          "404": _err("No such lease, or it ran out"), **_COMMON_ERRORS}}},
        "/v1/locks/{name}": {
            "post": {"operationId": "acquireLock",
                     "summary": "Acquire a lock (waits); the token fences writes",
                     "parameters": [_NAME, _WAIT,
                                    {"name": "lease", "in": "query",
                                     "schema": {"type": "integer", "minimum": 1}},
                                    {"name": "ttlMs", "in": "query",
                                     "schema": {"type": "integer", "minimum": 1000}}],
                     "responses": {"200": _json(_HOLD), "404": _err("No such lease"),
                                   "408": _err("Still held after waitMs; nothing is held"),
                                   **_COMMON_ERRORS}},
            "get": {"summary": "Who holds the lock", "parameters": [_NAME, _CONSISTENCY],
                    "responses": {"200": _json(_HOLD), "404": _err("Nobody holds it"),
                                  **_COMMON_ERRORS}},
            "delete": {"summary": "Release the hold with this token (idempotent)",
                       "parameters": [_NAME, *_RELEASE],
                       "responses": {"200": released, **_COMMON_ERRORS}}},
        "/v1/elections/{name}": {
            "post": {"operationId": "campaign", "summary": "Campaign (waits until leading)",
                     "parameters": [_NAME],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": campaign}}},
                     "responses": {"200": _json(_HOLD), "404": _err("No such lease"),
                                   "408": _err("Not leading after waitMs"), **_COMMON_ERRORS}},
            "get": {"summary": "The leader and its value", "parameters": [_NAME, _CONSISTENCY],
                    "responses": {"200": _json(_HOLD), "404": _err("Nobody leads"),
                                  **_COMMON_ERRORS}},
            "put": {"summary": "Proclaim a new value, if still leading",
                    "parameters": [_NAME],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"type": "object", "required": ["value", "lease", "token"],
                                   "properties": {"value": {"type": "string"},
                                                  "lease": {"type": "integer"},
                                                  "token": {"type": "integer"}}}}}},
                    "responses": {"200": _json({"type": "object"}), **_COMMON_ERRORS}},
            "delete": {"summary": "Resign the leadership with this token (idempotent)",
                       "parameters": [_NAME, *_RELEASE],
                       "responses": {"200": released, **_COMMON_ERRORS}}},
        "/v1/elections/{name}/observe": {"get": {
            "operationId": "observeElection",
            "summary": "The leader now and at every change, as Server-Sent Events (leader "
                       "events: {\"leader\": hold or null})",
            "parameters": [_NAME], "responses": {"200": _SSE, **_COMMON_ERRORS}}},
    }


_ETCD_ROUTES = {  # etcd's v3 JSON gateway (fronts/http/etcd.py): path -> summary
    "kv/range": "etcd: read a key or a range", "kv/put": "etcd: write a key",
    "kv/deleterange": "etcd: delete a key or a range", "kv/txn": "etcd: a transaction",
    "kv/compaction": "etcd: compaction (changes nothing: one version per key)",
    "lease/grant": "etcd: grant a lease", "lease/revoke": "etcd: revoke a lease",
    "lease/keepalive": "etcd: keep a lease alive", "lease/timetolive": "etcd: a lease's TTL",
    "lease/leases": "etcd: every lease", "lock/lock": "etcd: acquire a lock (waits)",
    "lock/unlock": "etcd: release a lock", "election/campaign": "etcd: campaign (waits)",
    "election/proclaim": "etcd: proclaim a value", "election/leader": "etcd: the leader",
    "election/resign": "etcd: resign", "cluster/member/list": "etcd: the members",
    "maintenance/status": "etcd: this member's status",
    "auth/authenticate": "etcd: authenticate (answers: not enabled)",
    "watch": "etcd: a watch stream (JSON lines)",
}
_ETCD_WAITING_OR_STREAMING = {"lock/lock": "etcdLock", "election/campaign": "etcdCampaign",
                              "watch": "etcdWatch"}


def _etcd_paths() -> dict[str, Any]:
    """The gateway as etcd 3.4 documents it: request and answer shapes are etcd's
    (base64 keys, int64 as strings); errors carry gRPC's code."""
    error = _json({"$ref": "#/components/schemas/EtcdError"}, "etcd's error shape")
    paths: dict[str, Any] = {"/version": {"get": {
        "summary": "etcd: the server and cluster versions (etcd clients pick their API "
                   "path from it)", "responses": {"200": _json({
                       "type": "object", "required": ["etcdserver", "etcdcluster"]})}}}}
    for route, summary in _ETCD_ROUTES.items():
        operation: dict[str, Any] = {
            "summary": summary,
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"type": "object"}}}},
            "responses": {"200": _json({"type": "object"}), "400": error, "401": error,
                          "403": error, "404": error, "408": error, "412": error,
                          "503": error, "504": error}}
        if route in _ETCD_WAITING_OR_STREAMING:
            operation["operationId"] = _ETCD_WAITING_OR_STREAMING[route]
        paths[f"/v3/{route}"] = {"post": operation}
    return paths


def document() -> dict[str, Any]:
    entry = {"$ref": "#/components/schemas/Entry"}
    meta = {"$ref": "#/components/schemas/EntryMeta"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "raftkv", "version": __version__,
                 "description": "A replicated, crash-safe key-value store."},
        "paths": {
            "/v1/keys": {"get": {
                "summary": "List keys in key order, paginated",
                "parameters": [
                    {"name": "prefix", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    _CONSISTENCY],
                "responses": {"200": _json({"$ref": "#/components/schemas/Page"}),
                              **_COMMON_ERRORS}}},
            "/v1/keys/{key}": {
                "get": {"summary": "Read a key", "parameters": [_KEY_PARAM, _CONSISTENCY],
                        "responses": {"200": _json(entry), "404": _err("No such key"),
                                      "409": _WRONG_TYPE, **_COMMON_ERRORS}},
                "put": {"summary": "Create or replace a key",
                        "parameters": [_KEY_PARAM, _IF_MATCH, _IF_NONE_MATCH,
                                       {"name": "ttlMs", "in": "query", "schema": {
                                           "type": "integer", "minimum": 1}},
                                       {"name": "lease", "in": "query", "schema": {
                                           "type": "integer", "minimum": 1},
                                        "description": "put the key on this lease"}],
                        "requestBody": {"required": True, "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Put"}},
                            "application/octet-stream": {"schema": {"type": "string",
                                                                    "format": "binary"}}}},
                        "responses": {"200": _json(meta, "Replaced"),
                                      "201": _json(meta, "Created"),
                                      "404": _err("No such lease"),
                                      "412": _err("Precondition failed"), **_COMMON_ERRORS}},
                "delete": {"summary": "Delete a key", "parameters": [_KEY_PARAM, _IF_MATCH],
                           "responses": {"204": {"description": "Deleted"},
                                         "404": _err("No such key"),
                                         "412": _err("Precondition failed"), **_COMMON_ERRORS}},
            },
            "/set": {"put": {"summary": "Seed API: store a value", "requestBody": _SEED_BODY,
                             "responses": {"200": _json(_MESSAGE), **_COMMON_ERRORS}}},
            "/get": {"get": {"summary": "Seed API: read a value", "parameters": [_SEED_KEY],
                             "responses": {"200": _json(_PAIR), "404": _err("No such key"),
                                           "409": _WRONG_TYPE, **_COMMON_ERRORS}}},
            "/delete": {"delete": {"summary": "Seed API: delete", "parameters": [_SEED_KEY],
                                   "responses": {"200": _json(_MESSAGE),
                                                 "404": _err("No such key"), **_COMMON_ERRORS}}},
            "/kv": {"post": {"summary": "Seed API: create", "requestBody": _SEED_BODY,
                             "responses": {"201": _json(_PAIR, "Created"), **_COMMON_ERRORS}}},
            "/kv/{key}": {
                "get": {"summary": "Seed API: read", "parameters": [{
                    **_KEY_PARAM, "description": "one path segment"}],
                    "responses": {"200": _json(_PAIR), "404": _err("No such key"),
                                  "409": _WRONG_TYPE, **_COMMON_ERRORS}},
                "delete": {"summary": "Seed API: delete", "parameters": [{
                    **_KEY_PARAM, "description": "one path segment"}],
                    "responses": {"204": {"description": "Deleted"},
                                  "404": _err("No such key"), **_COMMON_ERRORS}}},
            "/health": {"get": {"summary": "Node and Raft status",
                                "responses": {"200": _json({"$ref":
                                                            "#/components/schemas/Health"})}}},
            "/livez": {"get": {"summary": "The process serves",
                               "responses": {"200": _json({"type": "object"})}}},
            "/v1/admin/snapshot": {"post": {
                "summary": "Write a snapshot now and trim the WAL it covers (admin)",
                "responses": {"200": _json({"type": "object", "required": ["ok", "index"],
                                            "properties": {"ok": {"const": True},
                                                           "index": {"type": "integer"},
                                                           "sizeBytes": {"type": "integer"},
                                                           "durationMs": {"type": "number"}}}),
                              "401": _err("Missing or wrong token"),
                              "403": _err("Not an admin token"),
                              "500": _err("The snapshot could not be written")}}},
            "/v1/admin/backup": {"get": {
                "summary": "A consistent point-in-time backup of the data (admin); "
                           "`raftkv restore` seeds a new data directory from it",
                "responses": {"200": {
                    "description": "The backup file (every write acknowledged before the "
                                   "request is in it)",
                    "headers": {"X-Raftkv-Backup-Index": {"schema": {"type": "integer"}},
                                "X-Raftkv-Backup-Sha256": {"schema": {"type": "string"}}},
                    "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                              "401": _err("Missing or wrong token"),
                              "403": _err("Not an admin token"),
                              "503": _err("No leader to confirm the backup is current")}}},
            "/docs": {"get": {
                "summary": "This API's interactive documentation (Swagger UI, served by "
                           "the node)",
                "responses": {"200": {"description": "The page",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/v1/cluster/members": {
                "get": {"summary": "The members and who leads (admin)",
                        "responses": {"200": _json({"$ref": "#/components/schemas/Members"}),
                                      "401": _err("Missing or wrong token"),
                                      "403": _err("Not an admin token")}},
                "post": {"summary": "Add a node as a learner; it becomes a voter once caught "
                                    "up (admin, on the leader)",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": _ID_BODY}}},
                         "responses": {"201": _json({"type": "object"}),
                                       "400": _err("Bad id or body"),
                                       "401": _err("Missing or wrong token"),
                                       "403": _err("Not an admin token"),
                                       "409": _err("Already a member, or a single node"),
                                       "415": _err("Not JSON"),
                                       "503": _err("Not the leader, or another change is "
                                                   "in progress"),
                                       "504": _err("Not committed in time")}}},
            "/v1/cluster/members/{id}": {"delete": {
                "summary": "Remove a member (admin, on the leader)",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}),
                              "400": _err("Bad id"),
                              "401": _err("Missing or wrong token"),
                              "403": _err("Not an admin token"),
                              "409": _err("Not a member, the last voter, or a single node"),
                              "503": _err("Not the leader, or another change is in progress"),
                              "504": _err("Not committed in time")}}},
            "/v1/cluster/transfer-leadership": {"post": {
                "summary": "Hand leadership to another voter (admin, on the leader)",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["to"],
                               "properties": {"to": {"type": "string"}}}}}},
                "responses": {"202": _json({"type": "object"}),
                              "400": _err("Not another voter"),
                              "401": _err("Missing or wrong token"),
                              "403": _err("Not an admin token"),
                              "409": _err("A single node"),
                              "415": _err("Not JSON"),
                              "503": _err("Not the leader")}}},
            "/v1/txn": {"post": {
                "summary": "An atomic transaction: compares, then the success or failure ops",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "additionalProperties": False,
                               "properties": {"compare": {"type": "array",
                                                          "items": _TXN_COMPARE},
                                              "success": {"type": "array",
                                                          "items": _TXN_OP},
                                              "failure": {"type": "array",
                                                          "items": _TXN_OP}}}}}},
                "responses": {"200": _json({
                    "type": "object", "required": ["ok", "succeeded", "revision", "results"],
                    "properties": {"ok": {"type": "boolean"},
                                   "succeeded": {"type": "boolean"},
                                   "revision": {"type": "integer"},
                                   "results": {"type": "array", "items": {"type": "object"}}}}),
                              "400": _err("Bad JSON, op or compare"),
                              "401": _err("Missing or wrong token"),
                              "403": _err("A key outside the token's prefixes"),
                              "409": _err("An op failed; nothing was applied"),
                              "413": _err("More ops or bytes than txn.max_ops / txn.max_bytes"),
                              "415": _err("Not JSON"),
                              "503": _err("No leader; not applied"),
                              "504": _err("Not committed in time")}}},
            "/readyz": {"get": {"summary": "Recovered, leader known, caught up",
                                "responses": {"200": _json({"type": "object"}),
                                              "503": _err("Not ready")}}},
            **_coordination(),
            **_etcd_paths(),
        },
        "components": {"schemas": {
            "EtcdError": {"type": "object", "required": ["error", "message", "code"],
                          "properties": {"error": {"type": "string"},
                                         "message": {"type": "string"},
                                         "code": {"type": "integer"}}},
            "Error": {"type": "object", "required": ["ok", "message", "code", "requestId"],
                      "properties": {"ok": {"const": False}, "message": {"type": "string"},
                                     "code": {"type": "string"},
                                     "requestId": {"type": ["string", "null"]}}},
            "EntryMeta": {"type": "object",
                          "required": ["ok", "key", "version", "createRevision", "modRevision",
                                       "expiresAtMs"],
                          "properties": {
                              "ok": {"const": True}, "key": {"type": "string"},
                              "keyEncoding": {"enum": ["base64"]},
                              "version": {"type": "integer", "minimum": 1},
                              "createRevision": {"type": "integer", "minimum": 1},
                              "modRevision": {"type": "integer", "minimum": 1},
                              "expiresAtMs": {"type": ["integer", "null"]}}},
            "Entry": {"allOf": [{"$ref": "#/components/schemas/EntryMeta"}, {
                "type": "object", "required": ["value"],
                "properties": {"value": {"type": "string"},
                               "encoding": {"enum": ["base64"]}}}]},
            "TypedEntry": {"allOf": [{"$ref": "#/components/schemas/EntryMeta"}, {
                "type": "object", "required": ["type"],
                "properties": {"type": {"enum": ["hash", "list", "set", "zset"]}}}]},
            "Put": {"type": "object", "additionalProperties": False, "required": ["value"],
                    "properties": {"value": {"type": "string"},
                                   "ttlMs": {"type": "integer", "minimum": 1},
                                   "encoding": {"enum": ["utf-8", "base64"]}}},
            "Page": {"type": "object", "required": ["ok", "items", "nextCursor"],
                     "properties": {"ok": {"const": True},
                                    "items": {"type": "array", "items": {"anyOf": [
                                        entry, {"$ref": "#/components/schemas/TypedEntry"}]}},
                                    "nextCursor": {"type": ["string", "null"]}}},
            "Members": {"type": "object", "required": ["ok", "leaderId", "members"],
                        "properties": {
                            "ok": {"const": True}, "leaderId": {"type": ["string", "null"]},
                            "members": {"type": "array", "items": {
                                "type": "object",
                                "required": ["id", "role", "isLeader", "reachable",
                                             "matchIndex"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "role": {"enum": ["voter", "learner"]},
                                    "isLeader": {"type": "boolean"},
                                    "reachable": {"type": "boolean"},
                                    "matchIndex": {"type": ["integer", "null"]},
                                    "url": {"type": ["string", "null"],
                                            "description": "how this node reaches it "
                                                           "(null: itself, or not yet "
                                                           "known)"}}}}}},
            "Health": {"type": "object",
                       "required": ["ok", "id", "state", "leaderId", "term", "commitIndex",
                                    "appliedIndex", "lastHeartbeatAgoMs"],
                       "properties": {
                           "ok": {"const": True}, "id": {"type": "string"},
                           "state": {"enum": ["leader", "follower", "candidate"]},
                           "leaderId": {"type": ["string", "null"]},
                           "term": {"type": "integer"}, "commitIndex": {"type": "integer"},
                           "appliedIndex": {"type": "integer"},
                           "lastHeartbeatAgoMs": {"type": ["integer", "null"]}}},
        }},
    }


@functools.cache
def document_bytes() -> bytes:
    return orjson.dumps(document())
