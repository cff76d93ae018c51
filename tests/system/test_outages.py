"""Database outages: answer 503 quickly, recover without a restart, lose nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from support import SCRIPT, TcpProxy, book, free_port, request, wait_until


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{netloc}:{proxy.port}"))


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def serves_again(port: int) -> bool:
    try:
        return request(port, "GET", "/availability", timeout=5)[0] == 200
    except OSError:
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_outage_is_503_then_recovers_without_restart(servers, database_url):
    proxy = TcpProxy(urlsplit(database_url).port or 5432).start()
    server = servers(through(proxy, database_url), workers=2).wait_ready()
    assert book(server.port, 1, "before@example.com")[0] == 200

    proxy.cut()
    for call in (
        lambda: request(server.port, "GET", "/availability"),
        lambda: book(server.port, 2, "during@example.com"),
        lambda: request(server.port, "GET", "/availability"),
    ):
        (status, body), took = timed(call)
        assert status == 503, body
        assert isinstance(body, dict) and body["detail"]
        assert took < 5, f"took {took:.1f} s"
    assert request(server.port, "GET", "/ready")[0] == 503
    assert request(server.port, "GET", "/health")[0] == 200

    proxy.restore()
    wait_until(lambda: serves_again(server.port), 5, "the server serving again")
    # ...and steadily: no stale pooled connection left to fail a later request.
    assert [request(server.port, "GET", "/availability")[0] for _ in range(20)] == [200] * 20
    free = {s["id"] for s in request(server.port, "GET", "/availability")[1]}
    assert 1 not in free and 2 in free  # the earlier booking kept, the failed one not made
    assert book(server.port, 2, "after@example.com")[0] == 200
    assert book(server.port, 1, "late@example.com")[0] == 409
    assert server.process.poll() is None
    proxy.cut()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_start_waits_for_the_database_then_gives_up_with_one_line(database_url):
    proxy = TcpProxy(urlsplit(database_url).port or 5432)  # not started: refuses
    env_url = through(proxy, database_url)
    started = time.monotonic()
    result = subprocess.run(
        [SCRIPT, "serve", "--port", str(free_port())],
        env={**os.environ, "DATABASE_URL": env_url, "SCHEDULER_DB_WAIT_SECONDS": "2"},
        capture_output=True, text=True, timeout=30,
    )
    took = time.monotonic() - started
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("scheduler-app: The database is unavailable:")
    assert last.endswith("(gave up after 2 s)")
    assert "Traceback" not in result.stderr
    assert 2 <= took < 10
    assert result.stderr.count("retrying in") >= 2  # it did retry, backing off


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_start_succeeds_when_the_database_comes_back_in_time(servers, database_url):
    proxy = TcpProxy(urlsplit(database_url).port or 5432)
    server = servers(through(proxy, database_url), env={"SCHEDULER_DB_WAIT_SECONDS": "20"})
    time.sleep(1.5)
    assert server.process.poll() is None  # still waiting
    proxy.start()
    server.wait_ready(seconds=20)
    assert len(request(server.port, "GET", "/availability")[1]) == 16
    proxy.cut()


def test_sqlite_locked_beyond_the_busy_timeout_is_503(servers, tmp_path):
    path = tmp_path / "locked.db"
    server = servers(f"sqlite:///{path}").wait_ready()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        (status, body), took = timed(lambda: book(server.port, 1, "lead@example.com"))
        assert status == 503 and body["detail"]
        assert took < 10
        assert request(server.port, "GET", "/availability")[0] == 200  # readers still read
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert book(server.port, 1, "lead@example.com")[0] == 200
