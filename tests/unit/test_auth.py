"""The authenticator: hashes compared in constant time, verdicts kept in a bounded
table for known and unknown tokens alike."""

from __future__ import annotations

import hashlib

from raftkv.config import TokenSpec
from raftkv.service.auth import Authenticator, Role


def _authenticator() -> Authenticator:
    return Authenticator(True, [
        TokenSpec("reader", hashlib.sha256(b"read-token").hexdigest(), "read", ("app/",)),
        TokenSpec("admin", hashlib.sha256(b"admin-token").hexdigest(), "admin"),
    ])


def test_tokens_map_to_their_principals_and_others_to_none():
    auth = _authenticator()
    reader = auth.authenticate(b"read-token")
    assert reader is not None and reader.role is Role.READ and reader.may_read(b"app/x")
    assert not reader.may_read(b"other") and not reader.may_write(b"app/x")
    admin = auth.authenticate(b"admin-token")
    assert admin is not None and admin.is_admin and admin.sees_everything
    for wrong in (b"read-token ", b"READ-TOKEN", b"", b"admin-toke", b"x" * 1000):
        assert auth.authenticate(wrong) is None


def test_repeated_tokens_are_hashed_once_known_or_unknown(monkeypatch):
    auth = _authenticator()
    hashed = []
    verify = auth._verify
    monkeypatch.setattr(auth, "_verify", lambda t: hashed.append(t) or verify(t))
    for _ in range(3):
        assert auth.authenticate(b"read-token") is not None
        assert auth.authenticate(b"guess") is None
    assert hashed == [b"read-token", b"guess"]


def test_the_verdict_table_stays_bounded_under_a_flood_of_guesses():
    auth = _authenticator()
    for i in range(Authenticator.VERDICTS_KEPT * 3):
        assert auth.authenticate(b"guess-%d" % i) is None
        assert len(auth._verdicts) <= Authenticator.VERDICTS_KEPT
    assert auth.authenticate(b"admin-token") is not None
