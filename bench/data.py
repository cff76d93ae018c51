"""The benchmark's databases: created, filled directly and counted, on the service's own models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2

from scheduler_app import availability, feed
from scheduler_app.db import close_database, database, init_database, session
from scheduler_app.migrations import upgrade
from scheduler_app.models import TimeSlot

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    return os.environ.get(
        "SCHEDULER_BENCH_POSTGRES_URL",
        os.environ.get("SCHEDULER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on ``server`` for the run, dropped afterwards; yields its URL."""
    admin = psycopg2.connect(server, connect_timeout=5)
    admin.autocommit = True
    name = f"scheduler_bench_{os.getpid()}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def bound(url: str) -> Iterator[None]:
    init_database(url)
    try:
        yield
    finally:
        close_database()


def drop_table(url: str) -> None:
    """An empty database for a fresh start of the service (it creates and seeds the
    tables): every table dropped, those that refer to the slots with them."""
    with bound(url), session():
        tables = database.get_tables()
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            if tables:
                database.execute_sql(f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE")
            return
        database.execute_sql("PRAGMA foreign_keys = OFF")
        for table in tables:
            database.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
        database.execute_sql("PRAGMA foreign_keys = ON")


def tomorrow() -> datetime:
    return (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0, tzinfo=None)


def reset_slots(url: str, count: int) -> None:
    """Replace every slot with ``count`` free ones, ids 1..count, 30 minutes apart from tomorrow."""
    start = tomorrow()
    rows = [(i, start + timedelta(minutes=30 * (i - 1)), start + timedelta(minutes=30 * i))
            for i in range(1, count + 1)]
    fields = [TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time]
    with bound(url):
        upgrade()
        _empty()
        with session(), database.atomic():
            for chunk in range(0, len(rows), 2000):
                TimeSlot.insert_many(rows[chunk:chunk + 2000], fields=fields).execute()
        _analyze()


# What refers to slots, emptied with them (children first).
_DEPENDENT = ("outbox", "idempotency_keys", "changes", "bookings")


def _empty() -> None:
    """Delete every slot and what refers to them; on PostgreSQL by TRUNCATE, which
    leaves no dead rows behind (rounds of DELETE and INSERT would bloat the table
    between vacuums). The feed's version moves on, so no cached body survives."""
    with session():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            database.execute_sql(f"TRUNCATE {', '.join(_DEPENDENT)}, time_slots")
        else:
            for table in (*_DEPENDENT, "time_slots"):
                database.execute_sql(f"DELETE FROM {table}")
        database.execute_sql("UPDATE feed_version SET v = v + 1")
        if isinstance(database.obj, peewee.PostgresqlDatabase):  # wake the watchers, as a change does
            database.execute_sql("SELECT pg_notify(%s, v::text) FROM feed_version WHERE id = 1",
                                 (feed.CHANNEL,))


def _analyze() -> None:
    with session():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            database.execute_sql("ANALYZE time_slots")


def booked_count(url: str) -> int:
    with bound(url), session():
        return TimeSlot.select().where(TimeSlot.is_booked).count()


def explain_availability(url: str, rows: int = 100_000, free: int = 1_000) -> str:
    """PostgreSQL's EXPLAIN ANALYZE of the availability query over ``rows`` slots:
    half of them past, then booked ones, the last ``free`` free."""
    now = datetime.now(UTC)
    first = (now - timedelta(minutes=30 * (rows // 2))).replace(tzinfo=None)
    data = []
    for i in range(rows):
        start = first + timedelta(minutes=30 * i)
        booked = rows // 2 <= i < rows - free
        data.append((i + 1, start, start + timedelta(minutes=30), booked,
                     "x@example.com" if booked else None))
    fields = [TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time, TimeSlot.is_booked,
              TimeSlot.booked_by_email]
    with bound(url):
        upgrade()
        _empty()
        with session(), database.atomic():
            for chunk in range(0, rows, 5000):
                TimeSlot.insert_many(data[chunk:chunk + 5000], fields=fields).execute()
        _analyze()
        sql, params = availability.free_slots_query(now).sql()
        with session():
            plan = database.execute_sql(f"EXPLAIN ANALYZE {sql}", params).fetchall()
    return "\n".join(row[0] for row in plan)
