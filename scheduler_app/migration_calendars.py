"""Migration step 4: calendars, a rep each (the foundation of teams).

The default calendar is row one, its settings NULL (read from SCHEDULER_*);
every existing slot and booking is put on it, every existing closure on all
calendars (NULL, today's meaning). A start time becomes unique per calendar:
the unique index (or constraint) on start_time alone is dropped, and an
inherited SQLite table with an inline UNIQUE is rebuilt without it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import peewee
from playhouse.migrate import SchemaMigrator

from .db import database
from .models import (
    CALENDAR_START_INDEX,
    DEFAULT_CALENDAR_ID,
    DEFAULT_CALENDAR_SLUG,
    Booking,
    Calendar,
    Closure,
    TimeSlot,
)


def _is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def _columns(table: str) -> set[str]:
    return {c.name for c in database.get_columns(table)}


def calendars_step(migrator: SchemaMigrator) -> list[str]:
    """4: calendars (a rep each); slots, bookings and closures get their calendar.

    The default calendar is row one, its settings NULL (read from SCHEDULER_*);
    every existing slot and booking is on it, every existing closure on all
    (NULL). A start time becomes unique per calendar instead of overall.
    """
    changes = []
    if not database.table_exists(Calendar._meta.table_name):
        database.create_tables([Calendar])
        changes.append("Created the calendars table.")
    now = datetime.now(UTC).replace(tzinfo=None)
    added = (Calendar.insert(id=DEFAULT_CALENDAR_ID, slug=DEFAULT_CALENDAR_SLUG, name="Default",
                             weight=100, priority=2, active=True, created_at=now)
             .on_conflict_ignore().execute())
    if _is_postgres():  # the explicit id 1 leaves the sequence behind
        database.execute_sql("SELECT setval(pg_get_serial_sequence('calendars', 'id'), "
                             "(SELECT MAX(id) FROM calendars))")
    if added and Calendar.select().count() == 1:
        changes.append(f"Added the calendar {DEFAULT_CALENDAR_SLUG} (the SCHEDULER_* settings).")
    for model in (TimeSlot, Booking):
        table = model._meta.table_name
        if "calendar_id" not in _columns(table):
            # No REFERENCES on SQLite: it cannot add one with a non-NULL default.
            database.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "calendar_id" INTEGER '
                                 f"NOT NULL DEFAULT {DEFAULT_CALENDAR_ID}")
            changes.append(f"Added the column {table}.calendar_id "
                           f"(existing rows: calendar {DEFAULT_CALENDAR_SLUG}).")
    if "calendar_id" not in _columns(Closure._meta.table_name):
        migrator.add_column(Closure._meta.table_name, "calendar_id", Closure.calendar_id).run()
        changes.append("Added the column closures.calendar_id (existing rows: every calendar).")
    if _is_postgres():
        for table in (TimeSlot._meta.table_name, Booking._meta.table_name):
            if not any(fk.column == "calendar_id" for fk in database.get_foreign_keys(table)):
                database.execute_sql(
                    f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_calendar_id_fkey" '
                    'FOREIGN KEY ("calendar_id") REFERENCES "calendars" ("id")')
    changes += _unique_per_calendar()
    return changes


def _unique_per_calendar() -> list[str]:
    """Replace uniqueness on start_time alone by (calendar_id, start_time)."""
    table = TimeSlot._meta.table_name
    changes = []
    alone = [i for i in database.get_indexes(table)
             if tuple(i.columns) == ("start_time",) and i.unique
             and " WHERE " not in (i.sql or "").upper()]
    rebuilt = False
    for index in alone:
        if _is_postgres():
            constraint = database.execute_sql(
                "SELECT 1 FROM pg_constraint WHERE conname = %s", (index.name,)).fetchone()
            if constraint:
                database.execute_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{index.name}"')
            else:
                database.execute_sql(f'DROP INDEX "{index.name}"')
        elif index.name.startswith("sqlite_autoindex_"):
            _rebuild_sqlite_time_slots()  # an inline UNIQUE cannot be dropped
            rebuilt = True
            break
        else:
            database.execute_sql(f'DROP INDEX "{index.name}"')
    if alone:
        changes.append(f"Start times are unique per calendar: dropped the uniqueness of "
                       f"{table}(start_time).")
    if rebuilt or not any(i.name == CALENDAR_START_INDEX for i in database.get_indexes(table)):
        for index in TimeSlot._meta.fields_to_index():
            database.execute(TimeSlot._schema._create_index(index, safe=True))
        changes.append(f"Made {table}(calendar_id, start_time) unique.")
    return changes


def _rebuild_sqlite_time_slots() -> None:
    """SQLite: copy time_slots into a table made from the model, which has no
    inline UNIQUE on start_time, and put it in the old one's place (the
    bookings' references, by name, then point at it; checked at commit)."""
    table = TimeSlot._meta.table_name
    database.execute_sql("PRAGMA defer_foreign_keys = ON")
    columns = ", ".join(f'"{f.column_name}"' for f in TimeSlot._meta.sorted_fields)

    class Rebuilt(TimeSlot):
        class Meta:
            table_name = f"{table}__rebuilt"
            indexes = ()

    Rebuilt._meta.indexes = []
    database.execute(Rebuilt._schema._create_table(safe=False))
    database.execute_sql(f'INSERT INTO "{table}__rebuilt" ({columns}) '
                         f'SELECT {columns} FROM "{table}"')
    database.execute_sql(f'DROP TABLE "{table}"')
    database.execute_sql(f'ALTER TABLE "{table}__rebuilt" RENAME TO "{table}"')
