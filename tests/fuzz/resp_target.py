"""An atheris fuzz target: arbitrary bytes, cut into arbitrary chunks, fed to a RESP
connection of a real in-process node (command table, service, state machine, WAL on
a CrashFS). What must hold for every input:

* nothing raises out of the connection or out of a callback on the loop, and no
  handler fails (the connection answers a failed handler with ``ERR internal
  error`` and logs it: the log is checked);
* everything written back is a well-formed RESP stream (RESP2 or, after HELLO 3, RESP3).

Run by ``tests/property/test_resp_fuzz.py`` with a fixed seed and a bounded number
of runs. By hand (new inputs go to the first folder, the seeds stay as they are):
``python -m tests.fuzz.resp_target -max_total_time=600 /tmp/resp-corpus tests/fuzz/corpus``.

It imports raftkv's Python source, which atheris instruments to guide the search;
``RAFTKV_FUZZ_COMPILED=1`` runs the mypyc-compiled modules instead (unguided).
``RAFTKV_FUZZ_MUTANT=untranslated-errors`` plants a bug (the request reader parses a
declared length with a bare ``int()``, so a malformed one escapes as ValueError instead
of a protocol error) so the test can prove the fuzzer finds one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import atheris
import hiredis  # (only to check that the replies are well-formed RESP)

from tests.support.crashfs import CrashFS
from tests.support.source_only import use_source

COMPILED = os.environ.get("RAFTKV_FUZZ_COMPILED") == "1"
if not COMPILED:
    use_source()  # bytecode that atheris can instrument, not the compiled modules
with atheris.instrument_imports(include=["raftkv"]):
    from raftkv.clock import ManualClock
    from raftkv.config import load
    from raftkv.fronts.resp import protocol, reader
    from raftkv.fronts.resp.pubsub import PubSub
    from raftkv.fronts.resp.server import Connection, RespServer
    from raftkv.replication.local import LocalReplicator
    from raftkv.replication.replay import recover
    from raftkv.service.auth import Authenticator
    from raftkv.service.service import KVService, ServiceLimits
    from raftkv.storage.wal import FsyncPolicy

MUTANT = os.environ.get("RAFTKV_FUZZ_MUTANT", "")


if MUTANT == "untranslated-errors":
    reader.parse_length = int  # type: ignore[assignment]
elif MUTANT:
    sys.exit(f"unknown RAFTKV_FUZZ_MUTANT {MUTANT!r}")


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        if self.closed:
            raise AssertionError("write after close")
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class FailOnError(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            raise AssertionError(f"logged an error: {record.getMessage()}\n"
                                 f"{logging.Formatter().formatException(record.exc_info)}"
                                 if record.exc_info else record.getMessage())


class Node:
    def __init__(self) -> None:
        resp_log = logging.getLogger("raftkv.resp")
        resp_log.addHandler(FailOnError())
        resp_log.propagate = False
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        self.errors: list[Any] = []
        self.server = self.loop.run_until_complete(self._start())

    @staticmethod
    async def _start() -> RespServer:
        fs = CrashFS()
        replicator = LocalReplicator(recover(fs, "/data"), FsyncPolicy.NO)
        service = KVService(replicator, ManualClock(), ServiceLimits())
        return RespServer(service, load({}, env={}), Authenticator(False, ()), PubSub())

    def _loop_error(self, _: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def session(self, chunks: list[bytes]) -> bytes:
        out = self.loop.run_until_complete(self._session(chunks))
        if self.errors:
            raise AssertionError(f"an error escaped to the loop: {self.errors[0]}")
        return out

    async def _session(self, chunks: list[bytes]) -> bytes:
        conn = Connection(self.server)
        transport = Transport()
        conn.connection_made(transport)
        for chunk in chunks:
            conn.data_received(chunk)
            for _ in range(100):  # let writes and the replies queued behind them finish
                if not conn._queue:
                    break
                await asyncio.sleep(0)
            else:
                raise AssertionError("replies still pending after 100 loop turns")
        conn.connection_lost(None)
        return bytes(transport.out)


NODE: Node | None = None


def check_stream(out: bytes) -> None:
    reader = hiredis.Reader()
    reader.feed(out)
    try:
        while reader.gets() is not False:
            pass
    except hiredis.ProtocolError as exc:
        raise AssertionError(f"malformed reply stream: {exc}: {out[-80:]!r}") from None
    if reader.has_data():
        raise AssertionError(f"reply stream ends mid-reply: {out[-80:]!r}")


def one_input(data: bytes) -> None:
    global NODE
    if NODE is None:
        NODE = Node()
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 3), 0, 1 << 16))
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    chunks, last = [], 0
    for cut in [*cuts, len(stream)]:
        cut = min(cut, len(stream))
        if cut > last:
            chunks.append(stream[last:cut])
            last = cut
    check_stream(NODE.session(chunks))


def main() -> None:
    if COMPILED and not all(str(m.__file__).endswith(".so") for m in (protocol, reader)):
        sys.exit(f"RAFTKV_FUZZ_COMPILED: {protocol.__file__} or {reader.__file__} is not "
                 f"compiled (see setup.py)")
    print(f"fuzzing {'compiled modules' if COMPILED else 'the Python source'}: "
          f"{protocol.__file__}, {reader.__file__}", flush=True)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
