"""`raftkv serve` start-up validation: every bad value exits 2 with one line naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raftkv.config import ConfigError, load
from tests.support.node import ROOT


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAFTKV_", "PORT",
                                                                         "PEERS", "NODE_ID"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "raftkv", "serve", *args], env=full_env,
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("args", "env", "names"), [
    (["--port", "abc"], {}, "--port"),
    (["--port", "70000"], {}, "--port"),
    ([], {"PORT": "-1"}, "PORT"),
    ([], {"KVSTORE_PORT": "x"}, "KVSTORE_PORT"),
    (["--fsync", "sometimes"], {}, "--fsync"),
    ([], {"RAFTKV_FSYNC": "sometimes"}, "RAFTKV_FSYNC"),
    (["--host", "not-an-ip"], {}, "--host"),
    (["--host", "0.0.0.0"], {}, "--host"),  # exposed without auth
    (["--node-id", "bad id!"], {}, "--node-id"),
    ([], {"PEERS": "ftp://x:1"}, "PEERS"),
    (["--peers", "http://127.0.0.1"], {}, "--peers"),
    (["--max-value-bytes", "0"], {}, "--max-value-bytes"),
    (["--shutdown-timeout", "-3"], {}, "--shutdown-timeout"),
    (["--log-level", "loud"], {}, "--log-level"),
    (["--log-format", "xml"], {}, "--log-format"),
    (["--resp-port", "8080"], {}, "--resp-port"),
    (["--config", "/nonexistent.toml"], {}, "--config"),
])
def test_bad_settings_exit_2_with_one_line_naming_the_setting(tmp_path, args, env, names):
    result = serve("--data-dir", str(tmp_path), *args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert not (tmp_path / "log").exists()  # nothing was half-started


@pytest.mark.parametrize(("toml", "names"), [
    ("port = 'x'\n", "port in"),
    ("bogus = 1\n", "bogus"),
    ("[http]\nmax_connections = 0\n", "http.max_connections"),
    ("[http]\nnope = 1\n", "http.nope"),
    ("[eviction]\npolicy = 'random'\n", "eviction.policy"),
    ("[resp]\nmax_multibulk_len = 0\n", "resp.max_multibulk_len"),
    ("[resp]\nquery_buffer_limit_bytes = 1048576\n", "resp.query_buffer_limit_bytes"),
    ("[[auth.tokens]]\nsha256 = 'short'\n", "auth.tokens[0].sha256"),
    ("[history]\nmax_events = 0\n", "history.max_events"),
    ("[audit]\nfsync = 'often'\n", "audit.fsync"),
    ("[backup]\nretain = 0\n", "backup.retain"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_toml_values_exit_2_naming_the_key(tmp_path, toml, names):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    result = serve("--config", str(path), "--data-dir", str(tmp_path))
    assert result.returncode == 2 and names in result.stderr, result.stderr
    check = subprocess.run([sys.executable, "-m", "raftkv", "config", "check", str(path)],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 2 and names in check.stderr


def test_precedence_is_flag_then_env_then_file_then_default(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("port = 1111\nnode_id = 'from-file'\nfsync = 'no'\n")
    env = {"RAFTKV_PORT": "2222", "PORT": "3333", "NODE_ID": "from-env"}
    config = load({"port": "4444"}, env=env, config_file=str(path))
    assert (config.port, config.node_id, config.fsync) == (4444, "from-env", "no")
    config = load({}, env=env, config_file=str(path))
    assert config.port == 2222  # RAFTKV_PORT before PORT
    config = load({}, env={"PORT": "3333"}, config_file=str(path))
    assert config.port == 3333
    config = load({}, env={}, config_file=str(path))
    assert config.port == 1111 and config.udp_port == 1111  # UDP follows the HTTP port
    config = load({}, env={})
    assert (config.port, config.resp_port, config.fsync, config.node_id) == (8080, 6380,
                                                                              "always", "n1")


def test_cluster_defaults_turn_resp_off_and_parse_peer_ids():
    config = load({}, env={"PEERS": "n2=http://127.0.0.1:8082, http://127.0.0.1:8083",
                           "NODE_ID": "n1", "PORT": "8081"})
    assert config.resp_port == 0 and config.udp_port == 8081
    assert [(p.node_id, p.url) for p in config.peers] == [("n2", "http://127.0.0.1:8082"),
                                                          (None, "http://127.0.0.1:8083")]
    with pytest.raises(ConfigError, match="twice"):
        load({}, env={"PEERS": "http://a:1,http://a:1"})


def test_example_config_in_the_repo_is_valid():
    result = subprocess.run([sys.executable, "-m", "raftkv", "config", "check",
                             str(ROOT / "raftkv.example.toml")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_a_port_in_use_is_a_clear_error(start_server, tmp_path):
    first = start_server()
    result = serve("--data-dir", str(tmp_path / "other"), "--port", str(first.port),
                   "--resp-port", "0")
    assert result.returncode == 1 and "address already in use" in result.stderr.lower()


@pytest.mark.parametrize(("toml", "names"), [
    ("[audit]\npath = '/nonexistent-dir/audit.jsonl'\n", "audit.path"),
    ("[backup]\ndir = '/proc/no-backups-here'\n", "backup.dir"),
])
def test_unusable_audit_and_backup_paths_exit_2_naming_the_key(tmp_path, toml, names):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    result = serve("--config", str(path), "--data-dir", str(tmp_path / "d"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and names in lines[0], result.stderr
