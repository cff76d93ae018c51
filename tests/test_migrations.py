"""The upgrade from the previous release's database, with data, on SQLite and PostgreSQL.

The previous release (a9e7779, bookings only in ``time_slots``) created its
table with Peewee's ``create_tables``; PREVIOUS_RELEASE_DDL is exactly what
that code ran on each database, read from its statements (``CREATE TABLE IF
NOT EXISTS`` and its two indexes). The data goes in with the plain driver, as
that release wrote it: naive UTC timestamps, booked slots with their email.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from fastapi.testclient import TestClient
from support import SCRIPT

from scheduler_app import rep_calendar
from scheduler_app.app import create_app
from scheduler_app.booking import transaction
from scheduler_app.migrations import CROCKFORD, LATEST

PREVIOUS_RELEASE_DDL = {
    "sqlite": [
        'CREATE TABLE IF NOT EXISTS "time_slots" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"start_time" DATETIME NOT NULL, "end_time" DATETIME NOT NULL, '
        '"is_booked" INTEGER NOT NULL DEFAULT false, "booked_by_email" VARCHAR(254))',
        'CREATE UNIQUE INDEX IF NOT EXISTS "timeslot_start_time" ON "time_slots" ("start_time")',
        'CREATE INDEX IF NOT EXISTS "time_slots_free_start_time" ON "time_slots" ("start_time") '
        'WHERE NOT "is_booked"',
    ],
    "postgres": [
        'CREATE TABLE IF NOT EXISTS "time_slots" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"start_time" TIMESTAMP NOT NULL, "end_time" TIMESTAMP NOT NULL, '
        '"is_booked" BOOLEAN NOT NULL DEFAULT false, "booked_by_email" VARCHAR(254))',
        'CREATE UNIQUE INDEX IF NOT EXISTS "timeslot_start_time" ON "time_slots" ("start_time")',
        'CREATE INDEX IF NOT EXISTS "time_slots_free_start_time" ON "time_slots" ("start_time") '
        'WHERE NOT "is_booked"',
    ],
}

# The previous release's rows: (start, end, is_booked, booked_by_email), naive UTC.
# Monday 2026-11-23 from 09:00 New York, and one booked meeting already past.
SLOTS = [
    (datetime(2026, 11, 16, 14, 0), datetime(2026, 11, 16, 14, 30), True, "past@example.com"),
    (datetime(2026, 11, 23, 14, 0), datetime(2026, 11, 23, 14, 30), False, None),
    (datetime(2026, 11, 23, 14, 30), datetime(2026, 11, 23, 15, 0), True, "Lead@example.com"),
    (datetime(2026, 11, 23, 15, 0), datetime(2026, 11, 23, 15, 30), False, None),
    (datetime(2026, 11, 23, 15, 30), datetime(2026, 11, 23, 16, 0), True, "lead@example.com"),
    (datetime(2026, 11, 23, 16, 0), datetime(2026, 11, 23, 16, 30), False, None),
]
BOOKED = {i + 1: email for i, (_, _, booked, email) in enumerate(SLOTS) if booked}

UPGRADE_SAYS = [
    "Added the column time_slots.held_until.",
    "Added the column time_slots.hold_token_hash.",
    *(f"Created the {table} table." for table in
      ("bookings", "idempotency_keys", "feed_version", "changes", "outbox", "closures")),
    f"Recorded {len(BOOKED)} existing booking(s) in bookings.",
]
UP_TO_DATE = f"The schema is up to date (version {LATEST}).\n"


def kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def connect(url: str):
    if kind(url) == "sqlite":
        return sqlite3.connect(url.removeprefix("sqlite:///"))
    return psycopg2.connect(url)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute(sql if kind(url) == "postgres" else sql.replace("%s", "?"), params)
        rows = cursor.fetchall() if cursor.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def previous_release(url: str) -> None:
    """The database as the previous release left it."""
    conn = connect(url)
    try:
        cursor = conn.cursor()
        for statement in PREVIOUS_RELEASE_DDL[kind(url)]:
            cursor.execute(statement)
        insert = ("INSERT INTO time_slots (start_time, end_time, is_booked, booked_by_email) "
                  "VALUES (%s, %s, %s, %s)")
        cursor.executemany(insert if kind(url) == "postgres" else insert.replace("%s", "?"),
                           [(str(s), str(e), b, m) for s, e, b, m in SLOTS])
        conn.commit()
    finally:
        conn.close()


def slots(url: str) -> list[tuple]:
    """The spec's five columns of every slot, as stored."""
    return query(url, "SELECT id, start_time, end_time, is_booked, booked_by_email "
                      "FROM time_slots ORDER BY id")


