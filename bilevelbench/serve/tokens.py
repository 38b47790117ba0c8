"""Team tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "bbt_"


def new_token() -> str:
    """A fresh bearer token (256 random bits, URL-safe)."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256 in hex.

    A token carries 256 random bits, so a fast hash is enough: nobody can search that space, and a leaked
    database yields no usable token.
    """
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()
