"""POST /v1/txn against a real node: compares choose the branch, every op of the branch
applies at one revision, an op that fails undoes the whole transaction (409), bad
input is a 400 naming the field, limits are a 413 naming the setting - and through a
follower of a cluster the transaction is one replicated entry."""

from __future__ import annotations

import httpx

from tests.support.cluster import Cluster


def txn(url: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/txn", json=body, timeout=10)


def test_compares_choose_the_branch_and_ops_apply_at_one_revision(start_server):
    url = start_server().url
    first = txn(url, success=[{"op": "put", "key": "cfg", "value": "v1"},
                              {"op": "incr", "key": "n", "by": 5},
                              {"op": "get", "key": "cfg"}, {"op": "get", "key": "none"}])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] and body["succeeded"]
    put, incr, got, missing = body["results"]
    assert put["op"] == "put" and put["modRevision"] == body["revision"] == incr["modRevision"]
    assert incr["value"] == "5" and got["found"] and got["value"] == "v1"
    assert missing == {"op": "get", "key": "none", "found": False}
    revision = body["revision"]

    swap = txn(url, compare=[{"key": "cfg", "target": "modRevision", "op": "=",
                              "value": revision}],
               success=[{"op": "put", "key": "cfg", "value": "v2"}],
               failure=[{"op": "get", "key": "cfg"}])
    assert swap.json()["succeeded"] is True
    stale = txn(url, compare=[{"key": "cfg", "target": "modRevision", "op": "=",
                               "value": revision}],
                success=[{"op": "put", "key": "cfg", "value": "v3"}],
                failure=[{"op": "get", "key": "cfg"}])
    assert stale.status_code == 200 and stale.json()["succeeded"] is False
    assert stale.json()["results"][0]["value"] == "v2"  # the failure branch ran
    create = txn(url, compare=[{"key": "lock", "target": "exists", "op": "=", "value": False}],
                 success=[{"op": "put", "key": "lock", "value": "me", "ttlMs": 60000}])
    assert create.json()["succeeded"] and httpx.get(f"{url}/v1/keys/lock").json()[
        "expiresAtMs"] is not None
    assert txn(url, compare=[{"key": "lock", "target": "value", "op": "=", "value": "me"}],
               success=[{"op": "delete", "key": "lock"}]).json()["results"] == [
        {"op": "delete", "key": "lock", "deleted": 1}]


def test_an_op_that_fails_undoes_the_whole_transaction(start_server):
    url = start_server().url
    httpx.put(f"{url}/v1/keys/word", json={"value": "abc"})
    failed = txn(url, success=[{"op": "put", "key": "a", "value": "1"},
                               {"op": "incr", "key": "word"},
                               {"op": "delete", "key": "word"}])
    assert failed.status_code == 409, failed.text
    error = failed.json()
    assert error["code"] == "txn_failed" and "op 1 (incr 'word')" in error["message"]
    assert "nothing of the transaction was applied" in error["message"]
    assert httpx.get(f"{url}/v1/keys/a").status_code == 404
    assert httpx.get(f"{url}/v1/keys/word").json()["value"] == "abc"


def test_bad_transactions_are_refused_naming_what_is_wrong(start_server, tmp_path):
    config = tmp_path / "txn.toml"
    config.write_text("[txn]\nmax_ops = 3\n")
    url = start_server("--config", str(config)).url
    cases = [
        ({"success": [{"op": "frob", "key": "k"}]}, 400, "success[0].op"),
        ({"success": [{"op": "put", "key": "k"}]}, 400, "success[0].value"),
        ({"success": [{"op": "put", "key": "", "value": "v"}]}, 400, "success[0].key"),
        ({"compare": [{"key": "k", "target": "size", "op": "=", "value": 1}]}, 400,
         "compare[0].target"),
        ({"compare": [{"key": "k", "target": "version", "op": "~", "value": 1}]}, 400,
         "compare[0].op"),
        ({"compare": [{"key": "k", "target": "version", "op": "=", "value": "x"}]}, 400,
         "compare[0].value"),
        ({"success": {"op": "get"}}, 400, "'success' must be an array"),
        ({"nope": []}, 400, "unknown field 'nope'"),
        ({"success": [{"op": "get", "key": f"k{i}"} for i in range(4)]}, 413, "txn.max_ops"),
    ]
    for body, status, words in cases:
        r = httpx.post(f"{url}/v1/txn", json=body)
        assert r.status_code == status and words in r.json()["message"], (body, r.text)
    assert httpx.post(f"{url}/v1/txn", content=b"{").status_code == 400


def test_a_transaction_through_a_follower_is_one_replicated_entry(tmp_path):
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        r = txn(cluster.url(follower), success=[{"op": "put", "key": "x", "value": "1"},
                                                 {"op": "put", "key": "y", "value": "2"}])
        assert r.status_code == 200, r.text
        revision = r.json()["revision"]
        for node in cluster.nodes:
            entries = [httpx.get(f"{cluster.url(node)}/v1/keys/{k}").json() for k in "xy"]
            assert [e["modRevision"] for e in entries] == [revision, revision]
    finally:
        cluster.stop()


def test_the_cli_runs_a_transaction_from_stdin(start_server):
    import json
    import subprocess
    import sys

    from tests.support.node import ROOT

    url = start_server().url
    body = {"compare": [{"key": "flag", "target": "exists", "op": "=", "value": False}],
            "success": [{"op": "put", "key": "flag", "value": "on"}]}
    for expected in (0, 1):  # the second time the key exists: the failure branch ran
        done = subprocess.run([sys.executable, "-m", "raftkv", "txn", "-", "--url", url],
                              input=json.dumps(body), capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert done.returncode == expected, done.stderr
        assert json.loads(done.stdout)["succeeded"] is (expected == 0)
    bad = subprocess.run([sys.executable, "-m", "raftkv", "txn", "-", "--url", url],
                         input="{not json", capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert bad.returncode == 2 and "cannot read the transaction" in bad.stderr


def test_fields_of_the_wrong_json_type_are_a_400_not_a_500(start_server):
    url = start_server().url
    for body in ({"success": [{"op": {}, "key": "k"}]},
                 {"success": [{"op": ["put"], "key": "k", "value": "v"}]},
                 {"compare": [{"key": "k", "target": {}, "op": "=", "value": 1}]},
                 {"compare": [{"key": "k", "target": "value", "op": [], "value": "v"}]},
                 {"compare": [{"key": {}, "target": "value", "op": "=", "value": "v"}]},
                 {"success": [{"op": "put", "key": "k", "value": "v", "encoding": {}}]},
                 {"success": [{"op": "incr", "key": "k", "by": 1.5}]},
                 {"success": [{"op": "put", "key": "k", "value": "v", "ttlMs": 0}]}):
        r = httpx.post(f"{url}/v1/txn", json=body)
        assert r.status_code == 400, (body, r.text)
