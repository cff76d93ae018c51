"""Booking rules, as plain functions: list the free slots, book one.

They raise the service's own exceptions (``errors.py``); the HTTP layer maps
them to status codes. ``now`` is passed in, so the rules are testable at any time.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import peewee

from .db import session
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
    query = free_slots_query(now, start, end, limit)
    with session():
        return [SlotRow._make(row) for row in query]


def free_slots_query(
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> peewee.Select:
    """The query of ``free_slots``, unexecuted (``EXPLAIN`` shows its plan).

    It reads the partial index of free slots (``models.FREE_SLOTS_INDEX``) from
    the first one after ``now``, so its cost follows the slots returned, not
    the booked or past rows in the table. (``~is_booked``, not ``is_booked ==
    False``: SQLite matches the index's ``WHERE NOT is_booked`` only literally.)
    """
    condition = ~TimeSlot.is_booked & (TimeSlot.start_time > to_db_time(now))
    if start is not None:
        condition &= TimeSlot.start_time >= to_db_time(start)
    if end is not None:
        condition &= TimeSlot.start_time < to_db_time(end)
    query = TimeSlot.select(*_COLUMNS).where(condition).order_by(TimeSlot.start_time)
    if limit is not None:
        query = query.limit(limit)
    return query.tuples()


def book_slot(slot_id: int, email: str, now: datetime) -> SlotRow:
    """Book slot ``slot_id`` for ``email``; return the booked slot.

    Raises ``SlotNotFound``, ``SlotAlreadyBooked`` or ``SlotAlreadyStarted``.
    The read gives the precise error; the UPDATE is guarded by
    ``is_booked = false``, so of any number of concurrent callers exactly one
    updates the row and the others get ``SlotAlreadyBooked``.
    """
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)  # no row can have it; don't send it to the database
    with session():
        row = TimeSlot.select(*_COLUMNS).where(TimeSlot.id == slot_id).tuples().first()
        if row is None:
            raise SlotNotFound(slot_id)
        slot = SlotRow._make(row)
        if slot.is_booked:
            raise SlotAlreadyBooked(slot_id)
        if slot.start_time <= to_db_time(now):
            raise SlotAlreadyStarted(slot_id)
        updated = (
            TimeSlot.update(is_booked=True, booked_by_email=email)
            .where((TimeSlot.id == slot_id) & (TimeSlot.is_booked == False))  # noqa: E712
            .execute()
        )
    if updated != 1:
        raise SlotAlreadyBooked(slot_id)
    return slot._replace(is_booked=True, booked_by_email=email)
