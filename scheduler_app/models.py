"""The ``time_slots`` table."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from .db import database, session

EMAIL_MAX_LENGTH = 254


class TimeSlot(peewee.Model):
    """One bookable span of the rep's calendar. Timestamps are naive UTC."""

    id = peewee.AutoField()
    start_time = peewee.DateTimeField(unique=True)
    end_time = peewee.DateTimeField()
    is_booked = peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT false")])
    booked_by_email = peewee.CharField(max_length=EMAIL_MAX_LENGTH, null=True)

    class Meta:
        database = database
        table_name = "time_slots"
        indexes = (
            # Serves the availability query: free slots ordered by start time.
            (("is_booked", "start_time"), False),
        )


def to_db_time(moment: datetime) -> datetime:
    """An aware datetime as the table stores it: naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)


# The largest id the INTEGER primary key can hold (PostgreSQL's int4).
MAX_SLOT_ID = 2**31 - 1


# Serialises schema changes of processes starting together on PostgreSQL, where
# concurrent CREATE TABLE IF NOT EXISTS can still collide.
_SCHEMA_LOCK_KEY = 103_2026


def create_tables() -> None:
    """Create the table and its indexes if they are missing (idempotent)."""
    with session(), database.atomic():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        database.create_tables([TimeSlot], safe=True)
