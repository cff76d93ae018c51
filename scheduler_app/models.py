"""The ``time_slots`` table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import peewee

from .db import database, session
from .errors import SchemaError

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


def create_tables() -> list[str]:
    """Bring the schema up to date (idempotent); return what was changed, in words.

    A missing table is created with its indexes. An existing table (perhaps
    created by another implementation of the spec) gets the indexes it lacks;
    an index counts as present when one with the same columns and uniqueness
    exists, whatever its name. Raises ``SchemaError`` when a column is missing
    or duplicate start times prevent the unique index, listing them.
    """
    table = TimeSlot._meta.table_name
    with session(), _schema_transaction():
        if not database.table_exists(table):
            database.create_tables([TimeSlot])
            return [f"Created the {table} table and its indexes."]
        missing = [
            f.column_name
            for f in TimeSlot._meta.sorted_fields
            if f.column_name not in {c.name for c in database.get_columns(table)}
        ]
        if missing:
            raise SchemaError(
                f"The existing {table} table lacks the column(s) {', '.join(missing)}; "
                "it was not created for this service."
            )
        present = database.get_indexes(table)
        changes = []
        for index in TimeSlot._meta.fields_to_index():
            columns = tuple(f.column_name for f in index._expressions)
            if _has_index(present, index, columns):
                continue
            if index._unique:
                _refuse_duplicates(table, columns)
            database.execute(TimeSlot._schema._create_index(index, safe=True))
            kind = "unique index" if index._unique else "index"
            changes.append(f"Added the {kind} {index._name} on {table}({', '.join(columns)}).")
        return changes


def _has_index(present: list[peewee.IndexMetadata], index: peewee.ModelIndex,
               columns: tuple[str, ...]) -> bool:
    """Whether ``present`` already serves ``index``.

    A partial index (the free slots') is matched by name, since its condition
    reads differently in each database. A full one is matched by columns, and
    a unique index also serves where a plain one is wanted, not the reverse;
    a partial index never stands in for a full one.
    """
    if index._where is not None:
        return any(i.name == index._name for i in present)
    return any(
        tuple(i.columns) == columns
        and (i.unique or not index._unique)
        and " WHERE " not in (i.sql or "").upper()
        for i in present
    )


@contextlib.contextmanager
def _schema_transaction() -> Iterator[None]:
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        with database.atomic():
            # Serialise with other processes changing the schema at the same time.
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            yield
    else:
        # SQLite: take the write lock up front, so that another process's schema
        # change cannot invalidate what this one read (the busy timeout waits).
        with database.atomic("IMMEDIATE"):
            yield


# How many duplicated start times the error message lists.
_LISTED_DUPLICATES = 20


def _refuse_duplicates(table: str, columns: tuple[str, ...]) -> None:
    """Raise ``SchemaError`` listing the start times that several slots share."""
    if columns != ("start_time",):
        raise SchemaError(f"No duplicate check for a unique index on {table}{columns}.")
    shared = (
        TimeSlot.select(TimeSlot.start_time)
        .group_by(TimeSlot.start_time)
        .having(peewee.fn.COUNT(TimeSlot.id) > 1)
    )
    rows = (
        TimeSlot.select(TimeSlot.start_time, TimeSlot.id)
        .where(TimeSlot.start_time.in_(shared))
        .order_by(TimeSlot.start_time, TimeSlot.id)
        .tuples()
    )
    ids: dict[object, list[int]] = {}
    for start, slot_id in rows:
        ids.setdefault(start, []).append(slot_id)
    if not ids:
        return
    listed = "; ".join(
        f"{start} (ids {', '.join(map(str, slot_ids))})"
        for start, slot_ids in list(ids.items())[:_LISTED_DUPLICATES]
    )
    more = len(ids) - _LISTED_DUPLICATES
    raise SchemaError(
        f"Cannot add the unique index on {table}(start_time): {len(ids)} start time(s) "
        f"belong to more than one slot: {listed}{f'; and {more} more' if more > 0 else ''}. "
        "Delete or move the duplicate slots, then run scheduler-app init-db again."
    )
