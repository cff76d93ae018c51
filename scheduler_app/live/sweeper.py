"""The sweeper: a thread per worker that gives expired holds a writer, and prunes the feed.

A hold expires by itself (every query compares ``held_until`` with the time),
but nothing would tell the live widgets. So once a hold has run out the
sweeper runs ``booking.expire_holds`` through ``booking.transaction``, which
records a ``free`` change for it. Every worker sweeps; one at a time gets to
(PostgreSQL: an advisory lock, skipped by the others; SQLite: BEGIN
IMMEDIATE), and the guarded UPDATE leaves the others nothing to do.

It looks for holds only when there may be some: after the watcher heard a
``held`` change, and once a minute regardless. And every ten minutes it
deletes the change rows older than a day (a stream further behind resyncs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import peewee

from .. import booking
from ..availability import as_datetime
from ..db import database, session, writing
from ..errors import DatabaseUnavailable
from ..models import Change, TimeSlot, to_db_time
from ..settings import Settings

log = logging.getLogger("scheduler_app.live")

TICK_SECONDS = 0.5
LOOK_ANYWAY_SECONDS = 60.0
PRUNE_SECONDS = 600.0
KEEP_CHANGES = timedelta(days=1)


class Sweeper:
    def __init__(self, settings: Settings, clock: Callable[[], datetime]):
        self.settings = settings
        self.clock = clock
        self._maybe_holds = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hint(self) -> None:
        """There may be holds now (called by the watcher's thread)."""
        self._maybe_holds.set()

    def start(self) -> None:
        self._stop.clear()
        self._maybe_holds.set()
        self._thread = threading.Thread(target=self._run, name="scheduler-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        looked = pruned = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            try:
                if self._maybe_holds.is_set() or time.monotonic() - looked >= LOOK_ANYWAY_SECONDS:
                    looked = time.monotonic()
                    self.sweep()
                if time.monotonic() - pruned >= PRUNE_SECONDS:
                    pruned = time.monotonic()
                    prune(self.clock())
            except DatabaseUnavailable as exc:
                log.warning("The sweeper cannot reach the database: %s", exc)
            except Exception:  # the thread must go on; the log has the traceback
                log.exception("The sweeper failed; it tries again")

    def sweep(self) -> int:
        """Free the holds that have run out; return how many changes were recorded."""
        now = self.clock()
        first = next_expiry()
        if first is None:
            self._maybe_holds.clear()
            return 0
        if first > now:
            return 0
        return booking.transaction(self.settings, now, booking.expire_holds)


def next_expiry() -> datetime | None:
    """When the first live or expired hold of an unbooked slot ends (aware), or None."""
    with session():
        value = (TimeSlot.select(peewee.fn.MIN(TimeSlot.held_until))
                 .where(TimeSlot.held_until.is_null(False) & ~TimeSlot.is_booked)
                 .scalar())
    return None if value is None else as_datetime(value).replace(tzinfo=UTC)


def prune(now: datetime) -> int:
    """Delete the change rows older than a day (one process at a time); return how many."""
    with writing(), session(), database.atomic():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            got = database.execute_sql("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                       ("scheduler:prune_changes",)).fetchone()[0]
            if not got:
                return 0
        return Change.delete().where(Change.created_at < to_db_time(now - KEEP_CHANGES)).execute()
