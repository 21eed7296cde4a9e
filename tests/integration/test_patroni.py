"""Patroni with two PostgreSQL instances and raftkv as its DCS, through the etcd v3
gateway, as Patroni's users run it: a primary is elected and a replica streams from
it; the primary is killed (-9, Patroni and PostgreSQL both) and the replica is
promoted, with the leader key in raftkv naming it. Also Patroni's etcd3 DCS module
driven directly, against a 3-node raftkv cluster whose leader is killed.

PostgreSQL refuses to run as root and the project's interpreter lives under /root, so
Patroni runs as the ``postgres`` user from its own virtualenv (``.venv-patroni``, on
Debian's Python), which ``make test`` builds."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.node import ROOT, free_port

PATRONI = ROOT / ".venv-patroni" / "bin" / "patroni"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONFIG = """\
scope: raftkv-demo
name: {name}
log: {{level: WARNING, dir: {base}/{name}-log}}
restapi: {{listen: "127.0.0.1:{api}", connect_address: "127.0.0.1:{api}"}}
etcd3: {{hosts: ["127.0.0.1:{dcs}"]}}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    postgresql:
      parameters: {{max_connections: 20, wal_level: replica, hot_standby: "on",
                    max_wal_senders: 5, max_replication_slots: 5}}
  initdb: [{{encoding: UTF8}}]
postgresql:
  listen: "127.0.0.1:{pg}"
  connect_address: "127.0.0.1:{pg}"
  data_dir: {base}/{name}
  bin_dir: {bin}
  pgpass: {base}/{name}.pgpass
  authentication:
    replication: {{username: replicator, password: rep-pass}}
    superuser: {{username: postgres, password: pg-pass}}
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
"""


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A directory the postgres user owns (pytest's own are root's, mode 700)."""
    if not PATRONI.exists():
        pytest.fail("Patroni's virtualenv is missing: `make test` builds .venv-patroni")
    if not PG_BIN.exists():
        pytest.fail("PostgreSQL 15 is missing: `make test` installs Debian's postgresql")
    base = Path(tempfile.mkdtemp(prefix="raftkv-patroni-"))
    base.chmod(0o755)
    shutil.chown(base, "postgres", "postgres")
    yield base
    shutil.rmtree(base, ignore_errors=True)


