"""GET /v1/watch against real nodes: every change to a key or prefix, in revision order,
of every kind (put, delete, expiry, typed writes over RESP, flush); resumable with
Last-Event-ID without a gap or a repeat; progress on idle; an explicit ``compacted``
event when the history is gone; a slow client cut with where to resume (the server's
memory stays bounded); a linearizable start on a follower; and clear 400s."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
import redis

from tests.support.cluster import Cluster
from tests.support.sse import EventStream


def put(url: str, key: str, value: str, **params: object) -> int:
    r = httpx.put(f"{url}/v1/keys/{key}", json={"value": value}, params=params, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()["modRevision"]


def test_a_prefix_watch_sees_every_kind_of_change_in_order_and_nothing_else(start_server):
    node = start_server(resp=True)
    url = node.url
    first = put(url, "app/a", "1")
    r = redis.Redis(port=node.resp_port)
    with EventStream(f"{url}/v1/watch?prefix=app/&fromRevision={first}") as stream:
        put(url, "other", "x")
        put(url, "app/b", "2")
        httpx.delete(f"{url}/v1/keys/app/a", timeout=5)
        r.rpush("app/list", "x", "y")
        r.set("app/short", "v", px=100)
        time.sleep(0.6)  # the expiry cycle deletes it
        r.flushdb()
        events = stream.take(7)
    r.close()
    assert [(e.name, e.data.get("key")) for e in events] == [
        ("put", "app/a"), ("put", "app/b"), ("delete", "app/a"), ("typed", "app/list"),
        ("put", "app/short"), ("expire", "app/short"), ("flush", None)]
    assert events[0].data["value"] == "1" and events[3].data["op"] == "rpush"
    revisions = [e.id for e in events]
    assert revisions == sorted(revisions) and revisions[0] == first
    assert all(e.id == e.data["revision"] for e in events)


def test_last_event_id_resumes_without_a_gap_or_a_repeat(start_server):
    url = start_server().url
    with EventStream(f"{url}/v1/watch?key=counter") as stream:
        assert stream.next().name == "progress"
        for i in range(5):
            put(url, "counter", str(i))
        seen = stream.take(3)
    for i in range(5, 8):
        put(url, "counter", str(i))
    with EventStream(f"{url}/v1/watch?key=counter",
                     headers={"Last-Event-ID": str(seen[-1].id)}) as resumed:
        rest = resumed.take(5)
    values = [e.data["value"] for e in seen + rest]
    assert values == [str(i) for i in range(8)]


def test_an_idle_watch_gets_progress_events_naming_the_current_revision(start_server):
    url = start_server().url
    revision = put(url, "elsewhere", "1")
    with EventStream(f"{url}/v1/watch?prefix=quiet/&progressMs=200") as stream:
        started = stream.next()
        assert started.name == "progress" and started.data["revision"] >= revision
        later = put(url, "elsewhere", "2")
        progress = stream.next(5)
        while progress.data["revision"] < later:
            progress = stream.next(5)
        assert progress.name == "progress" and progress.id == progress.data["revision"]


def test_a_watch_older_than_the_history_gets_an_explicit_compacted_event(start_server, tmp_path):
    config = tmp_path / "small-history.toml"
    config.write_text("[history]\nmax_events = 50\n")
    url = start_server("--config", str(config)).url
    for i in range(60):
        put(url, f"k{i}", "v")
    with EventStream(f"{url}/v1/watch?prefix=k&fromRevision=2") as stream:
        event = stream.take(1)[0]
        assert stream.ended.wait(5)
    assert event.name == "compacted"
    assert event.data["compactRevision"] >= 10 and event.data["revision"] == 60
    # from the revision it names, the watch works
    with EventStream(f"{url}/v1/watch?prefix=k&fromRevision={event.data['revision']}"
                     ) as again:
        assert again.take(1)[0].data == {"revision": 60, "kind": "put", "key": "k59",
                                         "value": "v", "createRevision": 60, "version": 1}


def test_a_client_that_does_not_read_is_cut_with_where_to_resume(start_server, tmp_path):
    """The server holds at most ``watch_buffer_bytes`` for a watcher that does not read;
    then it says where to resume, and resuming there loses nothing."""
    config = tmp_path / "small-buffer.toml"
    config.write_text("[http]\nwatch_buffer_bytes = 65536\n")
    url = start_server("--config", str(config)).url
    port = int(url.rsplit(":", 1)[1])
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /v1/watch?prefix=big/ HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    value = "x" * 20_000
    written = [put(url, f"big/{i}", value) for i in range(150)]  # 3 MB, unread
    slow.settimeout(10)
    received = b""
    while not received.endswith(b"0\r\n\r\n"):
        chunk = slow.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    slow.close()
    assert b"event: cut" in received
    cut = received[received.index(b"event: cut"):]
    resume_after = int(cut.split(b'"resumeAfter":', 1)[1].split(b",", 1)[0])
    delivered = received.count(b"event: put")
    assert 0 < delivered < 150 and resume_after == written[delivered - 1]
    with EventStream(f"{url}/v1/watch?prefix=big/",
                     headers={"Last-Event-ID": str(resume_after)}) as resumed:
        rest = resumed.take(150 - delivered, timeout_s=30)
    assert [e.id for e in rest] == written[delivered:]


@pytest.mark.parametrize("query, headers, message", [
    ("key=a&prefix=b", {}, "exactly one"),
    ("", {}, "exactly one"),
    ("prefix=a&fromRevision=0", {}, "fromRevision"),
    ("prefix=a", {"Last-Event-ID": "seven"}, "Last-Event-ID"),
    ("prefix=a&progressMs=5", {}, "progressMs"),
])
def test_bad_watch_requests_are_a_400_naming_the_problem(start_server, query, headers, message):
    url = start_server().url
    r = httpx.get(f"{url}/v1/watch?{query}", headers=headers, timeout=5)
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_a_watch_on_a_follower_starts_after_every_completed_write(tmp_path):
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers()[0]
        revision = put(cluster.url(leader), "seen", "1")
        with EventStream(f"{cluster.url(follower)}/v1/watch?prefix=seen") as stream:
            start = stream.next()
            assert start.name == "progress" and start.data["revision"] >= revision
            later = put(cluster.url(leader), "seen", "2")
            event = stream.take(1)[0]
        assert event.id == later and event.data["value"] == "2"
    finally:
        cluster.stop()
