"""Secret tokens (a booking's, a hold's): how they are made and how they are stored.

A token is 32 random bytes, URL-safe; the tables keep only its SHA-256, so a
copy of the database opens nothing. Compare hashes with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import secrets


def token_hash(token: str) -> str:
    """How a secret token is stored: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