def everything(url: str) -> tuple:
    return (
        query(url, "SELECT * FROM time_slots ORDER BY id"),
        query(url, "SELECT * FROM bookings ORDER BY id"),
        query(url, "SELECT version, name FROM schema_migrations ORDER BY version"),
    )


def init_db(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, "init-db"], env={**os.environ, "DATABASE_URL": url},
                          capture_output=True, text=True, timeout=60)


def assert_upgraded(url: str, before: list[tuple]) -> None:
    """No row lost, and each booked slot has one tokenless confirmed booking."""
    assert slots(url) == before
    assert query(url, "SELECT COUNT(*) FROM time_slots WHERE held_until IS NOT NULL "
                      "OR hold_token_hash IS NOT NULL") == [(0,)]
    bookings = query(url, "SELECT slot_id, email, status, token_hash, sequence, reference, "
                          "cancelled_at, name, notes FROM bookings ORDER BY slot_id")
    assert [(b[0], b[1]) for b in bookings] == sorted(BOOKED.items())
    for slot_id, email, status, token_hash, sequence, reference, cancelled, name, notes in bookings:
        assert (status, token_hash, sequence, cancelled, name, notes) == (
            "confirmed", None, 0, None, None, None)
        assert len(reference) == 8 and set(reference) <= set(CROCKFORD)
    assert len({b[5] for b in bookings}) == len(bookings)
    assert query(url, "SELECT version FROM schema_migrations ORDER BY version") == [
        (v,) for v in range(1, LATEST + 1)]


def assert_one_confirmed_booking_per_slot(url: str) -> None:
    """The partial unique index: a second confirmed booking of a slot is refused
    by the database itself; a cancelled one is not."""
    slot_id = next(iter(BOOKED))
    insert = ("INSERT INTO bookings (reference, slot_id, email, status, sequence, created_at, "
              "updated_at) VALUES (%s, %s, 'x@example.com', %s, 0, %s, %s)")
    now = str(datetime(2026, 11, 20, 15, 0))
    error = sqlite3.IntegrityError if kind(url) == "sqlite" else psycopg2.IntegrityError
    with pytest.raises(error):
        query(url, insert, ("SECOND00", slot_id, "confirmed", now, now))
    query(url, insert, ("CANCEL00", slot_id, "cancelled", now, now))
    query(url, "DELETE FROM bookings WHERE reference = 'CANCEL00'")


