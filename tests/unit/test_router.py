"""The router's templates: one segment, the rest of the path, and one segment before a
fixed ending (tried before the bare one-segment template of the same prefix)."""

from __future__ import annotations

import pytest

from raftkv.fronts.http.errors import HttpError
from raftkv.fronts.http.messages import Request, Response
from raftkv.fronts.http.router import Router


def routed() -> Router:
    router = Router()
    for template in ("/v1/leases/{id}", "/v1/leases/{id}/keepalive", "/v1/keys/{key...}",
                     "/kv/{key}"):
        router.add("POST", template, lambda r, t=template: Response(
            200, f"{t} {r.params}".encode()))
    return router


@pytest.mark.parametrize("path, expected", [
    ("/v1/leases/12", "/v1/leases/{id} {'id': b'12'}"),
    ("/v1/leases/12/keepalive", "/v1/leases/{id}/keepalive {'id': b'12'}"),
    ("/v1/keys/a/b/keepalive", "/v1/keys/{key...} {'key': b'a/b/keepalive'}"),
    ("/v1/keys/", "/v1/keys/{key...} {'key': b''}"),  # (the handler refuses the empty key)
    ("/kv/x", "/kv/{key} {'key': b'x'}"),
])
def test_each_path_reaches_its_template(path, expected):
    reply = routed().dispatch(Request(b"POST", path.encode(), b"", {}))
    assert isinstance(reply, Response) and reply.body.decode() == expected


@pytest.mark.parametrize("path", ["/v1/leases/12/other", "/v1/leases//keepalive", "/kv/a/b"])
def test_paths_that_fit_no_template_are_404(path):
    with pytest.raises(HttpError) as refused:
        routed().dispatch(Request(b"POST", path.encode(), b"", {}))
    assert refused.value.status == 404
