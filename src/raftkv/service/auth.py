"""Authentication and authorization, shared by every front.

Tokens live in the config as SHA-256 hashes only. A presented token is hashed and
compared with ``hmac.compare_digest`` against *every* configured hash, so a known
and an unknown token cost the same work. Each token has a role (read < write <
admin) and key prefixes it may touch, like etcd's roles on key ranges. A token may
instead (or also) name a client certificate: a connection whose verified certificate
carries that name is that principal without sending a token (``for_certificate``).

The verdict for a token seen recently - principal or refusal alike - is kept in a
bounded table, so a client sending the same token on every request pays for one
hash, not one per request. Known and unknown tokens still cost the same: both are
hashed and compared the first time, both are a table lookup after that.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

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
    # an admin that sees every key: no per-command checks (computed, for the hot paths)
    unrestricted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unrestricted",
                           self.role is Role.ADMIN and b"" in self.prefixes)

    def may_read(self, key: bytes) -> bool:
        return key.startswith(self.prefixes)

    def may_write(self, key: bytes) -> bool:
        return self.role >= Role.WRITE and self.may_read(key)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def sees_everything(self) -> bool:
        return b"" in self.prefixes


# Who a TLS connection's verified client certificate says it is (None: no one known).
Identify: TypeAlias = "Callable[[asyncio.BaseTransport], Principal | None]"

OPEN = Principal("anonymous", Role.ADMIN, (b"",))  # what everyone is when auth is off


class Authenticator:
    VERDICTS_KEPT = 4096

    def __init__(self, enabled: bool, tokens: Sequence[TokenSpec]) -> None:
        self.enabled = enabled
        principals = [(t, Principal(t.name, Role[t.role.upper()],
                                    tuple(p.encode() for p in t.prefixes))) for t in tokens]
        self._tokens = [(bytes.fromhex(t.sha256), principal)
                        for t, principal in principals if t.sha256]
        self._certificates = {t.certificate: principal
                              for t, principal in principals if t.certificate}
        self._verdicts: dict[bytes, Principal | None] = {}

    def authenticate(self, token: bytes) -> Principal | None:
        """The principal of ``token``, or None. Same work whatever the token."""
        try:
            return self._verdicts[token]
        except KeyError:
            pass
        found = self._verify(token)
        if len(self._verdicts) >= self.VERDICTS_KEPT:
            self._verdicts.clear()  # a flood of fresh guesses: start over, stay bounded
        self._verdicts[token] = found
        return found

    def for_certificate(self, names: Sequence[str]) -> Principal | None:
        """The principal a verified client certificate stands for: the first of its
        ``names`` (``tls.certificate_names``) that a token names as ``certificate``."""
        for name in names:
            principal = self._certificates.get(name)
            if principal is not None:
                return principal
        return None

    def _verify(self, token: bytes) -> Principal | None:
        digest = hashlib.sha256(token).digest()
        found = None
        for expected, principal in self._tokens:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found
