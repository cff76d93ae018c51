"""The watcher: one thread per worker process that hears the change feed.

PostgreSQL: a dedicated autocommit connection, outside Peewee's pool (a
listener inside a transaction hears nothing), runs ``LISTEN`` and waits on its
socket. A NOTIFY is only a wake-up: notifications sent while the connection is
down are lost, so after every (re)connect it runs LISTEN first and then reads
the ``changes`` rows after its last version; it also reads them every 30 s
whatever it heard. SQLite: a dedicated connection asks ``PRAGMA data_version``
every 250 ms (it changes when another connection, in any process, commits),
then does the same read.

The read: the version first, then the rows after the last one up to it. A
version is bumped and its row written in one transaction, and versions are in
commit order, so those rows are all there; if they are not (pruned while the
watcher was away, or a version bumped without a row), the watcher publishes a
resync instead. Each row is encoded once as its ``slot`` event for the hub.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sqlite3
import threading
import time
from collections.abc import Callable

import peewee
import psycopg2

from ..availability import as_datetime
from ..db import make_database
from ..feed import CHANNEL
from ..models import Change, FeedVersion
from .hub import Hub, slot_event

log = logging.getLogger("scheduler_app.live")

CATCH_UP_SECONDS = 30.0
SQLITE_POLL_SECONDS = 0.25
BATCH = 1000  # rows read at a time
APPLICATION_NAME = "scheduler-app watcher"  # in pg_stat_activity

_VERSION = f"SELECT v FROM {FeedVersion._meta.table_name} WHERE id = 1"
_ROWS = (f"SELECT v, slot_id, start_time, end_time, state FROM {Change._meta.table_name} "
         "WHERE v > {p} AND v <= {p} ORDER BY v")


class Watcher:
    def __init__(self, database_url: str, hub: Hub, on_held: Callable[[], None] | None = None):
        self.database_url = database_url
        self.hub = hub
        self.on_held = on_held
        self.last: int | None = None  # the last version handed to the hub
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Connect and read the current version (so that streams start from it),
        then go on in a thread."""
        database = make_database(self.database_url)
        self._postgres = isinstance(database, peewee.PostgresqlDatabase)
        self._name, self._params = database.database, database.connect_params
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe()
        conn = None
        try:
            conn = self._connect()
            self._catch_up(conn, self.hub.publish)
        except (psycopg2.Error, sqlite3.Error, OSError) as exc:
            log.warning("The watcher cannot read the change feed yet: %s", _first_line(exc))
            self._close(conn)
            conn = None
        run = self._run_postgres if self._postgres else self._run_sqlite
        self._thread = threading.Thread(target=run, args=(conn,), name="scheduler-watcher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(10)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the loops ------------------------------------------------------------

    def _run_postgres(self, conn) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()  # LISTEN first, then catch up
                    self.reconnects += 1
                    self._catch_up(conn)
                    delay = 0.1
                ready, _, _ = select.select([conn, self._wake_r], [], [], CATCH_UP_SECONDS)
                if self._stop.is_set():
                    break
                if conn in ready:
                    conn.poll()
                    conn.notifies.clear()  # wake-ups only: the table says what changed
                self._catch_up(conn)
            except (psycopg2.Error, OSError, ValueError) as exc:
                self._close(conn)
                conn = None
                log.warning("The watcher lost its database connection (%s); reconnecting in "
                            "%.1f s", _first_line(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        self._close(conn)

    def _run_sqlite(self, conn) -> None:
        seen = None
        due = time.monotonic() + CATCH_UP_SECONDS
        delay = SQLITE_POLL_SECONDS
        while not self._stop.wait(delay):
            try:
                if conn is None:
                    conn = self._connect()
                    self.reconnects += 1
                    seen = None
                version = conn.execute("PRAGMA data_version").fetchall()[0][0]
                if version != seen or time.monotonic() >= due:
                    seen = version
                    self._catch_up(conn)
                    due = time.monotonic() + CATCH_UP_SECONDS
                delay = SQLITE_POLL_SECONDS
            except (sqlite3.Error, OSError) as exc:
                self._close(conn)
                conn = None
                log.warning("The watcher cannot read the change feed (%s); retrying",
                            _first_line(exc))
                delay = min(max(delay * 2, 0.5), 5.0)
        self._close(conn)

    # -- reading the feed -----------------------------------------------------

    def _connect(self):
        if self._postgres:
            conn = psycopg2.connect(dbname=self._name, application_name=APPLICATION_NAME,
                                    **self._params)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            return conn
        conn = sqlite3.connect(self._name, isolation_level=None, check_same_thread=False,
                               timeout=5)
        conn.execute("PRAGMA data_version")
        return conn

    @staticmethod
    def _close(conn) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()

    def _query(self, conn, sql: str, params: tuple = ()) -> list[tuple]:
        if self._postgres:
            with conn.cursor() as cur:
                cur.execute(sql.format(p="%s"), params)
                return cur.fetchall()
        return conn.execute(sql.format(p="?"), params).fetchall()

    def _catch_up(self, conn, publish: Callable | None = None) -> None:
        """Hand the hub every change after ``last``, up to the current version."""
        publish = publish or self.hub.publish_threadsafe
        while True:
            row = self._query(conn, _VERSION)
            if not row:
                return
            version = row[0][0]
            last = self.last
            if version == last:
                return
            if last is None or version < last:  # first read, or a database made anew
                self.last = version
                publish(version, [], True)
                if last is None and self.on_held:
                    self.on_held()  # holds made before this process started
                return
            upto = min(version, last + BATCH)
            rows = self._query(conn, _ROWS, (last, upto))
            if [r[0] for r in rows] != list(range(last + 1, upto + 1)):
                log.info("The change feed has no rows for some versions up to %d; "
                         "streams resync", version)
                self.last = version
                publish(version, [], True)
                return
            tz = self.hub.tz
            events = [slot_event(v, slot_id, as_datetime(start), as_datetime(end), state, tz)
                      for v, slot_id, start, end, state in rows]
            self.last = upto
            publish(upto, events)
            if self.on_held and any(r[4] == "held" for r in rows):
                self.on_held()
            if upto == version:
                return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
