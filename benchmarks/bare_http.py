"""The floor under raftkv's HTTP front: an ``asyncio.Protocol`` on uvloop that parses
each request with httptools and answers it with a fixed 200 as large as raftkv's
reply to ``GET /v1/keys/{key}``. No routing, storage, middleware or logging: what any
Python HTTP front costs on this machine before it does anything (ARCHITECTURE.md,
rule 7). The HTTP suite runs it in turns with raftkv, so raftkv's GET figure can be
read against what the machine allows in the same minute.

    python -m benchmarks.bare_http PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop

_BODY = (b'{"ok":true,"key":"bench0000","value":"value","version":1,"createRevision":1,'
         b'"modRevision":1,"expiresAtMs":null}')
REPLY = (b"HTTP/1.1 200 OK\r\nDate: Wed, 02 Dec 2026 00:00:00 GMT\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\nETag: \"1\"\r\n"
         b"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
         b"X-Request-ID: 0123abcd-1\r\n\r\n%s" % (len(_BODY), _BODY))


class _Floor(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(REPLY)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Floor, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m benchmarks.bare_http PORT", file=sys.stderr)
        return 2
    uvloop.run(_serve(int(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
