"""Idempotency-Key (the IETF httpapi draft's semantics, as Stripe applies them).

A key is claimed inside the change's own transaction, by inserting its row
first: a concurrent request with the same key waits on that row (PostgreSQL's
unique index; SQLite's single writer) and then finds the stored answer, so it
books nothing. Answers are kept for 24 hours; 5xx answers are never stored,
because a failed change rolls its key back with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from .errors import IdempotencyKeyReused
from .models import IdempotencyKey as KeyRow
from .models import to_db_time
from .tokens import token_hash

KEPT = timedelta(hours=24)

# 1-255 printable ASCII characters, optionally in double quotes (a structured string).
_KEY = re.compile(r'^"?([\x21-\x7e][\x20-\x7e]{0,254}?)"?$')


def parse(header: str) -> str:
    """The key of an ``Idempotency-Key`` header; ``ValueError`` if malformed."""
    match = _KEY.match(header)
    if not match or not match[1].strip('"'):
        raise ValueError("must be 1-255 printable ASCII characters, quoted or not")
    return match[1]


class Answer:
    """What an idempotent request answered: replayed for a retry with its key."""

    def __init__(self, status: int, body: bytes, replayed: bool = False):
        self.status, self.body, self.replayed = status, body, replayed


class IdempotencyKey:
    """An ``Idempotency-Key`` of a request in ``scope`` (its method and path), with
    the fingerprint of its body. ``render`` turns the change's result into the
    answer stored for the key."""

    def __init__(self, scope: str, key: str, body: dict, render: Callable[[object], Answer]):
        self.scope, self.render = scope, render
        self._secret = key.encode()
        self.key = token_hash(key)  # stored hashed: the table cannot derive the tokens
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        self.fingerprint = hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()

    def token(self, index: int) -> str:
        """The ``index``-th token of the request: HMAC-SHA256 under the key itself."""
        mac = hmac.new(self._secret, f"token:{index}:{self.fingerprint}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def claim(key: IdempotencyKey, now: datetime) -> Answer | None:
    """Claim ``key`` for this transaction; or return the answer stored for it.

    Raises ``IdempotencyKeyReused`` when the key came with another request.
    """
    db_now = to_db_time(now)
    KeyRow.delete().where(KeyRow.created_at < db_now - KEPT).execute()  # purge expired keys
    inserted = (
        KeyRow.insert(scope=key.scope, key=key.key, fingerprint=key.fingerprint,
                      created_at=db_now)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    if inserted == 1:
        return None
    row = KeyRow.get((KeyRow.scope == key.scope) & (KeyRow.key == key.key))
    if row.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused()
    body = bytes(row.body)
    index = 0
    while _marker(index) in body:
        body = body.replace(_marker(index), key.token(index).encode())
        index += 1
    return Answer(row.status, body, replayed=True)


def _marker(index: int) -> bytes:
    """Where a stored answer had its ``index``-th secret token; a replay derives it again."""
    return b"\x00token%d\x00" % index


def store(key: IdempotencyKey, answer: Answer, tokens: list[str]) -> None:
    """Keep ``answer`` for ``key`` (claimed in this transaction), without its ``tokens``."""
    body = answer.body
    for index, token in enumerate(tokens):
        body = body.replace(token.encode(), _marker(index))
    KeyRow.update(status=answer.status, body=body).where(
        (KeyRow.scope == key.scope) & (KeyRow.key == key.key)).execute()
