"""What the client raises: one class per answer a program handles differently."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """The server said no (``status`` and ``code`` as it sent them), or could not be
    reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotFound(ClientError):
    """No such lease (or it ran out), route or holder."""


class ConditionFailed(ClientError):
    """A compare-and-swap, create-only or id-in-use condition did not hold."""


class WaitTimedOut(ClientError):
    """A lock or campaign waited as long as it was allowed to; nothing is held."""


class Unavailable(ClientError):
    """No node could serve it (no leader, or every node unreachable); not applied."""


class CommitTimeout(ClientError):
    """The write's outcome is unknown (retries with its idempotency key are safe)."""


class Compacted(ClientError):
    """A watch asked for changes older than the server's history: read again, then
    watch from ``revision + 1``."""

    def __init__(self, message: str, revision: int) -> None:
        super().__init__(message, 0, "compacted")
        self.revision = revision


class LeaseLost(ClientError):
    """A lease kept alive in the background ran out (the server no longer knows it):
    whatever was held on it is gone."""


_BY_STATUS: dict[int, type[ClientError]] = {404: NotFound, 408: WaitTimedOut,
                                            412: ConditionFailed, 503: Unavailable,
                                            504: CommitTimeout}


def error_for(status: int, body: Any) -> ClientError:
    message = body.get("message", "") if isinstance(body, dict) else str(body)
    code = body.get("code", "") if isinstance(body, dict) else ""
    return _BY_STATUS.get(status, ClientError)(f"{status} {code}: {message}", status, code)
