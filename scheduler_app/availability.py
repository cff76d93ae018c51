"""The read path of GET /availability: the free slots, fast.

A free slot is open (not closed or removed by the rep: ``state``), not
booked, not held (a hold lives while ``held_until`` is after now) and starts
after the earliest bookable moment (now, or now plus the minimum notice). The
rule is ``is_free``; the booking module's guarded UPDATEs say the same in
their WHERE clauses.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import NamedTuple

import peewee

from .db import database, reading, session
from .models import CLOSED, REMOVED, TimeSlot, to_db_time


class SlotRow(NamedTuple):
    """A slot as read from the table; timestamps are naive UTC."""

    id: int
    start_time: datetime
    end_time: datetime
    is_booked: bool
    booked_by_email: str | None


def is_open() -> peewee.Expression:
    """The slot is in the rep's calendar: neither closed nor removed (the column's
    CHECK admits no other state, so this is ``state = 'open'``).

    Said as what it is not: PostgreSQL estimates ``state = 'open'`` at 0.5 % of
    the rows while the column has no statistics (just after the migration, or
    a table just filled), and then scans the table and sorts it instead of
    walking the partial index (18 ms against 0.03 ms for 16 of 100,000 slots);
    ``NOT IN`` it estimates at 99 %. Literals, not parameters, so that the
    compiled query keeps its parameters.
    """
    return TimeSlot.state.not_in(peewee.SQL(f"('{CLOSED}', '{REMOVED}')"))


def not_held(now: datetime) -> peewee.Expression:
    """No live hold on the slot at ``now``."""
    return TimeSlot.held_until.is_null() | (TimeSlot.held_until <= to_db_time(now))


def is_free(now: datetime, earliest: datetime | None = None) -> peewee.Expression:
    """The rule of a free slot: not booked, open, not held at ``now``, and
    starting after ``earliest`` (default ``now``).

    (``~is_booked``, not ``is_booked == False``: SQLite matches the partial
    index's ``WHERE NOT is_booked`` only literally. The few closed or removed
    rows are in that index and filtered out with the held ones.)
    """
    return (
        ~TimeSlot.is_booked
        & is_open()
        & (TimeSlot.start_time > to_db_time(earliest or now))
        & not_held(now)
    )


def free_slots(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    earliest: datetime | None = None,
    calendar_id: int | None = None,
) -> list[SlotRow]:
    """The free slots at ``now``, earliest first.

    ``start`` and ``end`` (aware) keep those starting in ``[start, end)``;
    ``limit`` keeps the first ``limit``; ``calendar_id`` those of one calendar
    (``None``: of every calendar).
    """
    return [free_slot(row) for row in
            free_slot_rows(now, start, end, limit, earliest, calendar_id)]


def free_slot(row: tuple) -> SlotRow:
    """A row of ``free_slot_rows`` as a slot."""
    slot_id, starts, ends = row
    return SlotRow(slot_id, as_datetime(starts), as_datetime(ends), False, None)


def free_slot_rows(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    earliest: datetime | None = None,
    calendar_id: int | None = None,
) -> list[tuple]:
    """``free_slots`` as the driver returns them: ``(id, start_time, end_time)``,
    naive UTC, as datetimes (PostgreSQL) or ISO text (SQLite).

    The fast path of GET /availability: the SQL is compiled once per shape of
    query, and no row goes through Peewee's per-field conversion.
    """
    sql = _statement(start is not None, end is not None, limit is not None,
                     calendar_id is not None)
    params = [to_db_time(earliest or now), to_db_time(now)]
    params += [to_db_time(moment) for moment in (start, end) if moment is not None]
    params += [calendar_id] if calendar_id is not None else []
    params += [limit] if limit is not None else []
    with reading(), session():
        return database.execute_sql(sql, params).fetchall()


def free_slots_query(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    earliest: datetime | None = None,
    calendar_id: int | None = None,
) -> peewee.Select:
    """The query of ``free_slots``, unexecuted (``EXPLAIN`` shows its plan).

    It reads the partial index of free slots (``models.FREE_SLOTS_INDEX``) from
    the first one after ``earliest``, so its cost follows the slots returned,
    not the booked or past rows in the table. Its parameters are, in order:
    ``earliest``, ``now`` (twice: IS NULL takes none), ``start``, ``end``,
    ``calendar_id``, ``limit``.
    """
    condition = is_free(now, earliest)
    if start is not None:
        condition &= TimeSlot.start_time >= to_db_time(start)
    if end is not None:
        condition &= TimeSlot.start_time < to_db_time(end)
    if calendar_id is not None:
        condition &= TimeSlot.calendar_id == calendar_id
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


# The query, built by Peewee, compiled once per database class and shape:
# compiling costs more than running it (0.3-0.5 ms against 0.05 ms for SQLite
# to run the SELECT of 16 slots).
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _statement(*shape: bool) -> str:
    return _compiled(type(database.obj), shape)


@functools.cache
def _compiled(kind: type, shape: tuple[bool, ...]) -> str:
    has_start, has_end, has_limit, has_calendar = shape
    query = free_slots_query(
        _ANY_TIME,
        _ANY_TIME if has_start else None,
        _ANY_TIME if has_end else None,
        1 if has_limit else None,
        calendar_id=1 if has_calendar else None,
    )
    return query.sql()[0]