class PatroniNode:
    def __init__(self, base: Path, name: str, dcs_port: int) -> None:
        self.name = name
        self.api = free_port()
        self.pg = free_port()
        self.base = base
        self.config = base / f"{name}.yml"
        log_dir = base / f"{name}-log"
        log_dir.mkdir()
        shutil.chown(log_dir, "postgres", "postgres")
        self.config.write_text(CONFIG.format(name=name, base=base, api=self.api, pg=self.pg,
                                             dcs=dcs_port, bin=PG_BIN))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.output = open(self.base / f"{self.name}.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", str(PATRONI),
                                      str(self.config)], stdout=self.output,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def role(self) -> str | None:
        """"primary" or "replica" (streaming), as Patroni's REST API says; None else."""
        for role in ("primary", "replica"):
            try:
                if httpx.get(f"http://127.0.0.1:{self.api}/{role}", timeout=2).status_code == 200:
                    return role
            except httpx.HTTPError:
                return None
        return None

    def psql(self, sql: str) -> str:
        done = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-h", "127.0.0.1",
                               "-p", str(self.pg), "-tAc", sql], capture_output=True, text=True,
                              timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: psql {sql!r} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def rows(self, table: str) -> str | None:
        """The table's row count; None while the table has not reached this node (a
        replica learns of it by streaming, a moment after the primary made it)."""
        try:
            return self.psql(f"SELECT count(*) FROM {table}")
        except RuntimeError as failed:
            if f'relation "{table}" does not exist' in str(failed):
                return None
            raise

    def kill(self) -> None:
        """Patroni and its PostgreSQL, -9: the host is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        subprocess.run(["pkill", "-9", "-f", str(self.base / self.name)], check=False)
        if self.proc is not None:
            self.output.close()

    def logs(self) -> str:
        return (self.base / f"{self.name}.out").read_text(errors="replace")[-3000:]


def leader_key(url: str) -> str:
    """Patroni's leader key, read from raftkv (the key starts with '/': asked through
    the etcd gateway, as Patroni asks)."""
    key = base64.b64encode(b"/service/raftkv-demo/leader").decode()
    kvs = httpx.post(f"{url}/v3/kv/range", json={"key": key}, timeout=5).json()["kvs"]
    return base64.b64decode(kvs[0]["value"]).decode()


def test_patroni_elects_a_primary_and_promotes_the_replica_when_it_dies(start_server,
                                                                        workspace: Path):
    raftkv = start_server()
    dcs_port = int(raftkv.url.rsplit(":", 1)[1])
    nodes = [PatroniNode(workspace, name, dcs_port) for name in ("pg1", "pg2")]
    try:
        nodes[0].start()
        wait_for(lambda: nodes[0].role() == "primary", 90, "pg1 to bootstrap as primary")
        nodes[1].start()
        wait_for(lambda: nodes[1].role() == "replica", 90, "pg2 to stream from pg1")
        primary, replica = nodes
        primary.psql("CREATE TABLE jobs (id int); INSERT INTO jobs VALUES (1)")
        wait_for(lambda: replica.rows("jobs") == "1", 20, "the row to reach the replica")
        assert leader_key(raftkv.url) == "pg1"

        primary.kill()
        started = time.monotonic()
        wait_for(lambda: replica.role() == "primary", 90, "pg2 to be promoted")
        promoted_after_s = time.monotonic() - started
        assert leader_key(raftkv.url) == "pg2"
        # Patroni answers /primary once it holds the leader key and has asked PostgreSQL
        # to promote; PostgreSQL takes writes once it has left recovery
        wait_for(lambda: replica.psql("SELECT pg_is_in_recovery()") == "f", 30,
                 "pg2 to leave recovery")
        replica.psql("INSERT INTO jobs VALUES (2)")
        assert replica.psql("SELECT count(*) FROM jobs") == "2"
        assert promoted_after_s < 60, promoted_after_s
    except AssertionError:
        for node in nodes:
            print(f"--- {node.name}\n{node.logs()}")
        raise
    finally:
        for node in nodes:
            node.kill()


def test_patronis_dcs_module_keeps_its_leader_key_across_a_raftkv_leader_kill(tmp_path):
    from patroni.dcs import get_dcs

    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        hosts = [f"127.0.0.1:{cluster.ports[n]}" for n in cluster.nodes]

        def dcs(name: str):
            return get_dcs({"scope": "demo", "name": name, "ttl": 20, "loop_wait": 1,
                            "retry_timeout": 10, "etcd3": {"hosts": hosts}})

        a, b = dcs("pg1"), dcs("pg2")
        assert a.initialize(create_new=True, sysid="7000000000000000001")
        assert not b.initialize(create_new=True, sysid="7000000000000000002")
        assert a.touch_member({"conn_url": "postgres://127.0.0.1:5433/postgres",
                               "api_url": "http://127.0.0.1:8008/patroni", "role": "primary"})
        assert a.attempt_to_acquire_leader() and not b.attempt_to_acquire_leader()
        cluster.nodes[cluster.leader()].kill()
        for _ in range(5):  # the leader keeps its key through raftkv's failover
            assert a.update_leader(a.get_cluster(), last_lsn=100)
            time.sleep(0.5)
        seen = b.get_cluster()
        assert seen.leader is not None and seen.leader.name == "pg1"
        assert seen.initialize == "7000000000000000001"
        assert [m.name for m in seen.members] == ["pg1"]
        assert a.delete_leader(seen.leader) and b.attempt_to_acquire_leader()
        # pg1 reads through its watch cache, which may still be resuming on another
        # node after the kill: its view must reach pg2's key, within seconds
        deadline = time.monotonic() + 10
        while ((leader := a.get_cluster().leader) is None or leader.name != "pg2") \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leader is not None and leader.name == "pg2"
    finally:
        cluster.stop()
