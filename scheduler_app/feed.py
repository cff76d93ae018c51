"""The change feed's write side: every change of availability, numbered.

``record`` runs inside the booking module's transaction: it bumps the single
row of ``feed_version`` (``UPDATE ... SET v = v + n RETURNING v``; its row
lock makes version order commit order, which an autoincrement id would not)
and writes one ``changes`` row per slot change, numbered by version. On
PostgreSQL it also sends ``NOTIFY`` with the version only, delivered at commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import peewee

from .db import database, sql
from .models import Change, to_db_time

CHANNEL = "scheduler_feed"

# What a change does to a slot, as the stream names it.
STATES = ("free", "booked", "held", "added", "removed")


class SlotChange(NamedTuple):
    slot_id: int
    start_time: datetime  # naive UTC
    end_time: datetime
    state: str


_BUMP = "UPDATE feed_version SET v = v + {p} WHERE id = 1 RETURNING v"
_INSERT_CHANGE = (
    "INSERT INTO changes (v, slot_id, start_time, end_time, state, created_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)
# PostgreSQL, one change (the usual case): bump, insert and notify in one round trip.
_RECORD_ONE = (
    "WITH b AS (UPDATE feed_version SET v = v + 1 WHERE id = 1 RETURNING v), "
    "i AS (INSERT INTO changes (v, slot_id, start_time, end_time, state, created_at) "
    "SELECT v, %s, %s::timestamp, %s::timestamp, %s, %s::timestamp FROM b RETURNING v) "
    "SELECT v, pg_notify(%s, v::text) FROM i"
)


def record_and_commit(changes: list[SlotChange], now: datetime) -> None:
    """PostgreSQL: ``record`` as the transaction's last statement, and COMMIT in
    the same round trip. The version's row lock is held from the bump to the end
    of the commit: sent apart, the commit waited for the thread to win the GIL
    back (up to 5 ms under load) while every other change waited for the lock."""
    if len(changes) == 1:
        c = changes[0]
        database.execute_sql(_RECORD_ONE + "; COMMIT", (
            c.slot_id, c.start_time, c.end_time, c.state, to_db_time(now), CHANNEL))
        return
    record(changes, now)
    database.execute_sql("COMMIT")


def record(changes: list[SlotChange], now: datetime) -> int | None:
    """Number ``changes`` with the next versions and store them; return the last
    version, or None when there was nothing to record."""
    if not changes:
        return None
    postgres = isinstance(database.obj, peewee.PostgresqlDatabase)
    if postgres and len(changes) == 1:
        c = changes[0]
        [last, _] = database.execute_sql(_RECORD_ONE, (
            c.slot_id, c.start_time, c.end_time, c.state, to_db_time(now), CHANNEL)).fetchone()
        return last
    [last] = database.execute_sql(sql(_BUMP), (len(changes),)).fetchone()
    first = last - len(changes) + 1
    created = to_db_time(now)
    rows = [(first + i, c.slot_id, c.start_time, c.end_time, c.state, created)
            for i, c in enumerate(changes)]
    if len(rows) == 1:  # the usual case, without Peewee's compile
        database.execute_sql(sql(_INSERT_CHANGE), rows[0])
        rows = []
    fields = [Change.v, Change.slot_id, Change.start_time, Change.end_time, Change.state,
              Change.created_at]
    for start in range(0, len(rows), 500):
        Change.insert_many(rows[start:start + 500], fields=fields).execute()
    if postgres:
        database.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, str(last)))
    return last
