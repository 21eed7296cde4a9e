"""TLS on the HTTP and RESP ports, client certificates as identities, reload without a
restart, and peer links over mutual TLS - with real clients (curl, redis-cli --tls,
redis-py, httpx, the raftkv CLI) against real nodes."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis

from tests.support.certs import CA
from tests.support.cluster import Cluster
from tests.support.node import ROOT, free_port

ADMIN_TOKEN = "tls-admin-token-1"


@pytest.fixture
def ca(tmp_path):
    return CA(tmp_path / "pki")


def tls_args(ca: CA, stem: str = "server") -> list[str]:
    cert, key, _ = ca.issue(stem, "localhost")
    return ["--tls-cert", str(cert), "--tls-key", str(key)]


def served_serial(port: int, ca: CA) -> int:
    """The serial number of the certificate a new connection to ``port`` is shown."""
    ctx = ca.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509
    return x509.load_der_x509_certificate(der).serial_number


def test_http_and_resp_over_tls_with_real_clients(start_server, ca):
    node = start_server(*tls_args(ca), resp=True, tls=ca.client_context())
    with node.client() as http:
        assert http.put("/v1/keys/greeting", json={"value": "hello"}).status_code == 201
    curl = subprocess.run(["curl", "-sS", "--cacert", str(ca.path),
                           f"https://localhost:{node.port}/v1/keys/greeting"],
                          capture_output=True, text=True, timeout=10)
    assert '"value":"hello"' in curl.stdout, curl
    cli = subprocess.run(["redis-cli", "--tls", "--cacert", str(ca.path), "-p",
                          str(node.resp_port), "GET", "greeting"],
                         capture_output=True, text=True, timeout=10)
    assert cli.stdout.strip() == "hello", cli
    r = redis.Redis(port=node.resp_port, ssl=True, ssl_ca_certs=str(ca.path))
    assert r.set("k", "v") and r.get("k") == b"v"
    r.close()
    ours = subprocess.run([sys.executable, "-m", "raftkv", "get", "greeting", "--url", node.url,
                           "--cacert", str(ca.path)], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert ours.returncode == 0 and "hello" in ours.stdout, ours
    # TLS 1.2 and 1.3 are served, TLS 1.1 is refused (openssl's client, all levels allowed)
    for version, served in (("-tls1_3", True), ("-tls1_2", True), ("-tls1_1", False)):
        hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{node.port}",
                                version, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile",
                                str(ca.path)], input="", capture_output=True, text=True,
                               timeout=10)
        assert ("BEGIN CERTIFICATE" in hello.stdout) is served, (version, hello.stdout)
    # without the CA the certificate is not trusted
    with pytest.raises(httpx.ConnectError):
        httpx.get(node.url + "/health")


def test_plain_http_and_resp_to_a_tls_port_get_a_clean_close(start_server, ca):
    node = start_server(*tls_args(ca), resp=True, tls=ca.client_context())
    for port, request in ((node.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
                          (node.resp_port, b"*1\r\n$4\r\nPING\r\n")):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            answer = sock.recv(4096)  # the server closes: no hang (timeout 5 s), no reply
        assert answer == b"" and time.monotonic() - started < 2
    with node.client() as http:  # and the node is fine
        assert http.get("/health").status_code == 200
    assert "Traceback" not in node.logs()


def _cert_auth_config(tmp_path, ca: CA) -> str:
    digest = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    path = tmp_path / "auth.toml"
    path.write_text(f"""
[[auth.tokens]]
name = "ops"
certificate = "ops-client"
role = "write"
prefixes = ["app/"]

