"""The database handle: chosen by DATABASE_URL, opened per call, never at import.

``database`` is a proxy that ``init_database`` binds to a real Peewee database:
SQLite (the embedded default, WAL mode with a busy timeout) or pooled PostgreSQL.
Connections are per thread, so each domain call opens and closes its own with
``session()``, which also turns driver failures into ``DatabaseUnavailable``.
Statements in a session autocommit; wrap them in ``database.atomic()`` where
several must commit together. (On SQLite a read-then-write transaction can fail
with "database is locked" when another writer commits in between, so booking
relies on one guarded UPDATE instead.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.pool import PooledPostgresqlDatabase

from .errors import DatabaseUnavailable

database = peewee.DatabaseProxy()

log = logging.getLogger("scheduler_app.db")

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "normal"),
    ("busy_timeout", 5000),
    ("foreign_keys", 1),
)

# PostgreSQL defaults; query parameters in DATABASE_URL override them.
# At most 16 connections per worker process, so that several workers stay well
# under the server's max_connections (100 by default; 4 workers x 40 exceeded it
# and turned a burst of bookings into "too many clients" 503s). A request that
# finds all 16 busy waits for one (up to `timeout` seconds) instead of failing.
POSTGRES_DEFAULTS = {
    "max_connections": 16,
    "stale_timeout": 300,
    "timeout": 10,
    "connect_timeout": 3,
}

_SCHEMES = {
    "sqlite": "sqlite+pool",
    "postgres": "postgresql+pool",
    "postgresql": "postgresql+pool",
}


class PooledPostgres(PooledPostgresqlDatabase):
    """Peewee's PostgreSQL pool, with a checkout check that costs no round trip.

    Peewee checks an idle pooled connection with ``SELECT 1`` before handing it
    out, a round trip per request (~0.1 ms of the ~0.3 ms a GET /availability
    spends on the database). A connection that the server closed, or that a
    proxy cut, has its socket readable (end of file, or an error message), so
    only such a socket gets Peewee's full check; a quiet one is in use as it
    was when it came back to the pool. A connection whose peer vanished without
    a word fails its next query either way.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred_begin = threading.local()

    def begin_with_next_statement(self) -> None:
        """BEGIN, sent in the round trip of this thread's next statement (a round
        trip less per transaction); ``rollback`` forgets it when none was sent."""
        self._deferred_begin.pending = True

    def execute_sql(self, sql, params=None):
        if getattr(self._deferred_begin, "pending", False):
            self._deferred_begin.pending = False
            sql = "BEGIN; " + sql  # psycopg2 answers with the last statement's result
        return super().execute_sql(sql, params)

    def rollback(self):
        if getattr(self._deferred_begin, "pending", False):
            self._deferred_begin.pending = False  # nothing began: nothing to roll back
            return
        super().rollback()

    def _is_closed(self, conn) -> bool:
        if conn.closed or self._adapter.txn_status(conn) != self._adapter.txn_idle:
            return super()._is_closed(conn)
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable) and super()._is_closed(conn)


def make_database(url: str) -> peewee.Database:
    """A Peewee database for ``url`` with our defaults, not yet connected."""
    parsed = urlparse(url)
    scheme = _SCHEMES[parsed.scheme]
    params = db_url.parseresult_to_dict(parsed, unquote_password=True, unquote_user=True)
    if scheme.startswith("sqlite"):
        params.setdefault("pragmas", SQLITE_PRAGMAS)
        params.setdefault("max_connections", 40)
        params.setdefault("stale_timeout", 300)
        params.setdefault("timeout", 10)
        params.setdefault("check_same_thread", False)
        return db_url.schemes[scheme](autoconnect=False, **params)
    return PooledPostgres(autoconnect=False, **{**POSTGRES_DEFAULTS, **params})


def init_database(url: str) -> peewee.Database:
    """Bind the module's ``database`` proxy to a new database for ``url``."""
    if database.obj is not None and not database.obj.is_closed():
        database.obj.close()
    if isinstance(database.obj, peewee.Database) and hasattr(database.obj, "close_all"):
        database.obj.close_all()
    db = make_database(url)
    database.initialize(db)
    return db


def close_database() -> None:
    """Close every pooled connection (at shutdown)."""
    if database.obj is not None and hasattr(database.obj, "close_all"):
        database.obj.close_all()


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Take a connection for this thread, give it back afterwards; map driver failures."""
    try:
        with database.connection_context():
            yield
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        # No pool flush needed: Peewee 4's pool checks a PostgreSQL connection
        # on checkout and replaces a dead one, so the service recovers by itself.
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> BaseException:
    """A driver's failure as ``DatabaseUnavailable`` (a 503); anything else as it is."""
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        mapped = DatabaseUnavailable(f"The database is unavailable: {_first_line(exc)}")
        mapped.__cause__ = exc
        return mapped
    return exc


# SQLite and threads. Python's sqlite3 releases the GIL around every step, one
# per row, and each time the thread must win the GIL back from the others: with
# 32 requests in flight, GET /availability over 2,000 slots fell to 2 requests/s
# (870 ms of CPU each, a million context switches in 3 s). And SQLite lets one
# writer in at a time and sends the others to its busy handler, which sleeps
# 1, 2, 5 ms... between tries. So in each process one thread at a time reads,
# and one at a time books; the others queue here, and readers never wait for
# writers (WAL). They queue before taking a connection, so a process holds two
# SQLite connections, not one per waiting thread (32 under 32 concurrent
# requests: 4 MB more). On PostgreSQL both are no-ops.
_sqlite_reader = threading.Lock()
_sqlite_writer = threading.Lock()


@contextlib.contextmanager
def _sqlite_only(lock: threading.Lock) -> Iterator[None]:
    if isinstance(database.obj, peewee.SqliteDatabase):
        with lock:
            yield
    else:
        yield


def reading() -> contextlib.AbstractContextManager[None]:
    """Around a ``session()`` that reads: on SQLite, one reader of this process at a time."""
    return _sqlite_only(_sqlite_reader)


def writing() -> contextlib.AbstractContextManager[None]:
    """Around a ``session()`` that writes: on SQLite, one writer of this process at a time."""
    return _sqlite_only(_sqlite_writer)


def sql(template: str) -> str:
    """``template`` with ``{p}`` as the bound database's placeholder (``?`` or ``%s``)."""
    return _with_placeholder(template, database.obj.param)


@functools.cache
def _with_placeholder(template: str, param: str) -> str:
    return template.format(p=param)


def wait_for_database(seconds: float) -> None:
    """Return once the database answers; retry with backoff for up to ``seconds``.

    Raises ``DatabaseUnavailable`` (saying how long it tried) when it never does.
    """
    deadline = time.monotonic() + seconds
    delay = 0.25
    while True:
        try:
            with session():
                database.execute_sql("SELECT 1")
            return
        except DatabaseUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseUnavailable(f"{exc} (gave up after {seconds:g} s)") from exc
            log.warning("%s; retrying in %.1f s", exc, min(delay, left))
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
