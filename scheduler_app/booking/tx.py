"""The one door of every change to a slot or a booking: ``Tx`` and ``transaction``.

Every change (book, hold, release, cancel, reschedule, and the rep's closures
and extra slots) is a function of a ``Tx`` run by ``transaction``. It opens the
write transaction, runs the change in a savepoint, and in the same transaction
writes what the change owes: the change feed (``feed.record``) and the outbox
(``notify.outbox.enqueue``), and the Idempotency-Key's stored answer. A refused
change (a ``ClientError``) leaves nothing behind but that stored answer
(the key's types and table rules: ``idempotency.py``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import anyio
import peewee

from .. import feed, group_commit, idempotency
from ..availability import SlotRow
from ..db import database, session, writing
from ..errors import ClientError
from ..feed import SlotChange
from ..idempotency import Answer, IdempotencyKey
from ..models import to_db_time
from ..notify import outbox
from ..notify.outbox import BookingEvent
from ..settings import Settings
from ..tokens import new_token

T = TypeVar("T")


@dataclass
class Tx:
    """One change in progress: what it did, for the feed and the outbox."""

    settings: Settings
    now: datetime  # aware
    key: IdempotencyKey | None = None
    slot_changes: list[SlotChange] = field(default_factory=list)
    events: list[BookingEvent] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def new_token(self) -> str:
        """A secret token for what this change creates (a booking's, a hold's).

        With an Idempotency-Key it is derived from the key, so that a replay
        can answer the same token without the token ever being stored.
        """
        token = self.key.token(len(self.tokens)) if self.key else new_token()
        self.tokens.append(token)
        return token

    @property
    def db_now(self) -> datetime:
        return to_db_time(self.now)

    def slot_changed(self, slot: SlotRow, state: str) -> None:
        self.slot_changes.append(SlotChange(slot.id, slot.start_time, slot.end_time, state))

    def booking_changed(self, name: str, booking_id: int) -> None:
        self.events.append(BookingEvent(name, booking_id))


def transaction(settings: Settings, now: datetime, change: Callable[[Tx], T],
                key: IdempotencyKey | None = None) -> T | Answer:
    """Run ``change(tx)`` as one transaction, with the feed and outbox rows it owes.

    With a ``key`` the result is an ``Answer``: the stored one when the key was
    seen with the same body in the last 24 hours (``replayed``), else the new
    one, stored with the change. A ``ClientError`` is stored too, then raised;
    anything else (a 5xx) rolls the key back with the change, so a retry runs again.
    """
    if key is None and isinstance(database.obj, peewee.PostgresqlDatabase):
        with session(), _committed_by_the_feed():
            return _in_transaction(settings, now, change, None, commit=True).result()
    with writing(), session(), _write_transaction():
        outcome = _in_transaction(settings, now, change, key)
    return outcome.result()


async def transaction_async(settings: Settings, now: datetime, change: Callable[[Tx], T],
                            key: IdempotencyKey | None = None) -> T | Answer:
    """``transaction``, from the event loop, which it never blocks: on SQLite the
    change joins the process's writer thread, which commits the changes waiting
    together (``group_commit``); on PostgreSQL it runs in the thread pool."""
    if not isinstance(database.obj, peewee.SqliteDatabase):
        return await anyio.to_thread.run_sync(transaction, settings, now, change, key)
    outcome = await group_commit.writer.run(lambda: _in_transaction(settings, now, change, key))
    return outcome.result()


@dataclass(frozen=True)
class _Outcome:
    """What a change came to: its result, or the refusal to raise once committed
    (with a key the refusal is stored, so it must commit)."""

    value: object = None
    refused: ClientError | None = None

    def result(self):
        if self.refused is not None:
            raise self.refused
        return self.value


def _in_transaction(settings: Settings, now: datetime, change: Callable[[Tx], T],
                    key: IdempotencyKey | None, commit: bool = False) -> _Outcome:
    """Inside the write transaction: the key's claim, the change in a savepoint
    with its feed and outbox rows, the key's answer. ``commit`` (PostgreSQL, no
    key): the feed's rows go last, with the COMMIT (``_committed_by_the_feed``)."""
    if key is not None:
        stored = idempotency.claim(key, now)
        if stored is not None:
            return _Outcome(stored)
    tx = Tx(settings, now, key)
    try:
        with _savepoint(key):  # a refused change leaves nothing
            result = change(tx)
            if commit:
                outbox.enqueue(tx.events, settings, now)
                feed.record_and_commit(tx.slot_changes, now)
                return _Outcome(result)
            feed.record(tx.slot_changes, now)
            outbox.enqueue(tx.events, settings, now)
    except ClientError as exc:
        if key is None:
            raise
        idempotency.store(key, Answer(exc.status, _detail(exc)), [])
        return _Outcome(refused=exc)
    if key is not None:
        result = key.render(result)
        idempotency.store(key, result, tx.tokens)
    return _Outcome(result)


def _savepoint(key: IdempotencyKey | None) -> contextlib.AbstractContextManager:
    """A savepoint around the change, where a refusal must undo the change but
    not the transaction: with a key (its stored answer commits) and on SQLite
    (``group_commit`` shares one transaction between changes). Otherwise, on
    PostgreSQL, the refusal rolls the whole transaction back: two round trips saved."""
    if key is None and not isinstance(database.obj, peewee.SqliteDatabase):
        return contextlib.nullcontext()
    return database.atomic()


@contextlib.contextmanager
def _committed_by_the_feed() -> Iterator[None]:
    """PostgreSQL: BEGIN with the change's first statement, and no COMMIT here: the
    change's last statement sends it (``feed.record_and_commit``). An exception
    rolls back. Peewee counts it as a transaction, so an ``atomic()`` inside is a
    savepoint."""
    database.obj.begin_with_next_statement()
    database.push_transaction(_COMMITTED_BY_THE_FEED)
    try:
        yield
    except BaseException:
        with contextlib.suppress(peewee.PeeweeException):
            database.rollback()  # a failed connection has nothing to roll back
        raise
    finally:
        database.pop_transaction()


_COMMITTED_BY_THE_FEED = object()


@contextlib.contextmanager
def _write_transaction() -> Iterator[None]:
    if isinstance(database.obj, peewee.SqliteDatabase):
        # Take the write lock up front: a read-then-write transaction that
        # started as a reader fails with "database is locked" when another
        # process commits in between; BEGIN IMMEDIATE waits (busy timeout).
        with database.atomic("IMMEDIATE"):
            yield
    else:
        with database.atomic():
            yield


def _detail(exc: ClientError) -> bytes:
    return json.dumps({"detail": str(exc)}, separators=(",", ":")).encode()
