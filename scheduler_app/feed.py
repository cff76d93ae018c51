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

from .db import database
from .models import Change, FeedVersion, to_db_time

CHANNEL = "scheduler_feed"

# What a change does to a slot, as the stream names it.
STATES = ("free", "booked", "held", "added", "removed")


class SlotChange(NamedTuple):
    slot_id: int
    start_time: datetime  # naive UTC
    end_time: datetime
    state: str


def record(changes: list[SlotChange], now: datetime) -> int | None:
    """Number ``changes`` with the next versions and store them; return the last
    version, or None when there was nothing to record."""
    if not changes:
        return None
    bump = (
        FeedVersion.update(v=FeedVersion.v + len(changes))
        .where(FeedVersion.id == 1)
        .returning(FeedVersion.v)
    )
    last = next(iter(bump.execute())).v
    first = last - len(changes) + 1
    created = to_db_time(now)
    rows = [
        {"v": first + i, "slot_id": c.slot_id, "start_time": c.start_time,
         "end_time": c.end_time, "state": c.state, "created_at": created}
        for i, c in enumerate(changes)
    ]
    for start in range(0, len(rows), 500):
        Change.insert_many(rows[start:start + 500]).execute()
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, str(last)))
    return last
