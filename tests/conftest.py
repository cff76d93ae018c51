"""Shared fixtures: every database test runs on a SQLite file and on real PostgreSQL.

PostgreSQL comes from SCHEDULER_TEST_POSTGRES_URL (default: the local server);
the session creates its own database and drops it at the end. If the server
cannot be reached the PostgreSQL tests are skipped, saying so, except under CI
(the CI variable set), where they fail.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import threading
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import invariant
import psycopg2
import pytest
from fastapi.testclient import TestClient
from receivers import make_certificate
from support import FRIDAY, Clock, unavailable

from scheduler_app.app import create_app
from scheduler_app.db import close_database, init_database
from scheduler_app.migrations import upgrade
from scheduler_app.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_collection_modifyitems(items):
    """A test that asks for the PostgreSQL server itself must say so by its marker,
    so that ``-m postgres`` / ``-m "not postgres"`` select what they say."""
    unmarked = [item.nodeid for item in items if "postgres_url" in item.fixturenames
                and item.get_closest_marker("postgres") is None]
    if unmarked:
        raise pytest.UsageError(f"uses postgres_url without @pytest.mark.postgres: {unmarked}")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a fresh PostgreSQL database for this test session."""
    server = os.environ.get("SCHEDULER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        admin = psycopg2.connect(server, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        unavailable(f"PostgreSQL at {server} is unreachable: {str(exc).strip()}",
                    "the PostgreSQL tests")
    admin.autocommit = True
    name = f"scheduler_test_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        close_database()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A URL for an empty database: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scheduler.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    yield url


@pytest.fixture(scope="session")
def postgres_schema(postgres_url) -> str | None:
    """The schema and rows that the migrations make on an empty PostgreSQL database,
    as SQL: a scratch database is upgraded once and dumped (pg_dump --inserts). The
    in-process tests (``db``, ``client``) start from it in one round trip, where
    running every step again costs more than the test itself; their startup's
    ``upgrade()`` then finds every step applied. The steps themselves run from an
    empty database in the tests that ask for ``database_url`` alone (the servers,
    the migration tests). None where pg_dump is missing or fails: the steps run."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    scratch = f"{urlsplit(postgres_url).path.lstrip('/')}_schema"
    scratch_url = _with_database(postgres_url, scratch)
    admin = psycopg2.connect(postgres_url, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{scratch}"')
        init_database(scratch_url)
        try:
            upgrade()
        finally:
            close_database()
        dumped = subprocess.run([pg_dump, "--no-owner", "--no-privileges", "--inserts",
                                 scratch_url], capture_output=True, text=True, timeout=60)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.close()
    if dumped.returncode != 0:
        return None
    # Lines for psql itself (\restrict, \unrestrict) are not SQL.
    return "\n".join(line for line in dumped.stdout.splitlines() if not line.startswith("\\"))


def _migrated(request, url: str) -> None:
    """Give the empty PostgreSQL database at ``url`` the migrated schema at once
    (``postgres_schema``); SQLite files are left to the migrations, which are fast there."""
    if not url.startswith("postgres"):
        return
    schema = request.getfixturevalue("postgres_schema")
    if schema is None:
        return
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;" + schema)
    conn.close()


@pytest.fixture(autouse=True)
def booking_invariant(request):
    """After each test that used a database (``database_url``, so also ``settings``,
    ``db``, ``client`` and the system tests' servers), check the invariant over
    the whole database: each slot is booked if and only if exactly one confirmed
    booking points at it, with the same email (``tests/invariant.py``; one query).

    Skipped where the database has no ``bookings`` (or ``time_slots``) table: tests
    that drop tables, or that leave a legacy schema the service never upgraded.
    It is set up before the test's other fixtures, so it checks after their
    teardown (the app and the servers stopped), on SQLite and PostgreSQL alike.
    """
    url = request.getfixturevalue("database_url") if "database_url" in request.fixturenames \
        else None
    yield
    if url is not None:
        invariant.check(url)


@pytest.fixture
def clock():
    return Clock(FRIDAY)


@pytest.fixture
def settings(database_url):
    return replace(Settings(), database_url=database_url, timezone="America/New_York")


@pytest.fixture
def db(request, settings):
    """The database bound and its table created, for tests of the domain functions."""
    _migrated(request, settings.database_url)
    database = init_database(settings.database_url)
    upgrade()
    yield database
    close_database()


@pytest.fixture
def client(request, settings, clock):
    """A TestClient over the app; startup has created the table and seeded it."""
    _migrated(request, settings.database_url)
    with TestClient(create_app(settings, clock)) as test_client:
        yield test_client


def _run_together(count: int, target) -> list:
    barrier = threading.Barrier(count, timeout=60)
    results: list = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a worker never returned"
    return results


@pytest.fixture
def run_together():
    """``run_together(count, target)`` calls ``target(i)`` from ``count`` threads
    released together by a barrier, and returns the results (or exceptions)."""
    return _run_together


@pytest.fixture
def api_schema(client):
    """The app's own OpenAPI schema, for schemathesis; requests go to the running app."""
    import schemathesis

    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A throwaway self-signed certificate and its key (localhost, 127.0.0.1), made
    once: ``(cert path, key path)``."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def quiet_smtp_log():
    """aiosmtpd's own chatter (logger ``mail.log``) down to errors for the test,
    and the logger's level put back afterwards."""
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture
def trust(certificate, monkeypatch, quiet_smtp_log):
    """Trust the throwaway certificate, as SSL_CERT_FILE does for OpenSSL's defaults."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
