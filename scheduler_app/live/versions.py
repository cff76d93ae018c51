"""The feed's current version, read for a request on the event loop.

A kept ``GET /availability`` body is served only once the request itself has
read the current version (read-your-writes: see ``cache.py``). That read must
start after the request arrived, so that it sees every change answered before.

SQLite (``SqliteVersion``): ``PRAGMA data_version`` on a dedicated connection,
on the loop (a local file, no network wait); it changes whenever another
connection of any process commits, and only then is the version row read.

PostgreSQL (``PostgresVersion``): a network round trip must never block the
loop, and sending each request's read through the thread pool costs a thread
hop and a pool checkout per request. So a thread of its own, with a dedicated
autocommit connection outside the pool, reads the version for all the requests
that asked since its previous read began, and hands it to each of them on
their loop. Every request waits for a read that started after it asked; under
load one round trip answers many requests.
"""

from __future__ import annotations

import contextlib
import sqlite3

import peewee
import psycopg2

from ..db import make_database
from ..errors import DatabaseUnavailable
from ..handoff import BatchThread, settle
from ..models import FeedVersion

_VERSION_SQL = f"SELECT v FROM {FeedVersion._meta.table_name} WHERE id = 1"
APPLICATION_NAME = "scheduler-app versions"  # in pg_stat_activity


def version_reader(database_url: str) -> SqliteVersion | PostgresVersion:
    """The version reader for the database of ``database_url``."""
    if isinstance(make_database(database_url), peewee.SqliteDatabase):
        return SqliteVersion(database_url)
    return PostgresVersion(database_url)


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return DatabaseUnavailable(f"The database is unavailable: {first}")


class SqliteVersion:
    """The version, on the loop: ``data_version`` first, the row only when it moved."""

    def __init__(self, database_url: str):
        self._path = make_database(database_url).database
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._version = 0

    async def current(self) -> int:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, isolation_level=None,
                                             check_same_thread=False, timeout=5)
                self._seen = None
            seen = self._conn.execute("PRAGMA data_version").fetchall()[0][0]
            if seen != self._seen:
                self._version = self._conn.execute(_VERSION_SQL).fetchall()[0][0]
                self._seen = seen
            return self._version
        except sqlite3.Error as exc:
            self.close()
            raise _unavailable(exc) from exc

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class PostgresVersion(BatchThread):
    """The version from a reader thread, one round trip for every request waiting."""

    name = "scheduler-versions"

    def __init__(self, database_url: str):
        super().__init__()
        database = make_database(database_url)
        self._name, self._params = database.database, database.connect_params
        self._conn = None
        self.reads = 0  # round trips made (a test counts them)

    async def current(self) -> int:
        return await self.ask(None)

    def refused(self) -> DatabaseUnavailable:
        return DatabaseUnavailable("The database is unavailable: the worker is stopping")

    # -- the reader thread -----------------------------------------------------

    def answer(self, batch: list) -> None:
        try:
            version, error = self._read_once_more(), None
        except (psycopg2.Error, OSError) as exc:
            self._disconnect()
            version, error = None, _unavailable(exc)
        make = (lambda: DatabaseUnavailable(str(error))) if error is not None else None
        settle((future, version, make) for _, future in batch)

    def stopped(self) -> None:
        self._disconnect()

    def _read_once_more(self) -> int:
        """The version; a kept connection that fails (the server restarted, a proxy
        dropped it while idle) is replaced once before the requests hear of it."""
        kept = self._conn is not None
        try:
            return self._read()
        except (psycopg2.Error, OSError):
            self._disconnect()
            if not kept:
                raise
        return self._read()

    def _read(self) -> int:
        if self._conn is None:
            self._conn = psycopg2.connect(dbname=self._name, application_name=APPLICATION_NAME,
                                          **self._params)
            self._conn.autocommit = True
        with self._conn.cursor() as cursor:
            cursor.execute(_VERSION_SQL)
            [version] = cursor.fetchone()
        self.reads += 1
        return version

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
            self._conn = None

