"""The upgrade from the previous release's database, with data, on SQLite and PostgreSQL.

The previous release (a9e7779, bookings only in ``time_slots``) created its
table with Peewee's ``create_tables``; PREVIOUS_RELEASE_DDL is exactly what
that code ran on each database, read from its statements (``CREATE TABLE IF
NOT EXISTS`` and its two indexes). The data goes in with the plain driver, as
that release wrote it: naive UTC timestamps, booked slots with their email.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import datetime

import psycopg2
import pytest
from fastapi.testclient import TestClient
from support import SCRIPT

from scheduler_app.app import create_app
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
