"""The router, middleware and handlers in-process, for every route and error, plus a
Hypothesis state machine of the keys API against a dict model."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.support.inprocess import InProcessApi


def run(coro):
    return asyncio.run(coro)


ROUTE_CASES = [
    ("GET", "/v1/keys/missing", None, {}, 404, "not_found"),
    ("PUT", "/v1/keys/k", {"value": "v", "nope": 1}, {}, 400, "invalid_argument"),
    ("PUT", "/v1/keys/k", b"text", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("PUT", "/v1/keys/k", {"value": "v"}, {"If-Match": '"999"'}, 412, "condition_failed"),
    ("PUT", "/v1/keys/k", {"value": "v"}, {"If-Match": "x", "If-None-Match": "*"}, 400,
     "invalid_argument"),
    ("DELETE", "/v1/keys/missing", None, {}, 404, "not_found"),
    ("POST", "/v1/keys/k", None, {}, 405, "method_not_allowed"),
    ("GET", "/nowhere", None, {}, 404, "not_found"),
    ("GET", "/v1/keys?limit=x", None, {}, 400, "invalid_argument"),
    ("GET", "/get", None, {}, 400, "invalid_argument"),
    ("PUT", "/set", {"key": "", "value": "x"}, {}, 400, "invalid_argument"),
    ("POST", "/kv", {"key": "a"}, {}, 400, "invalid_argument"),
    ("GET", "/kv/missing", None, {}, 404, "not_found"),
    ("DELETE", "/delete?key=missing", None, {}, 404, "not_found"),
    ("PUT", "/v1/keys/k", {"value": "v", "ttlMs": 0}, {}, 400, "invalid_argument"),
    ("DELETE", "/v1/keys/k", None, {"If-Match": '"16108430711202353113"'}, 400,
     "invalid_argument"),  # found by schemathesis: a revision past 64 bits was a 500
    ("PUT", "/v1/keys/k", {"value": "", "encoding": {}}, {}, 400,
     "invalid_argument"),  # found by schemathesis: compiled, a non-string encoding was a 500
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), ROUTE_CASES)
def test_every_error_route_in_process(method, path, body, headers, status, code):
    async def go():
        api = InProcessApi()
        try:
            return await api.call(method, path, body, headers)
        finally:
            await api.close()

    got_status, content, response_headers = run(go())
    assert got_status == status, content
    assert content["ok"] is False and content["code"] == code and content["requestId"]
    assert response_headers[b"X-Content-Type-Options"] == b"nosniff"


def test_a_handler_crash_is_a_generic_500_logged_once():
    async def go():
        api = InProcessApi()

        class BrokenClock:  # any bug below a handler: the service's clock raises
            def now_ms(self) -> int:
                raise RuntimeError("planted")

            def monotonic_s(self) -> float:
                return 0.0

        api.service.clock = BrokenClock()
        try:
            status, content, _ = await api.call("GET", "/v1/keys/k")
        finally:
            await api.close()
        return status, content, api.log.getvalue()

    status, content, _ = run(go())
    assert status == 500 and content["message"] == "internal error"


def test_ttl_uses_the_injected_clock():
    async def go():
        api = InProcessApi()
        try:
            await api.call("PUT", "/v1/keys/t", {"value": "v", "ttlMs": 1000})
            before = (await api.call("GET", "/v1/keys/t"))[0]
            api.clock.advance_ms(1000)
            after = (await api.call("GET", "/v1/keys/t"))[0]
            return before, after
        finally:
            await api.close()

    assert run(go()) == (200, 404)


class KeysApiModel(RuleBasedStateMachine):
    """PUT / DELETE / GET / CAS / list against a dict, through the real app."""

    @initialize()
    def start(self):
        self.loop = asyncio.new_event_loop()
        self.api = self.loop.run_until_complete(self._make())
        self.model: dict[str, tuple[str, int]] = {}

    @staticmethod
    async def _make():
        return InProcessApi()  # the WAL writer needs a running loop

    def call(self, *args, **kwargs):
        return self.loop.run_until_complete(self.api.call(*args, **kwargs))

    def teardown(self):
        self.loop.run_until_complete(self.api.close())
        self.loop.close()

    keys = st.sampled_from(["a", "b", "dir/x", "dir/y", "café"])

    @rule(key=keys, value=st.text(max_size=5))
    def put(self, key, value):
        status, body, _ = self.call("PUT", f"/v1/keys/{key}".replace("é", "%C3%A9"),
                                    {"value": value})
        assert status == (200 if key in self.model else 201)
        self.model[key] = (value, body["modRevision"])

    @rule(key=keys, stale=st.booleans())
    def compare_and_swap(self, key, stale):
        rev = max(0, self.model.get(key, ("", 0))[1] - (1 if stale else 0))
        status, body, _ = self.call("PUT", f"/v1/keys/{key}".replace("é", "%C3%A9"),
                                    {"value": "cas"}, {"If-Match": f'"{rev}"'})
        if key in self.model and not stale:
            assert status == 200
            self.model[key] = ("cas", body["modRevision"])
        else:
            assert status == 412

    @rule(key=keys)
    def delete(self, key):
        status, _, _ = self.call("DELETE", f"/v1/keys/{key}".replace("é", "%C3%A9"))
        assert status == (204 if self.model.pop(key, None) else 404)

    @invariant()
    def reads_and_listing_match(self):
        if not hasattr(self, "model"):
            return
        for key in ["a", "b", "dir/x", "dir/y", "café"]:
            status, body, _ = self.call("GET", f"/v1/keys/{key}".replace("é", "%C3%A9"))
            if key in self.model:
                assert status == 200 and body["value"] == self.model[key][0]
            else:
                assert status == 404
        _, page, _ = self.call("GET", "/v1/keys?limit=1000")
        assert [i["key"] for i in page["items"]] == sorted(self.model, key=str.encode)


TestKeysApiModel = KeysApiModel.TestCase
TestKeysApiModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
