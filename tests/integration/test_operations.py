"""Operating raftkv: auth matrix, RESP AUTH, rate limits, metrics, logs, config tools."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.node import ROOT

TOKENS = {"admin": "adm-secret-1", "writer": "wrt-secret-2", "reader": "rdr-secret-3"}


def auth_config(tmp_path, extra: str = "") -> str:
    lines = ["[auth]"]
    for name, role, prefixes in [("admin", "admin", [""]), ("writer", "write", ["app/"]),
                                 ("reader", "read", ["app/"])]:
        digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
        lines += ["[[auth.tokens]]", f'name = "{name}"', f'sha256 = "{digest}"',
                  f'role = "{role}"', f"prefixes = {prefixes!r}".replace("'", '"')]
    path = tmp_path / "auth.toml"
    path.write_text(extra + "\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def secured(start_server, tmp_path):
    generous = "[rate_limit]\nfailed_auth_per_minute = 10000\n\n"
    return start_server("--config", auth_config(tmp_path, generous), resp=True)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


BAD_CREDENTIALS = [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                   {"Authorization": "Bearer not-a-token"},
                   {"Authorization": f"Bearer {TOKENS['admin']}x"}, {"Authorization": "garbage"}]


def test_every_auth_failure_gets_one_identical_401(secured):
    bodies = set()
    for headers in BAD_CREDENTIALS:
        for method, path in [("GET", "/v1/keys/app/x"), ("PUT", "/v1/keys/app/x"),
                             ("GET", "/v1/keys"), ("GET", "/metrics"), ("PUT", "/set")]:
            r = httpx.request(method, secured.url + path, headers={**headers,
                              "X-Request-ID": "same"}, json={"value": "v"})
            assert r.status_code == 401, (headers, path)
            assert r.headers["www-authenticate"].startswith("Bearer")
            bodies.add(r.content)
    assert len(bodies) == 1


def test_the_route_by_credential_matrix(secured):
    url = secured.url
    cases = [
        # (token, method, path, expected status)
        ("admin", "PUT", "/v1/keys/other/k", 201), ("admin", "GET", "/metrics", 200),
        ("writer", "PUT", "/v1/keys/app/k", 201), ("writer", "PUT", "/v1/keys/other/k", 403),
        ("writer", "GET", "/v1/keys/app/k", 200), ("writer", "GET", "/metrics", 403),
        ("reader", "GET", "/v1/keys/app/k", 200), ("reader", "PUT", "/v1/keys/app/k", 403),
        ("reader", "DELETE", "/v1/keys/app/k", 403), ("reader", "GET", "/v1/keys/other/k", 403),
        ("writer", "DELETE", "/v1/keys/app/k", 204),
    ]
    for token, method, path, status in cases:
        r = httpx.request(method, url + path, headers=bearer(token), json={"value": "v"})
        assert r.status_code == status, (token, method, path, r.text)
    for probe in ("/livez", "/readyz", "/health"):
        assert httpx.get(url + probe).status_code == 200


def test_listing_never_reveals_keys_outside_the_prefixes(secured):
    httpx.put(secured.url + "/v1/keys/app/mine", headers=bearer("admin"), json={"value": "1"})
    httpx.put(secured.url + "/v1/keys/zzz/secret", headers=bearer("admin"), json={"value": "2"})
    keys = [i["key"] for i in httpx.get(secured.url + "/v1/keys", headers=bearer("reader"))
            .json()["items"]]
    assert keys == ["app/mine"]


def test_resp_auth_and_permissions(secured):
    anonymous = redis.Redis(port=secured.resp_port, protocol=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("app/x")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=secured.resp_port, password="wrong", protocol=2).ping()
    writer = redis.Redis(port=secured.resp_port, password=TOKENS["writer"], protocol=2)
    assert writer.set("app/k", "v") is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        writer.set("other/k", "v")
    reader = redis.Redis(port=secured.resp_port, username="reader", password=TOKENS["reader"],
                         protocol=2)
    assert reader.get("app/k") == b"v"
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set("app/k", "w")
    admin = redis.Redis(port=secured.resp_port, password=TOKENS["admin"], protocol=2)
    admin.set("hidden/1", "x")
    assert sorted(reader.keys("*")) == [b"app/k"]
    assert admin.config_get("appendonly") == {"appendonly": "yes"}
    with pytest.raises(redis.exceptions.NoPermissionError, match="run the 'config' command"):
        writer.config_get("*")


def test_no_token_ever_reaches_the_logs(secured):
    for name in TOKENS:
        httpx.get(secured.url + "/v1/keys/app/x", headers=bearer(name))
    httpx.get(secured.url + "/v1/keys/app/x", headers={"Authorization": "Bearer guess-123"})
    redis.Redis(port=secured.resp_port, password=TOKENS["writer"], protocol=2).ping()
    time.sleep(0.3)  # the access log is flushed every 100 ms
    logs = secured.logs()
    assert "app/x" in logs or "/v1/keys" in logs
    for token in [*TOKENS.values(), "guess-123"]:
        assert token not in logs


def test_rate_limit_429_with_retry_after_and_other_clients_unaffected(start_server, tmp_path):
    config = tmp_path / "rl.toml"
    config.write_text("[rate_limit]\nenabled = true\nper_client_rps = 5\nper_client_burst = 5\n")
    node = start_server("--config", str(config))
    time.sleep(1.2)  # the readiness probes of start-up drew from the bucket; let it refill
    responses = [httpx.get(node.url + "/livez") for _ in range(12)]
    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5 and 429 in statuses
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "rate_limited"
    # another client address (127.0.0.2 is loopback too) has its own bucket
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        assert other.get(node.url + "/livez").status_code == 200


def test_brute_force_on_auth_is_throttled(start_server, tmp_path):
    node = start_server("--config", auth_config(tmp_path, "[rate_limit]\n"
                                                          "failed_auth_per_minute = 6\n\n"))
    codes = [httpx.get(node.url + "/v1/keys/app/x",
                       headers={"Authorization": f"Bearer guess{i}"}).status_code
             for i in range(8)]
    assert codes[:6] == [401] * 6 and codes[-1] == 429


def test_metrics_parse_and_move(server):
    def sample(name: str, **labels: str) -> float:
        text = httpx.get(server.url + "/metrics").text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0

    before = sample("raftkv_http_requests_total", route="/v1/keys/{key...}", method="PUT",
                    status="201")
    for i in range(5):
        httpx.put(server.url + f"/v1/keys/m{i}", json={"value": "x"})
    assert sample("raftkv_http_requests_total", route="/v1/keys/{key...}", method="PUT",
                  status="201") == before + 5
    assert sample("raftkv_keys") == 5
    assert sample("raftkv_wal_appends_total") >= 5
    assert sample("raftkv_wal_fsync_duration_seconds_count") >= 1
    assert sample("raftkv_raft_is_leader") == 1
    assert sample("raftkv_http_requests_in_flight") >= 1  # the scrape itself is in flight
    assert sample("raftkv_raft_applied_index") >= 5
    httpx.get(server.url + "/v1/keys/no/such/path/" + "x" * 10)
    text = httpx.get(server.url + "/metrics").text
    assert "no/such/path" not in text  # route templates only, never raw paths


def test_config_show_masks_secrets_and_token_new_prints_a_usable_line(tmp_path):
    path = auth_config(tmp_path)
    shown = subprocess.run([sys.executable, "-m", "raftkv", "config", "show", "--config", path],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(TOKENS["admin"].encode()).hexdigest()
    assert digest not in shown and digest[:8] in shown
    made = subprocess.run([sys.executable, "-m", "raftkv", "token", "new", "--role", "read",
                           "--prefix", "app/"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    token = made.split("it is not stored anywhere): ")[1].split()[0]
    assert hashlib.sha256(token.encode()).hexdigest() in made
    config = tmp_path / "new.toml"
    config.write_text("[auth]\n" + made.split("TOML file:\n")[1])
    check = subprocess.run([sys.executable, "-m", "raftkv", "config", "check", str(config)],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_memory_limits_refuse_under_noeviction_and_evict_under_lru(start_server, tmp_path):
    strict = tmp_path / "strict.toml"
    strict.write_text("[eviction]\npolicy = 'noeviction'\nmax_keys = 2\n")
    node = start_server("--config", str(strict), resp=True)
    for i in range(2):
        assert httpx.put(node.url + f"/v1/keys/k{i}", json={"value": "v"}).status_code == 201
    full = httpx.put(node.url + "/v1/keys/k2", json={"value": "v"})
    assert full.status_code == 507 and full.json()["code"] == "out_of_memory"
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        redis.Redis(port=node.resp_port, protocol=2).set("k3", "v")
    lru = tmp_path / "lru.toml"
    lru.write_text("[eviction]\npolicy = 'allkeys-lru'\nmax_keys = 3\n")
    node = start_server("--config", str(lru))
    for i in range(10):
        assert httpx.put(node.url + f"/v1/keys/e{i}", json={"value": "v"}).status_code == 201
    time.sleep(0.2)
    items = httpx.get(node.url + "/v1/keys").json()["items"]
    assert len(items) == 3 and "e9" in [i["key"] for i in items]


def test_admin_snapshot_needs_admin_and_trims_the_wal(start_server, tmp_path):
    node = start_server("--config", auth_config(tmp_path))
    for i in range(50):
        httpx.put(node.url + f"/v1/keys/app/{i}", headers=bearer("writer"), json={"value": "v"})
    assert httpx.post(node.url + "/v1/admin/snapshot", headers=bearer("writer")
                      ).status_code == 403
    r = httpx.post(node.url + "/v1/admin/snapshot", headers=bearer("admin"))
    assert r.status_code == 200 and r.json()["index"] >= 50
    assert list((node.data_dir / "snapshots").glob("*.snap"))


def test_overload_is_shed_with_503_and_retry_after(start_server, tmp_path):
    import socket

    config = tmp_path / "shed.toml"
    config.write_text("[rate_limit]\nenabled = true\nmax_in_flight = 2\n")
    node = start_server("--config", str(config))
    body = b'{"value": "x"}'
    batch = b"".join(b"PUT /v1/keys/s%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (i, len(body), body) for i in range(30))
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(batch)
        time.sleep(0.5)
        raw = s.recv(1 << 20)
    assert b"HTTP/1.1 503" in raw and b"Retry-After: 1" in raw and b"HTTP/1.1 201" in raw


def test_a_second_signal_stops_at_once_keeping_acknowledged_writes(start_server, tmp_path):
    import signal
    import socket

    node = start_server("--shutdown-timeout", "60")
    assert httpx.put(node.url + "/v1/keys/kept", json={"value": "1"}).status_code == 201
    stuck = socket.create_connection(("127.0.0.1", node.port))
    stuck.sendall(b"PUT /v1/keys/never HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nab")
    time.sleep(0.2)
    started = time.monotonic()
    node.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert node.proc.poll() is None  # draining: waits for the stuck request
    node.signal(signal.SIGINT)
    assert node.wait(timeout_s=10) == 0 and time.monotonic() - started < 5
    stuck.close()
    again = start_server(data_dir=node.data_dir)
    assert httpx.get(again.url + "/v1/keys/kept").json()["value"] == "1"


def test_sigterm_during_a_snapshot_leaves_a_clean_directory(start_server, tmp_path):
    import signal

    import redis as redis_client

    node = start_server(resp=True)
    client = redis_client.Redis(port=node.resp_port, protocol=2)
    pipe = client.pipeline(transaction=False)
    for i in range(100_000):
        pipe.set(f"k{i:06d}", "v" * 20)
    pipe.execute()
    client.close()
    # the request is sent before the signal (a client thread could still be connecting)
    with socket.create_connection(("127.0.0.1", node.port)) as conn:
        conn.sendall(b"POST /v1/admin/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.05)
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    leftovers = [p.name for p in (node.data_dir / "snapshots").iterdir()
                 if not p.name.endswith(".snap")]
    assert leftovers == []
    again = start_server(data_dir=node.data_dir)
    assert httpx.get(again.url + "/v1/keys/k099999").json()["value"] == "v" * 20


def test_wal_appends_are_counted_under_every_fsync_policy(start_server):
    node = start_server("--fsync", "no")
    for i in range(3):
        httpx.put(node.url + f"/v1/keys/n{i}", json={"value": "x"})
    text = httpx.get(node.url + "/metrics").text
    appends = [float(line.split()[1]) for line in text.splitlines()
               if line.startswith("raftkv_wal_appends_total ")]
    assert appends == [3.0]
