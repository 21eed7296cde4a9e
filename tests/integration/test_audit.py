"""The audit log: a line per HTTP and RESP write, admin call and refused attempt, with
who, from where, what and how it ended - and no token, password or value, anywhere."""

from __future__ import annotations

import hashlib
import json
import signal
import time

import httpx
import pytest
import redis

TOKENS = {"ops": "audit-ops-token-1", "reader": "audit-read-token-2"}
VALUE = "a-value-that-must-not-be-logged"


@pytest.fixture
def audited(start_server, tmp_path):
    audit_path = tmp_path / "audit.jsonl"
    lines = ["[audit]", f'path = "{audit_path}"', 'fsync = "always"', "",
             "[rate_limit]", "failed_auth_per_minute = 10000", ""]
    for name, role in (("ops", "admin"), ("reader", "read")):
        digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
        lines += ["[[auth.tokens]]", f'name = "{name}"', f'sha256 = "{digest}"',
                  f'role = "{role}"']
    config = tmp_path / "audit.toml"
    config.write_text("\n".join(lines) + "\n")
    node = start_server("--config", str(config), resp=True)
    return node, audit_path


def read_lines(path, last_operation: str) -> list[dict]:
    """The audit lines, once the one for ``last_operation`` is there (a line is written
    in the loop turn after its reply)."""
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if (lines and lines[-1]["operation"] == last_operation) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def test_http_and_resp_writes_admin_calls_and_refusals_are_audited(audited):
    node, path = audited
    assert httpx.put(f"{node.url}/v1/keys/app/a", json={"value": VALUE},
                     headers=bearer("ops")).status_code == 201
    assert httpx.get(f"{node.url}/v1/keys/app/a", headers=bearer("ops")).status_code == 200
    assert httpx.put(f"{node.url}/v1/keys/app/b", json={"value": VALUE},
                     headers=bearer("reader")).status_code == 403
    assert httpx.delete(f"{node.url}/v1/keys/app/a",
                        headers={"Authorization": "Bearer wrong-token-xyz"}).status_code == 401
    assert httpx.post(f"{node.url}/v1/admin/snapshot", headers=bearer("ops")).status_code == 200
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=node.resp_port, password="not-the-password-123").ping()
    r = redis.Redis(port=node.resp_port, protocol=2, password=TOKENS["ops"])
    assert r.set("app/c", VALUE) and r.get("app/c") == VALUE.encode()
    assert r.hset("app/h", mapping={"f": VALUE}) == 1
    with pytest.raises(redis.ResponseError):
        r.lpush("app/c", "x")  # WRONGTYPE: a failed write
    r.close()

    lines = read_lines(path, "LPUSH")
    ops = [(x["front"], x["operation"], x["keys"], x["outcome"], x["principal"])
           for x in lines]
    refused = [op for op in ops if op[0] == "resp" and op[3] == "denied"]
    assert refused and {op[1] for op in refused} <= {"AUTH", "HELLO"}  # (redis-py retries)
    assert [op for op in ops if op not in refused] == [
        ("http", "PUT /v1/keys/{key...}", ["app/a"], "ok", "ops"),
        ("http", "PUT /v1/keys/{key...}", ["app/b"], "denied", "reader"),
        ("http", "DELETE /v1/keys/app/a", [], "denied", ""),  # refused before routing
        ("http", "POST /v1/admin/snapshot", [], "ok", "ops"),
        ("resp", "SET", ["app/c"], "ok", "ops"),
        ("resp", "HSET", ["app/h"], "ok", "ops"),
        ("resp", "LPUSH", ["app/c"], "failed", "ops"),
    ], lines  # (the reads - GET over HTTP and RESP - have no line)
    for line in lines:
        assert line["client"] == "127.0.0.1" and line["ts"] and line["requestId"]
    assert lines[0]["status"] == 201 and lines[-1]["status"] == "WRONGTYPE"
    # never a token, a password or a value: in the audit log nor in the node's own log
    for text in (path.read_text(), node.logs()):
        for secret in (*TOKENS.values(), "wrong-token-xyz", "not-the-password-123", VALUE):
            assert secret not in text


def test_sighup_reopens_the_audit_log_for_rotation(audited):
    node, path = audited
    assert httpx.put(f"{node.url}/v1/keys/one", json={"value": "1"},
                     headers=bearer("ops")).status_code == 201
    read_lines(path, "PUT /v1/keys/{key...}")
    rotated = path.with_name("audit.jsonl.1")
    path.rename(rotated)
    node.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while not path.exists():
        assert time.monotonic() < deadline, "the audit log was not reopened"
        time.sleep(0.05)
    assert httpx.put(f"{node.url}/v1/keys/two", json={"value": "2"},
                     headers=bearer("ops")).status_code == 201
    assert [x["keys"] for x in read_lines(rotated, "PUT /v1/keys/{key...}")] == [["one"]]
    assert [x["keys"] for x in read_lines(path, "PUT /v1/keys/{key...}")] == [["two"]]