def test_init_db_upgrades_the_previous_releases_database_with_no_row_lost(database_url):
    previous_release(database_url)
    before = slots(database_url)
    result = init_db(database_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert set(UPGRADE_SAYS) <= set(lines), lines
    assert not [line for line in lines if "index" in line]  # both indexes were there
    assert_upgraded(database_url, before)
    assert_one_confirmed_booking_per_slot(database_url)

    upgraded = everything(database_url)
    again = init_db(database_url)
    assert (again.returncode, again.stdout) == (0, UP_TO_DATE), again.stderr
    assert everything(database_url) == upgraded  # the same references: nothing redone


def test_startup_upgrades_the_previous_releases_database(settings, clock):
    previous_release(settings.database_url)
    before = slots(settings.database_url)
    with TestClient(create_app(settings, clock)) as client:
        assert_upgraded(settings.database_url, before)
        # The app works on it: the free future slots listed, booked ones refused.
        assert [s["id"] for s in client.get("/availability").json()] == [2, 4, 6]
        refused = client.post("/book", json={"slot_id": 3, "email": "other@example.com"})
        assert refused.status_code == 409
        assert client.post("/book", json={"slot_id": 4, "email": "new@example.com"}
                           ).status_code == 200
        # A booking from the previous release has no token: no link manages it.
        [(reference,)] = query(settings.database_url,
                               "SELECT reference FROM bookings WHERE slot_id = 3")
        for token in ("", "x", "0" * 64):
            response = client.get(f"/bookings/{reference}",
                                  headers={"Authorization": f"Bearer {token}"})
            assert response.status_code in (401, 404)
    assert_one_confirmed_booking_per_slot(settings.database_url)
    with TestClient(create_app(settings, clock)):  # a second start changes nothing
        pass
    assert len(query(settings.database_url, "SELECT id FROM bookings")) == len(BOOKED) + 1


def test_concurrent_upgrades_from_several_processes_upgrade_once(database_url):
    previous_release(database_url)
    before = slots(database_url)
    env = {**os.environ, "DATABASE_URL": database_url}
    processes = [subprocess.Popen([SCRIPT, "init-db"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    stdouts = sorted(out for out, _ in outputs)
    assert stdouts.count(UP_TO_DATE) == 3, stdouts
    [upgrading] = [out for out in stdouts if out != UP_TO_DATE]
    assert set(UPGRADE_SAYS) <= set(upgrading.splitlines())
    assert_upgraded(database_url, before)  # one booking per booked slot, each version once


# -- step 3: from the release before it (c32de7b, steps 1-2), closed and removed slots ---------

# The schema of that release, as its init-db made it on an empty database (read from
# Peewee's query log of that run on each database); the types that differ between
# the two are named by RELEASE_2_TYPES.
RELEASE_2_DDL = [
    'CREATE TABLE IF NOT EXISTS "schema_migrations" ("version" INTEGER NOT NULL PRIMARY KEY, '
    '"name" VARCHAR(100) NOT NULL, "applied_at" {ts} NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "time_slots" ("id" {serial} NOT NULL PRIMARY KEY, '
    '"start_time" {ts} NOT NULL, "end_time" {ts} NOT NULL, "is_booked" {bool} NOT NULL '
    'DEFAULT false, "booked_by_email" VARCHAR(254), "held_until" {ts}, '
    '"hold_token_hash" VARCHAR(64))',
    'CREATE UNIQUE INDEX IF NOT EXISTS "timeslot_start_time" ON "time_slots" ("start_time")',
    'CREATE INDEX IF NOT EXISTS "time_slots_free_start_time" ON "time_slots" ("start_time") '
    'WHERE NOT "is_booked"',
    'CREATE TABLE IF NOT EXISTS "bookings" ("id" {serial} NOT NULL PRIMARY KEY, '
    '"reference" VARCHAR(8) NOT NULL, "slot_id" INTEGER NOT NULL, "email" VARCHAR(254) NOT NULL, '
    '"name" VARCHAR(200), "notes" TEXT, "status" VARCHAR(16) NOT NULL, "token_hash" VARCHAR(64), '
    '"sequence" INTEGER NOT NULL, "timezone" VARCHAR(64), "source" TEXT, '
    '"created_at" {ts} NOT NULL, "updated_at" {ts} NOT NULL, "cancelled_at" {ts}, '
    '"cancel_reason" VARCHAR(500), "cancelled_by" VARCHAR(16), '
    'FOREIGN KEY ("slot_id") REFERENCES "time_slots" ("id"))',
    'CREATE UNIQUE INDEX IF NOT EXISTS "booking_reference" ON "bookings" ("reference")',
    'CREATE INDEX IF NOT EXISTS "booking_slot_id" ON "bookings" ("slot_id")',
    'CREATE INDEX IF NOT EXISTS "booking_email" ON "bookings" ("email")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "bookings_confirmed_slot" ON "bookings" ("slot_id") '
    "WHERE (\"status\" = 'confirmed')",
    'CREATE TABLE IF NOT EXISTS "idempotency_keys" ("id" {serial} NOT NULL PRIMARY KEY, '
    '"scope" VARCHAR(64) NOT NULL, "key" VARCHAR(255) NOT NULL, "fingerprint" VARCHAR(64) NOT NULL, '
    '"status" INTEGER, "body" {blob}, "created_at" {ts} NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "idempotencykey_created_at" ON "idempotency_keys" ("created_at")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "idempotencykey_scope_key" ON "idempotency_keys" '
    '("scope", "key")',
    'CREATE TABLE IF NOT EXISTS "feed_version" ("id" INTEGER NOT NULL PRIMARY KEY, '
    '"v" {bigint} NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "changes" ("v" {bigint} NOT NULL PRIMARY KEY, '
    '"slot_id" INTEGER NOT NULL, "start_time" {ts} NOT NULL, "end_time" {ts} NOT NULL, '
    '"state" VARCHAR(16) NOT NULL, "created_at" {ts} NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "change_created_at" ON "changes" ("created_at")',
    'CREATE TABLE IF NOT EXISTS "outbox" ("id" {serial} NOT NULL PRIMARY KEY, '
    '"channel" VARCHAR(16) NOT NULL, "event" VARCHAR(32) NOT NULL, "recipient" VARCHAR(32) NOT NULL, '
    '"booking_id" INTEGER, "payload" TEXT NOT NULL, "status" VARCHAR(16) NOT NULL, '
    '"attempts" INTEGER NOT NULL, "next_attempt_at" {ts} NOT NULL, "lease_until" {ts}, '
    '"last_error" TEXT, "created_at" {ts} NOT NULL, "sent_at" {ts}, '
    'FOREIGN KEY ("booking_id") REFERENCES "bookings" ("id"))',
    'CREATE INDEX IF NOT EXISTS "outboxmessage_booking_id" ON "outbox" ("booking_id")',
    'CREATE INDEX IF NOT EXISTS "outboxmessage_status_next_attempt_at" ON "outbox" '
    '("status", "next_attempt_at")',
    'CREATE TABLE IF NOT EXISTS "closures" ("id" {serial} NOT NULL PRIMARY KEY, '
    '"first_day" DATE NOT NULL, "last_day" DATE NOT NULL, "reason" VARCHAR(500), '
    '"created_at" {ts} NOT NULL)',
    "INSERT INTO feed_version (id, v) VALUES (1, 0)",
    "INSERT INTO schema_migrations (version, name, applied_at) "
    "VALUES (1, 'time_slots', '2026-11-01 12:00:00'), (2, 'bookings', '2026-11-01 12:00:00')",
]
RELEASE_2_TYPES = {
    "sqlite": {"serial": "INTEGER", "ts": "DATETIME", "bool": "INTEGER", "blob": "BLOB",
               "bigint": "INTEGER"},
    "postgres": {"serial": "SERIAL", "ts": "TIMESTAMP", "bool": "BOOLEAN", "blob": "BYTEA",
                 "bigint": "BIGINT"},
}
# Its slots (naive UTC; the clock is Friday 2026-11-20 15:00): (start, is_booked, email,
# held_until, hold_token_hash). That release marked a closed or removed slot kept for a
# cancelled booking's record with a hold no token opens, until the slot's end.
HELD = hashlib.sha256(b"a visitor's hold token").hexdigest()
RELEASE_2_SLOTS = [
    (datetime(2026, 11, 23, 14, 0), False, None, None, None),  # 1: free
    (datetime(2026, 11, 23, 14, 30), True, "lead@example.com", None, None),  # 2: booked
    (datetime(2026, 11, 23, 15, 0), False, None, datetime(2026, 11, 23, 15, 30), "removed"),
    (datetime(2026, 11, 23, 15, 30), False, None, datetime(2026, 11, 20, 15, 5), HELD),  # 4
    (datetime(2026, 11, 24, 14, 0), False, None, datetime(2026, 11, 24, 14, 30), "closed"),
    (datetime(2026, 11, 24, 14, 30), True, "kept@example.com", None, None),  # 6: a conflict
    (datetime(2026, 11, 16, 14, 0), False, None, datetime(2026, 11, 16, 14, 30), "closed"),
]
# (slot, status, email): the bookings; the cancelled ones keep slots 3, 5 and 7 from deletion.
RELEASE_2_BOOKINGS = [(2, "confirmed", "lead@example.com"), (3, "cancelled", "gone@example.com"),
                      (5, "cancelled", "off@example.com"), (6, "confirmed", "kept@example.com"),
                      (7, "cancelled", "past@example.com")]
# Tuesday 24 November and Monday 16 November are closed.
RELEASE_2_CLOSURES = [("2026-11-24", "2026-11-24"), ("2026-11-16", "2026-11-16")]
STEP_3_SAYS = [
    "Added the column time_slots.state.",
    "Moved 2 closed slot(s) from time_slots.hold_token_hash to time_slots.state.",
    "Moved 1 removed slot(s) from time_slots.hold_token_hash to time_slots.state.",
]


# What step 4 says to a database made before it (its unique index on start_time alone
# dropped, the per-calendar one made).
STEP_4_SAYS = [
    "Created the calendars table.",
    "Added the calendar default (the SCHEDULER_* settings).",
    "Added the column time_slots.calendar_id (existing rows: calendar default).",
    "Added the column bookings.calendar_id (existing rows: calendar default).",
    "Added the column closures.calendar_id (existing rows: every calendar).",
    "Start times are unique per calendar: dropped the uniqueness of time_slots(start_time).",
    "Made time_slots(calendar_id, start_time) unique.",
]


def release_2(url: str) -> None:
    """The database as the release before step 3 left it, with its rows."""
    conn = connect(url)
    try:
        cursor = conn.cursor()
        for statement in RELEASE_2_DDL:
            cursor.execute(statement.format(**RELEASE_2_TYPES[kind(url)]))

        def insert(sql: str, rows: list[tuple]) -> None:
            cursor.executemany(sql if kind(url) == "postgres" else sql.replace("%s", "?"), rows)

        insert("INSERT INTO time_slots (start_time, end_time, is_booked, booked_by_email, "
               "held_until, hold_token_hash) VALUES (%s, %s, %s, %s, %s, %s)",
               [(str(s), str(s + timedelta(minutes=30)), b, e, h and str(h), t)
                for s, b, e, h, t in RELEASE_2_SLOTS])
        now = "2026-11-10 12:00:00"
        insert("INSERT INTO bookings (reference, slot_id, email, status, token_hash, sequence, "
               "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 0, %s, %s)",
               [(f"REF0000{slot}", slot, email, status, "0" * 64, now, now)
                for slot, status, email in RELEASE_2_BOOKINGS])
        insert("INSERT INTO closures (first_day, last_day, created_at) VALUES (%s, %s, %s)",
               [(first, last, now) for first, last in RELEASE_2_CLOSURES])
        conn.commit()
    finally:
        conn.close()


def slot_states(url: str) -> list[tuple]:
    return query(url, "SELECT id, state, held_until IS NOT NULL, hold_token_hash "
                      "FROM time_slots ORDER BY id")


def test_init_db_moves_the_closed_and_removed_marks_of_the_release_before_into_state(
        database_url):
    release_2(database_url)
    before = slots(database_url)
    result = init_db(database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == STEP_3_SAYS + STEP_4_SAYS
    assert slots(database_url) == before  # the spec's columns as they were
    assert slot_states(database_url) == [
        (1, "open", False, None), (2, "open", False, None), (3, "removed", False, None),
        (4, "open", True, HELD), (5, "closed", False, None), (6, "open", False, None),
        (7, "closed", False, None)]
    assert query(database_url, "SELECT version, name FROM schema_migrations WHERE version = 3"
                 ) == [(3, "slot_states")]
    # The column's CHECK: a slot that is not open is never booked nor held.
    error = sqlite3.IntegrityError if kind(database_url) == "sqlite" else psycopg2.IntegrityError
    for change in ("is_booked = true", f"hold_token_hash = '{HELD}'", "state = 'other'"):
        with pytest.raises(error):
            query(database_url, f"UPDATE time_slots SET {change} WHERE id = 5")
    upgraded = everything(database_url)
    again = init_db(database_url)
    assert (again.returncode, again.stdout) == (0, UP_TO_DATE), again.stderr
    assert everything(database_url) == upgraded


def test_the_moved_slots_keep_their_meaning(settings, clock):
    """Closed and removed slots stay out of sight and unbookable; reopening the
    day frees the closed one, adding the time again brings the removed one back."""
    release_2(settings.database_url)
    with TestClient(create_app(settings, clock)) as client:
        assert [s["id"] for s in client.get("/availability").json()] == [1]  # 4 is held
        closed = client.post("/book", json={"slot_id": 5, "email": "new@example.com"})
        assert closed.status_code == 409 and "closed" in closed.json()["detail"]
        assert client.post("/book", json={"slot_id": 3, "email": "new@example.com"}
                           ).status_code == 404
        assert client.post("/holds", json={"slot_id": 5}).status_code == 409
        clock.now += timedelta(minutes=5)  # the visitor's hold has run out
        assert [s["id"] for s in client.get("/availability").json()] == [1, 4]
        assert client.get("/ready").json()["slots"] == {"total": 7, "booked": 2, "free": 2}

        # The rep's functions, on the database the app has bound.
        [(tuesday,)] = query(settings.database_url,
                             "SELECT id FROM closures WHERE first_day = '2026-11-24'")
        reopened = transaction(settings, clock.now, lambda tx: rep_calendar.reopen(tx, tuesday))
        assert [s.id for s in reopened.freed] == [5]
        again = transaction(settings, clock.now, lambda tx: rep_calendar.add_times(
            tx, datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
            datetime(2026, 11, 23, 15, 30, tzinfo=UTC)))
        assert [s.id for s in again] == [3]
        assert [s["id"] for s in client.get("/availability").json()] == [1, 3, 4, 5]
        assert client.post("/book", json={"slot_id": 5, "email": "new@example.com"}
                           ).status_code == 200
    assert [row[:2] for row in slot_states(settings.database_url)] == [
        (1, "open"), (2, "open"), (3, "open"), (4, "open"), (5, "open"), (6, "open"),
        (7, "closed")]


# -- step 4: from the release before it (steps 1-3), calendars ---------------------------------

# That release's schema: the one before, plus the state column step 3 added (in the
# CREATE TABLE of a new database, as its init-db made it) and step 3's row.
STATE_COLUMN_DDL = (
    ', "state" VARCHAR(8) NOT NULL DEFAULT \'open\' CHECK (state IN (\'open\', \'closed\', '
    "'removed') AND (state = 'open' OR (NOT is_booked AND held_until IS NULL AND "
    'hold_token_hash IS NULL))))'
)
RELEASE_3_DDL = [
    (statement[:-1] + STATE_COLUMN_DDL
     if statement.startswith('CREATE TABLE IF NOT EXISTS "time_slots"') else statement)
    for statement in RELEASE_2_DDL
] + ["INSERT INTO schema_migrations (version, name, applied_at) "
     "VALUES (3, 'slot_states', '2026-12-01 12:00:00')"]
# (start, is_booked, email, state); closed and removed slots kept for cancelled bookings.
RELEASE_3_SLOTS = [
    (datetime(2026, 11, 23, 14, 0), False, None, "open"),  # 1: free
    (datetime(2026, 11, 23, 14, 30), True, "lead@example.com", "open"),  # 2: booked
    (datetime(2026, 11, 23, 15, 0), False, None, "removed"),  # 3
    (datetime(2026, 11, 24, 14, 0), False, None, "closed"),  # 4
    (datetime(2026, 11, 24, 15, 0), False, None, "open"),  # 5: free
]
RELEASE_3_BOOKINGS = [(2, "confirmed", "lead@example.com"), (3, "cancelled", "gone@example.com"),
                      (4, "cancelled", "off@example.com")]


def release_3(url: str) -> None:
    """The database as the release before step 4 left it, with its rows."""
    conn = connect(url)
    try:
        cursor = conn.cursor()
        for statement in RELEASE_3_DDL:
            cursor.execute(statement.format(**RELEASE_2_TYPES[kind(url)]))

        def insert(sql: str, rows: list[tuple]) -> None:
            cursor.executemany(sql if kind(url) == "postgres" else sql.replace("%s", "?"), rows)

        insert("INSERT INTO time_slots (start_time, end_time, is_booked, booked_by_email, state) "
               "VALUES (%s, %s, %s, %s, %s)",
               [(str(s), str(s + timedelta(minutes=30)), b, e, st)
                for s, b, e, st in RELEASE_3_SLOTS])
        now = "2026-11-10 12:00:00"
        insert("INSERT INTO bookings (reference, slot_id, email, status, token_hash, sequence, "
               "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 0, %s, %s)",
               [(f"REF0000{slot}", slot, email, status, "0" * 64, now, now)
                for slot, status, email in RELEASE_3_BOOKINGS])
        insert("INSERT INTO closures (first_day, last_day, created_at) VALUES (%s, %s, %s)",
               [("2026-11-24", "2026-11-24", now)])
        conn.commit()
    finally:
        conn.close()


def test_init_db_puts_everything_of_the_release_before_on_the_default_calendar(database_url):
    release_3(database_url)
    before = (slots(database_url),
              query(database_url, "SELECT id, state FROM time_slots ORDER BY id"),
              query(database_url, "SELECT * FROM bookings ORDER BY id"))
    result = init_db(database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == STEP_4_SAYS
    assert slots(database_url) == before[0]  # the spec's five columns as they were
    assert query(database_url, "SELECT id, state FROM time_slots ORDER BY id") == before[1]
    assert query(database_url, "SELECT calendar_id FROM time_slots") == [(1,)] * 5
    assert [row[:-1] for row in query(database_url, "SELECT * FROM bookings ORDER BY id")
            ] == before[2]
    assert query(database_url, "SELECT calendar_id FROM bookings") == [(1,)] * 3
    assert query(database_url, "SELECT first_day, calendar_id FROM closures") in (
        [("2026-11-24", None)], [(datetime(2026, 11, 24).date(), None)])
    assert query(database_url, "SELECT id, slug, email, timezone, day_start, day_end, holidays, "
                               "slot_minutes, min_notice_minutes, max_bookings_per_day, "
                               "deactivated_at FROM calendars") == [
        (1, "default", None, None, None, None, None, None, None, None, None)]
    assert query(database_url, "SELECT version, name FROM schema_migrations WHERE version = 4"
                 ) == [(4, "calendars")]
    assert LATEST == 4

    error = sqlite3.IntegrityError if kind(database_url) == "sqlite" else psycopg2.IntegrityError
    same_time = ("INSERT INTO time_slots (start_time, end_time, calendar_id) "
                 "VALUES ('2026-11-23 14:00:00', '2026-11-23 14:30:00', %s)")
    with pytest.raises(error):  # one calendar, one slot at a time
        query(database_url, same_time, (1,))
    query(database_url, "INSERT INTO calendars (slug, name, weight, priority, active, created_at) "
                        "VALUES ('berlin', 'Berlin', 100, 2, true, '2026-12-01 12:00:00')")
    [(berlin,)] = query(database_url, "SELECT id FROM calendars WHERE slug = 'berlin'")
    assert berlin == 2  # the id sequence is past the default calendar
    query(database_url, same_time, (berlin,))  # another calendar: another slot
    with pytest.raises(error):
        query(database_url, "INSERT INTO calendars (slug, name, weight, priority, active, "
                            "created_at) VALUES ('berlin', 'B', 1, 1, true, '2026-12-01')")
    if kind(database_url) == "postgres":
        with pytest.raises(psycopg2.IntegrityError):  # no slot of a calendar that is not there
            query(database_url, same_time, (99,))
    assert_one_confirmed_booking_per_slot_of(database_url, 2)

    upgraded = everything(database_url)
    again = init_db(database_url)
    assert (again.returncode, again.stdout) == (0, UP_TO_DATE), again.stderr
    assert everything(database_url) == upgraded


def assert_one_confirmed_booking_per_slot_of(url: str, slot_id: int) -> None:
    insert = ("INSERT INTO bookings (reference, slot_id, email, status, sequence, created_at, "
              "updated_at) VALUES ('SECOND00', %s, 'x@example.com', 'confirmed', 0, %s, %s)")
    now = str(datetime(2026, 11, 20, 15, 0))
    error = sqlite3.IntegrityError if kind(url) == "sqlite" else psycopg2.IntegrityError
    with pytest.raises(error):
        query(url, insert, (slot_id, now, now))


def test_the_release_befores_slots_stay_bookable_on_the_default_calendar(settings, clock):
    release_3(settings.database_url)
    with TestClient(create_app(settings, clock)) as client:
        assert [s["id"] for s in client.get("/availability").json()] == [1, 5]
        assert client.post("/book", json={"slot_id": 3, "email": "new@example.com"}
                           ).status_code == 404  # removed
        assert client.post("/book", json={"slot_id": 2, "email": "new@example.com"}
                           ).status_code == 409  # booked
        booked = client.post("/book", json={"slot_id": 5, "email": "new@example.com"})
        assert booked.status_code == 200
        assert [s["id"] for s in client.get("/availability").json()] == [1]
    assert query(settings.database_url, "SELECT slot_id, calendar_id FROM bookings "
                                        "WHERE email = 'new@example.com'") == [(5, 1)]
