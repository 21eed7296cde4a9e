"""The HTTP API over real sockets: httpx against a `raftkv serve` process."""

from __future__ import annotations

import base64
import time

import httpx
import pytest


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_put_creates_then_replaces_and_get_returns_the_entry(client):
    created = client.put("/v1/keys/greeting", json={"value": "hello"})
    assert created.status_code == 201
    assert created.headers["etag"] == f'"{created.json()["modRevision"]}"'
    assert "value" not in created.json()
    replaced = client.put("/v1/keys/greeting", json={"value": "hi"})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    got = client.get("/v1/keys/greeting")
    body = got.json()
    assert got.status_code == 200 and body["ok"] is True
    assert body["value"] == "hi" and body["version"] == 2
    assert body["createRevision"] == created.json()["modRevision"]
    assert body["modRevision"] == replaced.json()["modRevision"] > body["createRevision"]
    assert body["expiresAtMs"] is None
    assert got.headers["etag"] == f'"{body["modRevision"]}"'
    assert got.headers["cache-control"] == "no-store"
    assert got.headers["x-content-type-options"] == "nosniff"


def test_missing_key_is_404_in_the_error_shape_with_the_request_id(client):
    r = client.get("/v1/keys/nope", headers={"X-Request-ID": "trace-123"})
    assert r.status_code == 404
    assert r.json() == {"ok": False, "message": "key not found", "code": "not_found",
                        "requestId": "trace-123"}
    assert r.headers["x-request-id"] == "trace-123"


def test_an_insane_request_id_is_replaced(client):
    r = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and r.headers["x-request-id"]


def test_keys_with_slashes_and_percent_encoded_utf8(client):
    assert client.put("/v1/keys/a/b/c", json={"value": "1"}).status_code == 201
    assert client.get("/v1/keys/a/b/c").json()["key"] == "a/b/c"
    assert client.put("/v1/keys/caf%C3%A9%20%2F%20x", json={"value": "2"}).status_code == 201
    assert client.get("/v1/keys/caf%C3%A9%20%2F%20x").json()["key"] == "café / x"
    assert client.get("/v1/keys/%FF").status_code == 400  # not UTF-8
    assert client.get("/v1/keys/").status_code == 400  # empty key
    assert client.get("/v1/keys/" + "k" * 1025).status_code == 400


def test_ttl_expires_the_key(client):
    r = client.put("/v1/keys/short", json={"value": "x", "ttlMs": 300})
    deadline = r.json()["expiresAtMs"]
    assert abs(deadline - (time.time() * 1000 + 300)) < 2000
    assert client.get("/v1/keys/short").status_code == 200
    time.sleep(0.45)
    assert client.get("/v1/keys/short").status_code == 404


@pytest.mark.parametrize("ttl", [0, -5, "10", 1.5, True, 10**16])
def test_bad_ttls_are_400_naming_the_field(client, ttl):
    r = client.put("/v1/keys/k", json={"value": "x", "ttlMs": ttl})
    assert r.status_code == 400 and "ttlMs" in r.json()["message"]


def test_compare_and_swap_with_if_match_and_create_only(client):
    rev = client.put("/v1/keys/cas", json={"value": "a"}).json()["modRevision"]
    stale = client.put("/v1/keys/cas", json={"value": "b"}, headers={"If-Match": f'"{rev - 1}"'})
    assert stale.status_code == 412 and stale.json()["code"] == "condition_failed"
    fresh = client.put("/v1/keys/cas", json={"value": "b"}, headers={"If-Match": f'"{rev}"'})
    assert fresh.status_code == 200
    assert client.put("/v1/keys/cas", json={"value": "c"},
                      headers={"If-None-Match": "*"}).status_code == 412
    assert client.put("/v1/keys/new", json={"value": "c"},
                      headers={"If-None-Match": "*"}).status_code == 201
    assert client.put("/v1/keys/absent", json={"value": "c"},
                      headers={"If-Match": "*"}).status_code == 412
    assert client.get("/v1/keys/cas").json()["value"] == "b"
    assert client.put("/v1/keys/cas", json={"value": "d"},
                      headers={"If-Match": "nonsense"}).status_code == 400


def test_delete_is_204_then_404_and_honours_if_match(client):
    rev = client.put("/v1/keys/d", json={"value": "x"}).json()["modRevision"]
    assert client.delete("/v1/keys/d", headers={"If-Match": f'"{rev + 5}"'}).status_code == 412
    assert client.delete("/v1/keys/d", headers={"If-Match": f'"{rev}"'}).status_code == 204
    assert client.delete("/v1/keys/d").status_code == 404


