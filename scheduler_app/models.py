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


# Serves the availability query: the free slots, by start time. Partial, so it
# holds only free slots and booked or past rows cost the query nothing; both
# databases use it for a query saying ``NOT is_booked`` (SQLite only for that
# exact term, not for ``is_booked = ?``). A composite (is_booked, start_time)
# index was not enough: with 100,000 rows PostgreSQL preferred the unique
# start_time index and filtered out every booked future row.
FREE_SLOTS_INDEX = "time_slots_free_start_time"
TimeSlot.add_index(
    TimeSlot.index(TimeSlot.start_time, name=FREE_SLOTS_INDEX, where=~TimeSlot.is_booked)
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