[[auth.tokens]]
name = "admin"
sha256 = "{digest}"
role = "admin"
""")
    return str(path)


def test_client_certificates_are_required_and_name_an_identity(start_server, ca, tmp_path):
    node = start_server(*tls_args(ca), "--tls-client-ca", str(ca.path),
                        "--config", _cert_auth_config(tmp_path, ca), resp=True,
                        tls=ca.client_context(*ca.issue("probe", "probe")[:2]))
    ops = ca.client_context(*ca.issue("ops", "ops-client")[:2])
    other = ca.client_context(*ca.issue("other", "someone-else")[:2])
    # the certificate named in [auth] is that token's principal: no bearer token needed
    r = httpx.put(node.url + "/v1/keys/app/x", json={"value": "1"}, verify=ops)
    assert r.status_code == 201, r.text
    assert httpx.put(node.url + "/v1/keys/other/x", json={"value": "1"},
                     verify=ops).status_code == 403  # its prefixes still apply
    assert httpx.get(node.url + "/v1/keys/app/x", verify=other).status_code == 401
    assert httpx.get(node.url + "/v1/keys/app/x", verify=other,
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    as_ops = redis.Redis(port=node.resp_port, ssl=True, ssl_ca_certs=str(ca.path),
                         ssl_certfile=str(ca.root / "ops.crt"), ssl_keyfile=str(ca.root / "ops.key"))
    assert as_ops.set("app/y", "2") and as_ops.get("app/y") == b"2"
    as_ops.close()
    as_other = redis.Redis(port=node.resp_port, ssl=True, ssl_ca_certs=str(ca.path),
                           ssl_certfile=str(ca.root / "other.crt"),
                           ssl_keyfile=str(ca.root / "other.key"))
    with pytest.raises(redis.AuthenticationError):
        as_other.get("app/y")
    as_other.close()
    # no certificate, or one from another CA: the handshake fails
    stranger = CA(tmp_path / "other-pki", "stranger CA")
    for verify in (ca.client_context(),
                   ca.client_context(*stranger.issue("s", "ops-client")[:2])):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(node.url + "/health", verify=verify)
    cli = subprocess.run(["redis-cli", "--tls", "--cacert", str(ca.path), "-p",
                          str(node.resp_port), "PING"], capture_output=True, text=True,
                         timeout=10)
    assert "PONG" not in cli.stdout


def test_certificates_rotate_without_a_restart_and_open_connections_keep_working(
        start_server, ca):
    args = tls_args(ca)
    cert, key = args[1], args[3]
    node = start_server(*args, resp=True, tls=ca.client_context())
    first = served_serial(node.port, ca)
    http = node.client()
    assert http.put("/v1/keys/a", json={"value": "1"}).status_code == 201
    r = redis.Redis(port=node.resp_port, ssl=True, ssl_ca_certs=str(ca.path))
    assert r.ping()
    # a new certificate written in place (as certbot does) is picked up on its own
    new_cert, new_key, serial = ca.issue("rotated", "localhost")
    shutil.copy(new_key, key)
    shutil.copy(new_cert, cert)
    deadline = time.monotonic() + 10
    while served_serial(node.port, ca) != serial and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_serial(node.port, ca) == serial != first
    assert served_serial(node.resp_port, ca) == serial
    assert http.get("/v1/keys/a").json()["value"] == "1"  # the old connection still serves
    assert r.get("a") == b"1" and r.set("b", "2")  # and so does the RESP one
    # SIGHUP reloads too; a broken file is refused and the last good one kept
    third_cert, _, third = ca.issue("third", "localhost")
    shutil.copy(third_cert, cert)  # (not matching the key in place)
    node.signal(signal.SIGHUP)
    time.sleep(1.5)
    assert served_serial(node.port, ca) == serial
    assert "not reloaded" in node.logs()
    metrics = http.get("/metrics").text
    assert 'raftkv_tls_reloads_total{outcome="failed"}' in metrics
    assert 'raftkv_tls_certificate_expiry_timestamp_seconds{role="api"}' in metrics
    http.close()
    r.close()
    assert third != serial


def wait_for_leader(cluster: Cluster, among: tuple[str, ...]):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for node_id in among:
            try:
                with cluster.nodes[node_id].client(timeout=1) as http:
                    if http.get("/health").json()["state"] == "leader":
                        return cluster.nodes[node_id]
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise TimeoutError("no leader among " + ", ".join(among))


@pytest.mark.parametrize("case", ["missing", "mismatched", "key-alone", "peer-without-api"])
def test_unusable_tls_files_exit_2_naming_the_setting(tmp_path, ca, case):
    cert, key, _ = ca.issue("server", "localhost")
    other_cert, _, _ = ca.issue("other", "localhost")
    args, named = {
        "missing": (["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key)],
                    "--tls-cert"),
        "mismatched": (["--tls-cert", str(other_cert), "--tls-key", str(key)], "--tls-key"),
        "key-alone": (["--tls-key", str(key)], "--tls-key"),
        "peer-without-api": (["--peer-tls-cert", str(cert), "--peer-tls-key", str(key),
                              "--peer-tls-ca", str(ca.path)], "--peer-tls-cert"),
    }[case]
    result = subprocess.run([sys.executable, "-m", "raftkv", "serve", "--data-dir",
                             str(tmp_path / "d"), "--port", str(free_port()), *args],
                            capture_output=True,
                            text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_a_cluster_over_peer_mtls_refuses_a_node_from_another_ca(tmp_path, ca):
    def node_args(pki: CA, stem: str) -> list[str]:
        api_cert, api_key, _ = ca.issue(f"{stem}-api", "localhost")
        peer_cert, peer_key, _ = pki.issue(f"{stem}-peer", stem)
        return ["--tls-cert", str(api_cert), "--tls-key", str(api_key),
                "--peer-tls-cert", str(peer_cert), "--peer-tls-key", str(peer_key),
                "--peer-tls-ca", str(pki.path)]

    cluster = Cluster(tmp_path, 3, tls=ca.client_context())
    for node_id, node in cluster.nodes.items():
        node.args += node_args(ca, node_id)
    try:
        cluster.start()
        with cluster.nodes[cluster.leader()].client() as http:
            assert http.put("/v1/keys/before", json={"value": "1"}).status_code == 201
        # n3 comes back with a peer certificate from another CA: it is refused both ways
        n3 = cluster.nodes["n3"]
        n3.stop()
        stranger = CA(tmp_path / "stranger", "stranger CA")
        n3.args = n3.args[:-6] + node_args(stranger, "n3")[4:]
        n3.start(wait=False)
        leader = wait_for_leader(cluster, ("n1", "n2"))
        with leader.client() as http:
            for i in range(20):
                assert http.put(f"/v1/keys/k{i}", json={"value": str(i)}).status_code == 201
        for node_id in ("n1", "n2"):  # the two with the cluster's CA hold every write
            with cluster.nodes[node_id].client() as http:
                assert http.get("/v1/keys/k19?consistency=stale").json()["value"] == "19"
        with n3.client() as http:
            deadline = time.monotonic() + 20
            while True:  # it serves, alone, with none of the writes
                try:
                    health = http.get("/health").json()
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert health["state"] != "leader"
            assert http.get("/v1/keys/k19?consistency=stale").status_code == 404
        deadline = time.monotonic() + 10  # it cannot dial them, nor they it: both say why
        while not all("CERTIFICATE_VERIFY_FAILED" in node.logs() for node in cluster.nodes.values()):
            assert time.monotonic() < deadline, "a refused peer certificate was not logged"
            time.sleep(0.2)
        # a peer upgrade over TLS without a peer certificate is refused
        with cluster.nodes["n1"].client() as http:
            r = http.get("/v1/raft/stream", headers={
                "Connection": "Upgrade", "Upgrade": "raftkv-peer/1", "X-Raftkv-Node": "n9",
                "X-Raftkv-Incarnation": "x"})
            assert r.status_code == 401 and "peer CA" in r.json()["message"]
    finally:
        cluster.stop()


def test_a_cluster_with_tls_on_its_api_port_links_over_tls_authenticated_by_the_secret(
        tmp_path, ca):
    cluster = Cluster(tmp_path, 3, tls=ca.client_context())
    for node_id, node in cluster.nodes.items():
        node.args += [*tls_args(ca, node_id), "--cluster-secret", "a-secret-of-16-chars-or-more"]
    try:
        cluster.start()
        with cluster.nodes[cluster.leader()].client() as http:
            assert http.put("/v1/keys/k", json={"value": "v"}).status_code == 201
        members = subprocess.run([sys.executable, "-m", "raftkv", "cluster", "members", "--url",
                                  cluster.nodes["n2"].url, "--cacert", str(ca.path)],
                                 capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert members.returncode == 0 and members.stdout.count("reachable") == 3, members
        for node in cluster.nodes.values():
            with node.client() as http:
                deadline = time.monotonic() + 10
                while http.get("/v1/keys/k?consistency=stale").status_code != 200:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
    finally:
        cluster.stop()
