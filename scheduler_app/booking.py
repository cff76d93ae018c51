"""Booking rules, as plain functions: list the free slots, book one.

They raise the service's own exceptions (``errors.py``); the HTTP layer maps
them to status codes. ``now`` is passed in, so the rules are testable at any time.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import NamedTuple

import peewee

from .db import database, reading, session, writing
from .errors import SlotAlreadyBooked, SlotAlreadyStarted, SlotNotFound
from .models import MAX_SLOT_ID, TimeSlot, to_db_time


class SlotRow(NamedTuple):
    """A slot as read from the table; timestamps are naive UTC."""

    id: int
    start_time: datetime
    end_time: datetime
    is_booked: bool
    booked_by_email: str | None


_COLUMNS = (
    TimeSlot.id,
    TimeSlot.start_time,
    TimeSlot.end_time,
    TimeSlot.is_booked,
    TimeSlot.booked_by_email,
)


def is_free(now: datetime) -> peewee.Expression:
    """The rule of a free slot: not booked and not yet started at ``now``.

    (``~is_booked``, not ``is_booked == False``: SQLite matches the partial
    index's ``WHERE NOT is_booked`` only literally.)
    """
    return ~TimeSlot.is_booked & (TimeSlot.start_time > to_db_time(now))


def free_slots(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[SlotRow]:
    """The slots not booked and not yet started at ``now``, earliest first.

    ``start`` and ``end`` (aware) keep those starting in ``[start, end)``;
    ``limit`` keeps the first ``limit``.
    """
    return [free_slot(row) for row in free_slot_rows(now, start, end, limit)]


def free_slot(row: tuple) -> SlotRow:
    """A row of ``free_slot_rows`` as a slot."""
    slot_id, starts, ends = row
    return SlotRow(slot_id, as_datetime(starts), as_datetime(ends), False, None)


def free_slot_rows(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[tuple]:
    """``free_slots`` as the driver returns them: ``(id, start_time, end_time)``,
    naive UTC, as datetimes (PostgreSQL) or ISO text (SQLite).

    The fast path of GET /availability: the SQL is compiled once per shape of
    query, and no row goes through Peewee's per-field conversion.
    """
    sql = _statement("free", start is not None, end is not None, limit is not None)
    params = [to_db_time(now)]
    params += [to_db_time(moment) for moment in (start, end) if moment is not None]
    params += [limit] if limit is not None else []
    with reading(), session():
        return database.execute_sql(sql, params).fetchall()


def free_slots_query(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> peewee.Select:
    """The query of ``free_slots``, unexecuted (``EXPLAIN`` shows its plan).

    It reads the partial index of free slots (``models.FREE_SLOTS_INDEX``) from
    the first one after ``now``, so its cost follows the slots returned, not
    the booked or past rows in the table. Its parameters are, in order:
    ``now``, ``start``, ``end``, ``limit``.
    """
    condition = is_free(now)
    if start is not None:
        condition &= TimeSlot.start_time >= to_db_time(start)
    if end is not None:
        condition &= TimeSlot.start_time < to_db_time(end)
    query = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
        .where(condition)
        .order_by(TimeSlot.start_time)
    )
    if limit is not None:
        query = query.limit(limit)
    return query.tuples()


def as_datetime(value: datetime | str) -> datetime:
    """A timestamp as a driver returns it (SQLite: ISO text) as a datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def book_slot(slot_id: int, email: str, now: datetime) -> SlotRow:
    """Book slot ``slot_id`` for ``email``; return the booked slot.

    Raises ``SlotNotFound``, ``SlotAlreadyBooked`` or ``SlotAlreadyStarted``.
    The read gives the precise error; the UPDATE is guarded by
    ``is_booked = false``, so of any number of concurrent callers exactly one
    updates the row and the others get ``SlotAlreadyBooked``.
    """
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)  # no row can have it; don't send it to the database
    with writing(), session():
        row = database.execute_sql(_statement("slot"), [slot_id]).fetchone()
        if row is None:
            raise SlotNotFound(slot_id)
        slot = SlotRow(row[0], as_datetime(row[1]), as_datetime(row[2]), bool(row[3]), row[4])
        if slot.is_booked:
            raise SlotAlreadyBooked(slot_id)
        if slot.start_time <= to_db_time(now):
            raise SlotAlreadyStarted(slot_id)
        updated = database.execute_sql(_statement("book"), [True, email, slot_id, False]).rowcount
    if updated != 1:
        raise SlotAlreadyBooked(slot_id)
    return slot._replace(is_booked=True, booked_by_email=email)


# The module's statements, built by Peewee, compiled once per database class and
# shape: compiling costs more than running them (0.3-0.5 ms against 0.05 ms for
# SQLite to run the SELECT of 16 slots). Each is run with its parameters in the
# order its comment gives, which is the order of Peewee's placeholders.
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_STATEMENTS = {
    # now[, start][, end][, limit]
    "free": lambda has_start, has_end, has_limit: free_slots_query(
        _ANY_TIME,
        _ANY_TIME if has_start else None,
        _ANY_TIME if has_end else None,
        1 if has_limit else None,
    ),
    # id
    "slot": lambda: TimeSlot.select(*_COLUMNS).where(TimeSlot.id == 0),
    # True, email, id, False
    "book": lambda: TimeSlot.update(is_booked=True, booked_by_email="")
    .where((TimeSlot.id == 0) & (TimeSlot.is_booked == False)),  # noqa: E712
}


def _statement(name: str, *shape: bool) -> str:
    return _compiled(type(database.obj), name, shape)


@functools.cache
def _compiled(kind: type, name: str, shape: tuple[bool, ...]) -> str:
    return _STATEMENTS[name](*shape).sql()[0]
