"""Versioned schema migrations: an ordered list of steps and a version table.

``upgrade()`` (run by ``init-db`` and at startup) applies the steps the
database has not had yet, in order, in one transaction under a lock (an
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so that servers
and workers starting together upgrade it once. A database without the
``schema_migrations`` table is at version 0: empty, or made by the first
release (only ``time_slots``, perhaps by another implementation of the spec).

To change the schema, append a step; never edit one that has been released.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator

from .db import database, session
from .migration_calendars import calendars_step
from .errors import SchemaError
from .models import (
    CLOSED,
    FREE_SLOTS_INDEX,
    REMOVED,
    STATE_CHECK,
    Booking,
    Change,
    Closure,
    FeedVersion,
    IdempotencyKey,
    OutboxMessage,
    TimeSlot,
)

# Serialises schema changes of processes starting together on PostgreSQL, where
# concurrent CREATE TABLE IF NOT EXISTS can still collide.
_SCHEMA_LOCK_KEY = 103_2026

# Crockford's base32: no I, L, O or U, so a reference reads aloud unambiguously.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference() -> str:
    """A booking's public reference: 8 random characters of Crockford base32 (40 bits),
    from one read of the system's randomness (``secrets.choice`` read it once a character)."""
    bits = int.from_bytes(secrets.token_bytes(5))
    return "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(35, -1, -5))


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=100)
    applied_at = peewee.DateTimeField()

    class Meta:
        database = database
        table_name = "schema_migrations"


Step = Callable[[SchemaMigrator], list[str]]


def _step_1_indexes() -> list[peewee.ModelIndex]:
    """The indexes step 1 gives an inherited table, as released (step 4 then
    replaces the unique start_time one by the per-calendar one)."""
    return [
        TimeSlot.index(TimeSlot.start_time, name="timeslot_start_time", unique=True),
        TimeSlot.index(TimeSlot.start_time, name=FREE_SLOTS_INDEX, where=~TimeSlot.is_booked),
    ]


def _time_slots(migrator: SchemaMigrator) -> list[str]:
    """1: the first release's table, or the indexes an inherited one lacks.

    An index counts as present when one with the same columns and uniqueness
    exists, whatever its name. Raises ``SchemaError`` when a column is missing
    or duplicate start times prevent the unique index, listing them.
    """
    table = TimeSlot._meta.table_name
    if not database.table_exists(table):
        database.create_tables([TimeSlot])
        return [f"Created the {table} table and its indexes."]
    spec_columns = ("id", "start_time", "end_time", "is_booked", "booked_by_email")
    missing = [c for c in spec_columns if c not in _columns(table)]
    if missing:
        raise SchemaError(
            f"The existing {table} table lacks the column(s) {', '.join(missing)}; "
            "it was not created for this service."
        )
    present = database.get_indexes(table)
    changes = []
    for index in _step_1_indexes():
        columns = tuple(f.column_name for f in index._expressions)
        if _has_index(present, index, columns):
            continue
        if index._unique:
            _refuse_duplicates(table, columns)
        database.execute(TimeSlot._schema._create_index(index, safe=True))
        kind = "unique index" if index._unique else "index"
        changes.append(f"Added the {kind} {index._name} on {table}({', '.join(columns)}).")
    return changes


def _bookings(migrator: SchemaMigrator) -> list[str]:
    """2: holds on slots; bookings and the tables of their transaction.

    Each slot booked before bookings existed gets a confirmed booking with its
    email and a fresh reference, but no token: it cannot be managed by link.
    """
    changes = []
    table = TimeSlot._meta.table_name
    for field in (TimeSlot.held_until, TimeSlot.hold_token_hash):
        if field.column_name not in _columns(table):
            migrator.add_column(table, field.column_name, field).run()
            changes.append(f"Added the column {table}.{field.column_name}.")
    new = [Booking, IdempotencyKey, FeedVersion, Change, OutboxMessage, Closure]
    for model in new:
        if not database.table_exists(model._meta.table_name):
            database.create_tables([model])
            changes.append(f"Created the {model._meta.table_name} table.")
    FeedVersion.insert(id=1, v=0).on_conflict_ignore().execute()
    now = datetime.now(UTC).replace(tzinfo=None)
    orphans = (
        TimeSlot.select(TimeSlot.id, TimeSlot.booked_by_email)
        .where(TimeSlot.is_booked
               & ~peewee.fn.EXISTS(Booking.select().where(
                   (Booking.slot == TimeSlot.id) & (Booking.status == "confirmed"))))
        .tuples()
    )
    rows = [
        {"reference": new_reference(), "slot": slot_id, "email": email or "",
         "status": "confirmed", "created_at": now, "updated_at": now}
        for slot_id, email in orphans
    ]
    for start in range(0, len(rows), 500):
        Booking.insert_many(rows[start:start + 500]).execute()
    if rows:
        changes.append(f"Recorded {len(rows)} existing booking(s) in {Booking._meta.table_name}.")
    return changes


def _slot_states(migrator: SchemaMigrator) -> list[str]:
    """3: a slot's state in the rep's calendar gets its own column.

    Until now a closed or removed slot was marked by writing ``closed`` or
    ``removed`` into ``hold_token_hash`` (a hold no token opens, until the slot's
    end). Those rows move to ``state``, with their hold columns cleared; the
    column's CHECK keeps a slot that is not open unbooked and unheld.
    """
    changes = []
    table = TimeSlot._meta.table_name
    if "state" not in _columns(table):
        # A constant default: PostgreSQL adds it without rewriting the table.
        database.execute_sql(
            f'ALTER TABLE "{table}" ADD COLUMN "state" VARCHAR(8) NOT NULL '
            f"DEFAULT 'open' CHECK ({STATE_CHECK})")
        changes.append(f"Added the column {table}.state.")
    for state in (CLOSED, REMOVED):
        marker = state  # what the previous release wrote into the hold column
        moved = (TimeSlot.update(state=state, held_until=None, hold_token_hash=None)
                 .where((TimeSlot.hold_token_hash == marker) & ~TimeSlot.is_booked)
                 .execute())
        if moved:
            changes.append(f"Moved {moved} {state} slot(s) from {table}.hold_token_hash "
                           f"to {table}.state.")
    return changes


# The steps, in order; a step's version is its position, from 1.
STEPS: list[tuple[str, Step]] = [
    ("time_slots", _time_slots),
    ("bookings", _bookings),
    ("slot_states", _slot_states),
    ("calendars", calendars_step),
]
LATEST = len(STEPS)


def upgrade() -> list[str]:
    """Apply the pending steps; return what was changed, in words (nothing: up to date)."""
    with session(), _schema_transaction():
        migrator = (PostgresqlMigrator if _is_postgres() else SqliteMigrator)(database.obj)
        database.create_tables([SchemaVersion])
        current = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0
        changes = []
        for version, (name, step) in enumerate(STEPS, start=1):
            if version <= current:
                continue
            changes += step(migrator)
            SchemaVersion.create(version=version, name=name,
                                 applied_at=datetime.now(UTC).replace(tzinfo=None))
        return changes


def schema_version() -> int:
    """The version the database is at (0: no migrations table)."""
    with session():
        if not database.table_exists(SchemaVersion._meta.table_name):
            return 0
        return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0


def _is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def _columns(table: str) -> set[str]:
    return {c.name for c in database.get_columns(table)}


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
    if _is_postgres():
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
