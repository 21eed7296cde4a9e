"""Test-only switches: crash points and planted bugs, off unless asked for.

``RAFTKV_FAILPOINTS`` (or :func:`configure`) holds a comma-separated list:

* ``NAME=exit`` - :func:`hit` at NAME kills the process with ``os._exit(137)``,
  simulating ``kill -9`` exactly at a persistence boundary. ``NAME=exit@N`` exits
  on the N-th hit instead of the first.
* ``NAME=eio`` / ``NAME=eio@N`` - :func:`hit` at NAME raises ``OSError(EIO)`` (on the
  N-th hit and after): a disk that fails, which must stop the node.
* ``NAME=on`` - :func:`enabled` returns True: a deliberately planted bug (negative
  control) that the tests must catch, e.g. ``ack_before_fsync``.

Production never sets these; with none set each check is one dict lookup.
"""

from __future__ import annotations

import errno
import os

_points: dict[str, str] = {}
_hits: dict[str, int] = {}


def configure(spec: str) -> None:
    _points.clear()
    _hits.clear()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        _points[name] = action or "on"


def hit(name: str) -> None:
    action = _points.get(name)
    if action is None or action == "on":
        return
    _hits[name] = count = _hits.get(name, 0) + 1
    kind, _, nth = action.partition("@")
    if count < int(nth or 1):
        return
    if kind == "exit":
        os._exit(137)
    if kind == "eio":
        raise OSError(errno.EIO, f"planted I/O error at {name}")


def enabled(name: str) -> bool:
    return _points.get(name) == "on"


configure(os.environ.get("RAFTKV_FAILPOINTS", ""))
