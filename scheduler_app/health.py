"""Liveness and readiness, for load balancers and systemd."""

from __future__ import annotations

from datetime import datetime

import peewee

from .availability import is_free
from .db import database, session
from .errors import DatabaseUnavailable
from .models import TimeSlot


def slot_counts(now: datetime) -> dict[str, int]:
    """Count the slots: all, booked, and free (not booked, not started).

    Raises ``DatabaseUnavailable`` with the reason when the database does not
    answer or the table is missing.
    """
    with session():
        if not database.table_exists(TimeSlot._meta.table_name):
            raise DatabaseUnavailable("The time_slots table does not exist.")
        try:
            total, booked, free = (
                TimeSlot.select(
                    peewee.fn.COUNT(TimeSlot.id),
                    peewee.fn.COUNT(TimeSlot.id).filter(TimeSlot.is_booked == True),  # noqa: E712
                    peewee.fn.COUNT(TimeSlot.id).filter(is_free(now)),
                )
                .tuples()
                .get()
            )
        except peewee.DatabaseError as exc:
            raise DatabaseUnavailable(f"The database cannot be queried: {exc}") from exc
    return {"total": total, "booked": booked, "free": free}
