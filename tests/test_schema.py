"""``scheduler-app init-db`` and startup: one schema path, for new and for inherited tables.

The inherited tables are made with raw SQL, as another implementation of the
spec could have left them: the same columns, no unique index on start_time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import psycopg2
import pytest
from support import Server, reading, run_cli

from scheduler_app.startup import prepare_database, utc_now
from scheduler_app.db import close_database, database, init_database
from scheduler_app.migrations import upgrade
from scheduler_app.seeding import build_seeder
from scheduler_app.settings import Settings

LEGACY_TABLE = {
    "sqlite": "CREATE TABLE time_slots (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "start_time TIMESTAMP NOT NULL{unique}, end_time TIMESTAMP NOT NULL, "
    "is_booked BOOLEAN NOT NULL DEFAULT 0, booked_by_email VARCHAR(255))",
    "postgres": "CREATE TABLE time_slots (id SERIAL PRIMARY KEY, "
    "start_time TIMESTAMP NOT NULL{unique}, end_time TIMESTAMP NOT NULL, "
    "is_booked BOOLEAN NOT NULL DEFAULT false, booked_by_email VARCHAR(255))",
}


def raw(url: str, *statements: str) -> None:
    """Run SQL on the database of ``url`` with the plain driver, outside the app."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    else:
        conn = psycopg2.connect(url)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        conn.commit()
    finally:
        conn.close()


def legacy_table(url: str, *starts: str, unique: bool = False) -> None:
    """A time_slots table without our indexes, holding a slot for each start time."""
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    raw(
        url,
        LEGACY_TABLE[kind].format(unique=" UNIQUE" if unique else ""),
        *(
            f"INSERT INTO time_slots (start_time, end_time) VALUES ('{start}', '{start[:-5]}30:00')"
            for start in starts
        ),
    )


def indexes(url: str) -> list[tuple[tuple[str, ...], bool, bool]]:
    """(columns, unique, partial) of each index on time_slots."""
    with reading(url):
        return sorted(
            (tuple(i.columns), bool(i.unique), " WHERE " in (i.sql or "").upper())
            for i in database.get_indexes("time_slots")
        )


# The unique index on (calendar_id, start_time) (migration 4; it replaced the one on
# start_time alone), and the partial index of free slots.
OURS = [(("calendar_id", "start_time"), True, False), (("start_time",), False, True)]
FREE_INDEX_ADDED = "Added the index time_slots_free_start_time on time_slots(start_time)."
# What migration 2 says: the tables of bookings, after the hold columns an old table lacks.
NEW_TABLES = [
    f"Created the {table} table."
    for table in ("bookings", "idempotency_keys", "feed_version", "changes", "outbox", "closures")
]
HOLD_COLUMNS = ["Added the column time_slots.held_until.",
                "Added the column time_slots.hold_token_hash."]
# What migration 3 says to a table made before it (a new one has the column already).
STATE_COLUMN = "Added the column time_slots.state."
# What migration 4 says to a new database, then to an inherited table (migration 2
# made the bookings and closures tables with their calendar column already).
NEW_CALENDARS = ["Created the calendars table.",
                 "Added the calendar default (the SCHEDULER_* settings)."]
CALENDAR_COLUMNS = [
    *NEW_CALENDARS,
    "Added the column time_slots.calendar_id (existing rows: calendar default).",
    "Start times are unique per calendar: dropped the uniqueness of time_slots(start_time).",
    "Made time_slots(calendar_id, start_time) unique.",
]


