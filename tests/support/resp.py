"""Replies as a RESP server sent them, without redis-py's parsing of the command
(its callbacks reshape or reject some replies: COMMAND, XPENDING...)."""

from __future__ import annotations

import redis


def raw_reply(client: redis.Redis, *command: str | bytes) -> object:
    """The reply to ``command`` as sent; a Redis error raises ResponseError."""
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command(*command)
        return connection.read_response()
    finally:
        client.connection_pool.release(connection)
