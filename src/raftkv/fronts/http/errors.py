"""raftkv errors -> HTTP status, in one table. Every error body has one shape:
``{"ok": false, "message": ..., "code": ..., "requestId": ...}``."""

from __future__ import annotations

import math

import orjson

from raftkv import errors
from raftkv.fronts.http.messages import Request, Response

# Most specific first: the first class the error is an instance of wins.
STATUS_BY_ERROR: tuple[tuple[type[errors.RaftKVError], int], ...] = (
    (errors.ConditionFailed, 412),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.RateLimited, 429),
    (errors.TooLarge, 413),
    (errors.MembershipRefused, 409),
    (errors.TxnFailed, 409),
    (errors.WrongType, 409),
    (errors.NotFound, 404),
    (errors.WaitTimedOut, 408),
    (errors.RequestError, 400),
    (errors.CommitTimeout, 504),
    (errors.ClusterError, 503),
    (errors.OutOfMemory, 507),
    (errors.DiskFullError, 507),
    (errors.StorageError, 500),
)


class HttpError(errors.RequestError):
    """A protocol-level refusal with its own status (404 route, 405, 415...)."""

    def __init__(self, status: int, message: str, code: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or []


def error_body(request: Request | None, message: str, code: str) -> bytes:
    return orjson.dumps({"ok": False, "message": message, "code": code,
                         "requestId": request.request_id.decode() if request else None})


def error_response(request: Request, exc: errors.RaftKVError) -> Response:
    if isinstance(exc, HttpError):
        return Response(exc.status, error_body(request, str(exc), exc.code), headers=exc.headers)
    status = next(s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)) \
        if isinstance(exc, errors.RaftKVError) else 500
    headers: list[tuple[bytes, bytes]] = []
    message = str(exc)
    if isinstance(exc, errors.Unauthenticated):
        headers.append((b"WWW-Authenticate", b'Bearer realm="raftkv"'))
    elif isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers.append((b"Retry-After", str(max(1, math.ceil(exc.retry_after_s))).encode()))
    elif status == 500:
        message = "internal error"  # details only in the log
    return Response(status, error_body(request, message, exc.code), headers=headers)
