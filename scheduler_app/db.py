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
import logging
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import peewee
from playhouse import db_url

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
    else:
        params = {**POSTGRES_DEFAULTS, **params}
    return db_url.schemes[scheme](autoconnect=False, **params)


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
        raise DatabaseUnavailable(f"The database is unavailable: {_first_line(exc)}") from exc


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