def test_binary_values_raw_and_base64(client):
    blob = bytes(range(256))
    r = client.put("/v1/keys/bin?ttlMs=60000", content=blob,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.json()["expiresAtMs"] is not None
    as_json = client.get("/v1/keys/bin").json()
    assert as_json["encoding"] == "base64" and base64.b64decode(as_json["value"]) == blob
    raw = client.get("/v1/keys/bin", headers={"Accept": "application/octet-stream"})
    assert raw.content == blob and raw.headers["content-type"] == "application/octet-stream"
    assert client.put("/v1/keys/b64", json={"value": base64.b64encode(b"\x00\xff").decode(),
                                            "encoding": "base64"}).status_code == 201
    assert client.get("/v1/keys/b64", headers={"Accept": "application/octet-stream"}
                      ).content == b"\x00\xff"


def test_list_pages_through_keys_in_order_with_a_cursor(client):
    for name in ["p/3", "p/1", "q/1", "p/2", "p/4", "p/5"]:
        client.put(f"/v1/keys/{name}", json={"value": name})
    seen, cursor = [], None
    while True:
        params = {"prefix": "p/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/keys", params=params).json()
        seen += [item["key"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["p/1", "p/2", "p/3", "p/4", "p/5"]
    empty = client.get("/v1/keys", params={"prefix": "zzz"})
    assert empty.status_code == 200 and empty.json() == {"ok": True, "items": [],
                                                          "nextCursor": None}


@pytest.mark.parametrize("params", [{"limit": "abc"}, {"limit": "0"}, {"limit": "1001"},
                                    {"cursor": "!!"}, {"consistency": "eventual"}])
def test_bad_query_parameters_are_400_naming_the_field(client, params):
    r = client.get("/v1/keys", params=params)
    assert r.status_code == 400
    assert next(iter(params)) in r.json()["message"]


@pytest.mark.parametrize("level", ["linearizable", "leader", "stale"])
def test_every_consistency_level_reads_locally_on_one_node(client, level):
    client.put("/v1/keys/c", json={"value": "v"})
    r = client.get("/v1/keys/c", params={"consistency": level})
    assert r.status_code == 200 and r.json()["value"] == "v"
    if level == "stale":
        assert int(r.headers["x-raftkv-applied-index"]) >= r.json()["modRevision"]


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'"x"', b'{"value": NaN}', b'{"value": "\\ud800"}', b"[" * 5000 + b"]" * 5000,
    b'{"value": "a", "value": "b"}', b'{"value": "a", "\\u0076alue": "b"}',
    b'{"value": "a", "extra": 1}', b'{"value": 5}', b"{}",
    b'{"value": "a", "encoding": "rot13"}', b'{"value": "!!!", "encoding": "base64"}',
    b"\xff\xfe",
])
def test_malformed_json_bodies_are_400_never_500(client, body):
    r = client.put("/v1/keys/j", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["ok"] is False and r.json()["code"] == "invalid_argument"


def test_value_over_the_limit_is_413(start_server):
    server = start_server("--max-value-bytes", "100")
    r = httpx.put(server.url + "/v1/keys/big", json={"value": "x" * 101})
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert httpx.put(server.url + "/v1/keys/ok", json={"value": "x" * 100}).status_code == 201


def test_unsupported_media_type_is_415(client):
    r = client.put("/v1/keys/m", content=b"x", headers={"Content-Type": "text/csv"})
    assert r.status_code == 415


def test_routes_404_405_options_and_head(client):
    assert client.get("/nope").json()["code"] == "not_found"
    r = client.post("/v1/keys/x")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {
        "DELETE", "GET", "HEAD", "OPTIONS", "PUT"}
    options = client.options("/v1/keys/x")
    assert options.status_code == 204 and "PUT" in options.headers["allow"]
    client.put("/v1/keys/h", json={"value": "abc"})
    head = client.head("/v1/keys/h")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(client.get("/v1/keys/h").content)


def test_the_seed_apis_byte_for_byte(client):
    r = client.put("/set", json={"key": "name", "value": "luffy"})
    assert (r.status_code, r.json()) == (200, {"ok": True, "message": "stored", "key": "name"})
    r = client.get("/get", params={"key": "name"})
    assert (r.status_code, r.json()) == (200, {"ok": True, "key": "name", "value": "luffy"})
    r = client.delete("/delete", params={"key": "name"})
    assert (r.status_code, r.json()) == (200, {"ok": True, "message": "deleted", "key": "name"})
    assert client.get("/get", params={"key": "name"}).status_code == 404
    r = client.post("/kv", json={"key": "name", "value": "Alice"})
    assert r.status_code == 201 and r.json()["key"] == "name"
    assert client.get("/kv/name").json() == {"ok": True, "key": "name", "value": "Alice"}
    assert client.delete("/kv/name").status_code == 204
    assert client.get("/kv/name").status_code == 404
    assert client.put("/set", content=b"{nope").status_code == 400
    bad = client.put("/set", json={"key": "", "value": "x"})
    assert bad.status_code == 400 and bad.json()["ok"] is False
    assert client.get("/get").status_code == 400


def test_values_written_by_the_seed_api_are_visible_in_the_keys_api(client):
    client.put("/set", json={"key": "shared", "value": "one"})
    assert client.get("/v1/keys/shared").json()["value"] == "one"


def test_health_livez_readyz(client):
    health = client.get("/health").json()
    assert health["ok"] and health["id"] == "n1" and health["state"] == "leader"
    assert health["leaderId"] == "n1" and health["lastHeartbeatAgoMs"] is None
    assert health["appliedIndex"] == health["commitIndex"]
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_keep_alive_reuses_one_connection(server):
    with httpx.Client(base_url=server.url) as c:
        ports = set()
        for i in range(20):
            r = c.put(f"/v1/keys/ka{i}", json={"value": str(i)}, extensions={})
            assert r.status_code == 201
            ports.add(r.extensions["network_stream"].get_extra_info("client_addr")[1])
        assert len(ports) == 1


def test_cors_preflight_and_simple_request(start_server, tmp_path):
    config = tmp_path / "cors.toml"
    config.write_text('cors_origins = ["https://app.example"]\n')
    server = start_server("--config", str(config))
    pre = httpx.options(server.url + "/v1/keys/x", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "PUT"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in pre.headers["access-control-allow-methods"]
    assert pre.headers["access-control-max-age"] == "600"
    simple = httpx.get(server.url + "/v1/keys/x", headers={"Origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"  # on a 404 too
    other = httpx.get(server.url + "/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_openapi_document_is_served(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert {"/v1/keys", "/v1/keys/{key}", "/set", "/get", "/kv/{key}"} <= set(doc["paths"])
