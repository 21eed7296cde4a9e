"""``GET /docs`` in a real browser: headless Chromium renders Swagger UI from the
node's own assets, lists the API's operations, and requests nothing off the node."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

CHROMIUM = shutil.which("chromium")


def render(url: str, tmp_path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every URL the page asked for (its
    requests are the ones in its network isolation key; the browser's own, such as
    update checks, are not)."""
    tmp_path.mkdir(exist_ok=True)
    net_log = tmp_path / "net.json"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={net_log}",
         "--virtual-time-budget=8000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = net_log.read_text()
    try:
        events = json.loads(text)
    except json.JSONDecodeError:  # a log cut short ends without its closing brackets
        events = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [e["params"]["url"] for e in events["events"] if e["type"] == start_job
            and e.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1 ")]
    return dom.stdout, urls


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium")
def test_the_docs_page_renders_every_operation_from_the_node_alone(server, tmp_path):
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "default-src 'self'" in page.headers[
        "content-security-policy"]
    dom, urls = render(server.url + "/docs", tmp_path)
    assert 'class="swagger-ui' in dom  # Swagger UI ran
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/keys/{key}", "/v1/txn", "/v1/watch", "/v1/admin/backup"):
        assert path in spec["paths"] and f'data-path="{path}"' in dom, path
    operations = sum(len([m for m in item if m in ("get", "put", "post", "delete", "head")])
                     for item in spec["paths"].values())
    assert dom.count('class="opblock-summary-method"') == operations > 50  # every one
    # an operation opened by its link offers to send the request from the page
    link = dom.split('data-path="/health"')[1].split('href="', 1)[1].split('"', 1)[0]
    opened, _ = render(server.url + "/docs" + link, tmp_path / "opened")
    assert "execute" in opened and "Execute" in opened, link
    asked = set(urls)
    assert server.url + "/docs/swagger-ui-bundle.js" in asked  # the log sees the requests
    assert server.url + "/openapi.json" in asked
    off_node = {u for u in asked if not u.startswith(server.url + "/")}
    assert not off_node, off_node


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium")
def test_negative_control_a_page_that_loads_from_a_cdn_is_caught(tmp_path):
    import http.server
    import threading

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        '<html><body><script src="http://198.51.100.7/swagger-ui-bundle.js"></script>'
        "</body></html>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"
        _, urls = render(origin + "/index.html", tmp_path / "render")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "http://198.51.100.7/swagger-ui-bundle.js" in urls
