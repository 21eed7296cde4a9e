"""Authentication and authorization, shared by every front.

Tokens live in the config as SHA-256 hashes only. A presented token is hashed and
compared with ``hmac.compare_digest`` against *every* configured hash, so a known
and an unknown token cost the same work. Each token has a role (read < write <
admin) and key prefixes it may touch, like etcd's roles on key ranges.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from raftkv.config import TokenSpec


class Role(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    prefixes: tuple[bytes, ...]

    def may_read(self, key: bytes) -> bool:
        return any(key.startswith(p) for p in self.prefixes)

    def may_write(self, key: bytes) -> bool:
        return self.role >= Role.WRITE and self.may_read(key)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def sees_everything(self) -> bool:
        return b"" in self.prefixes


OPEN = Principal("anonymous", Role.ADMIN, (b"",))  # what everyone is when auth is off


class Authenticator:
    def __init__(self, enabled: bool, tokens: Sequence[TokenSpec]) -> None:
        self.enabled = enabled
        self._tokens = [
            (bytes.fromhex(t.sha256), Principal(t.name, Role[t.role.upper()],
                                                tuple(p.encode() for p in t.prefixes)))
            for t in tokens
        ]

    def authenticate(self, token: bytes) -> Principal | None:
        """The principal of ``token``, or None. Same work whatever the token."""
        digest = hashlib.sha256(token).digest()
        found = None
        for expected, principal in self._tokens:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found
