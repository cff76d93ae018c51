"""Helpers for tests that run real processes: the CLI, servers, a TCP proxy.

Imported by name (``import support``): pytest puts this folder on sys.path
because tests/conftest.py lives here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlencode

import pytest

from scheduler_app.db import close_database, init_database, session

SCRIPT = str(Path(sys.executable).with_name("scheduler-app"))

# The tests' fixed instant: Friday 2026-11-20, 15:00 UTC; the next business day
# (US) is Monday 2026-11-23.
FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the app: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: datetime = FRIDAY):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wait_until(condition, seconds: float = 30, what: str = "the condition"):
    """Poll ``condition`` until it returns something truthy, and return that; fail
    after ``seconds``. (A bound on waiting for an outcome, not a measure of speed.)"""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def reading(database_url: str):
    """The service's models bound to the database at ``database_url`` for the
    block, on a connection of the test's own, closed afterwards."""
    init_database(database_url)
    try:
        with session():
            yield
    finally:
        close_database()


def bearer(token: str) -> dict:
    """The Authorization header of a booking's (or the admin's) token."""
    return {"Authorization": f"Bearer {token}"}


def post_book(client, slot_id: int = 1, email: str = "lead@example.com", headers=None, **fields):
    """``POST /book`` through a TestClient; returns the response."""
    return client.post("/book", json={"slot_id": slot_id, "email": email, **fields},
                       headers=headers or {})


def made(client, slot_id: int = 1, email: str = "lead@example.com", **fields) -> dict:
    """A new booking through a TestClient: its answer's ``booking`` part
    (reference, status, token, manage_url); fails unless it was a 200."""
    response = post_book(client, slot_id, email, **fields)
    assert response.status_code == 200, response.text
    return response.json()["booking"]


def free_ids(target, **query) -> list[int]:
    """The ids of ``GET /availability`` (with ``query``), from a TestClient or a
    server's port."""
    if isinstance(target, int):
        status, slots = request(target, "GET", f"/availability?{urlencode(query)}")
    else:
        response = target.get("/availability", params=query)
        status, slots = response.status_code, response.json()
    assert status == 200, slots
    return [slot["id"] for slot in slots]


def run_cli(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``scheduler-app ARGS`` to completion, with ``env`` added to the environment."""
    return subprocess.run(
        [SCRIPT, *args], env={**os.environ, **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )


def unavailable(reason: str, what: str = "this test") -> NoReturn:
    """Skip for ``reason``; but under CI (the CI variable set), which installs
    everything the tests need, fail instead: CI must not skip what it can run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so {what} must run)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body: object = None, timeout: float = 10):
    """One HTTP request on a fresh connection; returns (status, parsed JSON or text)."""
    status, _, data = exchange(port, method, path, body, timeout=timeout)
    return status, data


def exchange(port: int, method: str, path: str, body: object = None, headers: dict | None = None,
             timeout: float = 10, source: str | None = None):
    """Like ``request``, with request headers; returns (status, response headers, body).
    ``source``: the local address to connect from (e.g. 127.0.0.2), else the default."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        payload = None if body is None else json.dumps(body)
        sent = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, payload, {**sent, **(headers or {})})
        response = conn.getresponse()
        data = response.read().decode()
        received = {name.lower(): value for name, value in response.getheaders()}
        try:
            return response.status, received, json.loads(data)
        except ValueError:
            return response.status, received, data
    finally:
        conn.close()


def book(port: int, slot_id: int, email: str):
    return request(port, "POST", "/book", {"slot_id": slot_id, "email": email})


class Server:
    """``scheduler-app serve`` as a subprocess on a free port."""

    def __init__(self, database_url: str, workers: int = 1, env: dict | None = None, cwd=None):
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SCHEDULER_DB_WAIT_SECONDS": "10",
            **(env or {}),
        }
        self.args = [SCRIPT, "serve", "--port", str(self.port), "--workers", str(workers)]
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.output = ""

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        # Read the output as it comes: a server logging a line per request would
        # otherwise fill the pipe and block.
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._lines.extend, args=(self.process.stdout,),
                                        daemon=True)
        self._reader.start()
        return self

    def wait_ready(self, seconds: float = 30) -> Server:
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.finish()}")
            try:
                if request(self.port, "GET", "/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready after {seconds} s")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill_all(self) -> None:
        """SIGKILL the server and all its workers (its whole process group)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 30) -> str:
        """Wait for the server to exit; return all its output (stdout and stderr)."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout)  # to the end of the output, once its workers are gone too
        self.process.stdout.close()
        self.output = "".join(self._lines)
        return self.output

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.finish(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_all()


class TcpProxy:
    """A loopback TCP proxy that a test can cut (closing every connection and
    refusing new ones) and restore, to play a database outage."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            source.close()  # the other direction's pump closes the sink

    def cut(self) -> None:
        """Stop listening and close every open connection."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not,
            # and the socket would go on accepting.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        self.start()


def run_coroutine(coroutine):
    """Run ``coroutine`` (at most 10 s) on a loop of its own, in a thread of its own:
    the test's thread may still hold a running loop left by another test's client."""
    async def bounded():
        return await asyncio.wait_for(coroutine, 10)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, bounded()).result()
