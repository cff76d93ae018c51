"""Clients of GET /availability/stream for the tests: a raw reader on a real socket.

``Subscriber`` reads one stream in a thread (http.client, no SSE library in
between, so what is asserted is what the server sent) and reconnects like an
EventSource: after the stream ends, or its server goes away, it connects
again, to the next port of its list, with ``Last-Event-ID``. ``open_streams``
opens many at once with asyncio, for the tests of a thousand streams.

Imported by name (``import streams``), like ``support``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Event:
    name: str
    data: dict
    id: int | None
    retry: int | None
    port: int
    at: float = field(default_factory=time.monotonic)


def parse_frames(text: str, port: int = 0) -> list[Event]:
    """The events in ``text`` (complete frames only)."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        if not frame.strip():
            continue
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        events.append(Event(fields.get("event", "message"), json.loads(fields.get("data", "null")),
                            int(fields["id"]) if "id" in fields else None,
                            int(fields["retry"]) if "retry" in fields else None, port))
    return events


class Subscriber:
    """One EventSource-like client; its events arrive in ``self.events`` (a queue)."""

    def __init__(self, ports: list[int] | int, since: int | None = None,
                 headers: dict | None = None, reconnect: bool = True):
        self.ports = [ports] if isinstance(ports, int) else list(ports)
        self.since = since
        self.headers = headers or {}
        self.reconnect = reconnect
        self.events: queue.Queue[Event] = queue.Queue()
        self.last_event_id: int | None = None
        self.connections: list[tuple[int, dict]] = []  # (port, request headers) of each connect
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, wait: bool = True) -> Subscriber:
        self._thread.start()
        if wait:
            assert self._opened.wait(10), "the stream did not open"
        return self

    def close(self) -> None:
        self._stop.set()
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(2)
        self._thread.join(10)

    def next(self, name: str | None = "slot", timeout: float = 10) -> Event:
        """The next event (named ``name``; others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {name} event within {timeout} s"
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if name is None or event.name == name:
                return event

    def slot_events(self, count: int, timeout: float = 10) -> list[Event]:
        return [self.next("slot", timeout) for _ in range(count)]

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            port = self.ports[turn % len(self.ports)]
            try:
                self._read(port)
            except (OSError, http.client.HTTPException):
                pass
            if not self.reconnect or self._stop.is_set():
                return
            turn += 1
            self._stop.wait(0.2)

    def _read(self, port: int) -> None:
        headers = dict(self.headers)
        path = "/availability/stream"
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        elif self.since is not None:
            path += f"?since={self.since}"
        self.connections.append((port, headers))
        self._conn = conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            self.statuses.append(response.status)
            if response.status != 200:
                response.read()
                self._stop.wait(1)
                return
            self._opened.set()
            buffer = ""
            while not self._stop.is_set():
                chunk = response.read1(65536)
                if not chunk:
                    return  # the stream ended: reconnect
                buffer += chunk.decode()
                complete, _, buffer = buffer.replace("\r\n", "\n").rpartition("\n\n")
                for event in parse_frames(complete, port):
                    if event.id is not None:
                        self.last_event_id = event.id
                    self.events.put(event)
        finally:
            conn.close()


async def _open_one(port: int, ready: asyncio.Event, counts: list[int], index: int,
                    path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        counts[index] = int(head.split(b" ", 2)[1])
        ready.set()
        while await reader.read(65536):
            pass
        counts[index] = -1  # the server ended the stream
    except (asyncio.IncompleteReadError, ConnectionError):
        counts[index] = -2
    finally:
        writer.close()


class ManyStreams:
    """``count`` raw streams held open by an asyncio loop in a thread. ``status``
    lists each one's HTTP status, then -1 once the server ended it cleanly (or
    -2 when the connection broke)."""

    def __init__(self, port: int, count: int, path: str = "/availability/stream"):
        self.port, self.count, self.path = port, count, path
        self.status = [0] * count
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._tasks: list = []

    def open(self, timeout: float = 60) -> ManyStreams:
        self._thread.start()

        async def start_all():
            ready = asyncio.Event()
            for i in range(self.count):
                self._tasks.append(asyncio.ensure_future(
                    _open_one(self.port, ready, self.status, i, self.path)))
                if i % 50 == 49:
                    await asyncio.sleep(0.01)  # don't overflow the listen backlog

        asyncio.run_coroutine_threadsafe(start_all(), self.loop).result(timeout)
        deadline = time.monotonic() + timeout
        while sum(1 for s in self.status if s != 0) < self.count:
            assert time.monotonic() < deadline, f"only {self.opened()} streams opened"
            time.sleep(0.05)
        return self

    def opened(self) -> int:
        return sum(1 for s in self.status if s == 200)

    def close(self) -> None:
        async def cancel_all():
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0.1)  # the transports close

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
