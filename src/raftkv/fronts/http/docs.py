"""``GET /docs``: Swagger UI over ``/openapi.json``, served by the node itself.

The assets come from the ``swagger-ui-py`` package's copy of Swagger UI 5 (read once,
at start-up, without importing the package's Python code); nothing is fetched from a
CDN, and the page's Content-Security-Policy lets it load from this node only. "Try it
out" sends requests to the node the page came from (with a bearer token entered
under "Authorize" when auth is on).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Final

from raftkv.fronts.http.messages import Request, Response
from raftkv.fronts.http.router import Router

PAGE: Final = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>raftkv API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

INIT: Final = b"""window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  validatorUrl: null
});
"""

CSP: Final = (b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
              b"connect-src 'self'; frame-ancestors 'none'")

# The package's files the page uses, and their content types.
ASSETS: Final = {"swagger-ui.css": b"text/css; charset=utf-8",
                 "swagger-ui-bundle.js": b"text/javascript; charset=utf-8",
                 "favicon-32x32.png": b"image/png", "favicon-16x16.png": b"image/png"}

PATHS: Final = frozenset({b"/docs", *(f"/docs/{name}".encode() for name in [*ASSETS, "init.js"])})


def _static_dir() -> str:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing (a dependency of raftkv)")
    return os.path.join(next(iter(spec.submodule_search_locations)), "static")


class DocsApi:
    def __init__(self) -> None:
        static = _static_dir()
        self.files: dict[str, tuple[bytes, bytes]] = {
            "init.js": (INIT, ASSETS["swagger-ui-bundle.js"])}
        for name, content_type in ASSETS.items():
            with open(os.path.join(static, name), "rb") as f:
                self.files[name] = (f.read(), content_type)

    def register(self, router: Router) -> None:
        router.add("GET", "/docs", self.page)
        for name in self.files:
            router.add("GET", f"/docs/{name}", self.asset)

    def page(self, request: Request) -> Response:
        return Response(200, PAGE, b"text/html; charset=utf-8",
                        [(b"Content-Security-Policy", CSP)])

    def asset(self, request: Request) -> Response:
        body, content_type = self.files[request.path.rsplit(b"/", 1)[1].decode()]
        return Response(200, body, content_type)