def test_init_db_creates_the_table_then_has_nothing_to_do(database_url):
    env = {"DATABASE_URL": database_url}
    first = run_cli("init-db", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["Created the time_slots table and its indexes.",
                                         *NEW_TABLES, *NEW_CALENDARS]
    again = run_cli("init-db", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "The schema is up to date (version 4).\n"
    assert [i for i in indexes(database_url) if i in OURS] == OURS


def test_init_db_adds_the_unique_index_an_inherited_table_lacks(database_url):
    legacy_table(database_url, "2026-11-23 09:00:00", "2026-11-23 09:30:00")
    result = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Added the unique index timeslot_start_time on time_slots(start_time).",
        FREE_INDEX_ADDED,
        *HOLD_COLUMNS,
        *NEW_TABLES,
        STATE_COLUMN,
        *CALENDAR_COLUMNS,
    ]
    assert [i for i in indexes(database_url) if i in OURS] == OURS
    error = sqlite3.IntegrityError if database_url.startswith("sqlite") else psycopg2.IntegrityError
    with pytest.raises(error):
        raw(
            database_url,
            "INSERT INTO time_slots (start_time, end_time) "
            "VALUES ('2026-11-23 09:00:00', '2026-11-23 09:30:00')",
        )
    assert "up to date" in run_cli("init-db", env={"DATABASE_URL": database_url}).stdout


def test_init_db_lists_the_duplicate_start_times_and_changes_nothing(database_url):
    legacy_table(
        database_url,
        "2026-11-23 09:00:00", "2026-11-23 09:00:00", "2026-11-23 10:00:00",
        "2026-11-23 11:00:00", "2026-11-23 11:00:00", "2026-11-23 11:00:00",
    )
    result = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "scheduler-app: Cannot add the unique index on time_slots(start_time): 2 start time(s) "
        "belong to more than one slot: 2026-11-23 09:00:00 (ids 1, 2); "
        "2026-11-23 11:00:00 (ids 4, 5, 6). "
        "Delete or move the duplicate slots, then run scheduler-app init-db again.\n"
    )
    assert not [i for i in indexes(database_url) if i in OURS]

    raw(database_url, "DELETE FROM time_slots WHERE id IN (2, 5, 6)")
    fixed = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert fixed.returncode == 0, fixed.stderr
    assert [i for i in indexes(database_url) if i in OURS] == OURS


def test_a_unique_constraint_of_another_name_counts_as_the_unique_index(database_url):
    legacy_table(database_url, "2026-11-23 09:00:00", unique=True)
    result = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [FREE_INDEX_ADDED, *HOLD_COLUMNS, *NEW_TABLES,
                                          STATE_COLUMN, *CALENDAR_COLUMNS]
    # Step 1 added no second one; step 4 then made start times unique per calendar
    # (on SQLite by rebuilding the table, since an inline UNIQUE cannot be dropped).
    unique = [cols for cols, unique, _ in indexes(database_url) if unique]
    assert ("start_time",) not in unique and unique.count(("calendar_id", "start_time")) == 1


def test_the_previous_releases_table_gets_the_free_slots_index(database_url):
    """Its unique start_time index must not pass for the partial index of free slots."""
    legacy_table(database_url, "2026-11-23 09:00:00", unique=True)
    raw(database_url, "CREATE INDEX timeslot_is_booked_start_time ON time_slots (is_booked, start_time)")
    result = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [FREE_INDEX_ADDED, *HOLD_COLUMNS, *NEW_TABLES,
                                          STATE_COLUMN, *CALENDAR_COLUMNS]
    assert [i for i in indexes(database_url) if i in OURS] == OURS


def test_a_table_missing_columns_is_refused(database_url):
    raw(database_url, "CREATE TABLE time_slots (id INTEGER PRIMARY KEY, start_time TIMESTAMP)")
    result = run_cli("init-db", env={"DATABASE_URL": database_url})
    assert result.returncode == 1
    assert result.stderr == (
        "scheduler-app: The existing time_slots table lacks the column(s) end_time, is_booked, "
        "booked_by_email; it was not created for this service.\n"
    )


def test_startup_upgrades_an_inherited_table_as_init_db_does(database_url):
    legacy_table(database_url, "2026-11-23 09:00:00")
    settings = replace(Settings(), database_url=database_url)
    try:
        assert prepare_database(settings, build_seeder(settings), utc_now()) == 0  # not empty
    finally:
        close_database()
    assert [i for i in indexes(database_url) if i in OURS] == OURS


def test_serve_will_not_start_on_duplicate_start_times(database_url):
    legacy_table(database_url, "2026-11-23 09:00:00", "2026-11-23 09:00:00")
    server = Server(database_url).start()
    output = server.finish()
    assert server.process.returncode == 1
    assert "Cannot add the unique index on time_slots(start_time)" in output
    assert "2026-11-23 09:00:00 (ids 1, 2)" in output
    assert "Traceback" not in output


def test_upgrades_running_together_add_each_index_once(database_url, run_together):
    """As workers starting together do (their connections are per thread here)."""
    legacy_table(database_url, "2026-11-23 09:00:00")
    init_database(database_url)
    try:
        results = run_together(8, lambda i: upgrade())
    finally:
        close_database()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(change for changes in results for change in changes) == sorted([
        FREE_INDEX_ADDED,
        "Added the unique index timeslot_start_time on time_slots(start_time).",
        *HOLD_COLUMNS,
        *NEW_TABLES,
        STATE_COLUMN,
        *CALENDAR_COLUMNS,
    ])
    assert [i for i in indexes(database_url) if i in OURS] == OURS
