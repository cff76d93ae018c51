"""The stream scenario: many open GET /availability/stream subscribers and a burst of bookings.

For one running service it opens ``subscribers`` streams (raw sockets on an
asyncio loop in a thread, each chunk kept with its arrival time and parsed
afterwards, so that the client does as little as it can while it measures),
then books ``bookings`` slots from a few threads as fast as the service
answers, and reports, per booking, the time from its 200 to its ``slot``
event at the last subscriber (p50, p99, max over the bookings); the resident
memory the open streams add, per stream; and the booking throughput of wrk
(``bench/load.lua``) while the streams stay open and keep receiving.

The client shares the machine with the service, so its own delays are in the
latency it reports: an upper bound.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import data, load

BOOKINGS = 200
BOOKING_THREADS = 8
THROUGHPUT_POOL = 10_000

_SLOT = re.compile(rb'event: slot\ndata: \{"id":(\d+),[^\n]*"state":"booked"')


class _Subscriber(asyncio.Protocol):
    def __init__(self, request: bytes):
        self.request = request
        self.chunks: list[tuple[float, bytes]] = []
        self.transport = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append((time.perf_counter(), chunk))

    def connection_lost(self, exc) -> None:
        self.lost = True

    def status(self) -> int | None:
        if not self.chunks:
            return None
        head = self.chunks[0][1]
        return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None

    def booked_at(self) -> dict[int, float]:
        """slot id -> when its ``booked`` event was complete at this subscriber."""
        seen: dict[int, float] = {}
        buffer = b""
        for at, chunk in self.chunks:
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                # Chunked encoding puts size lines between frames: search, don't parse.
                for match in _SLOT.finditer(frame):
                    seen.setdefault(int(match[1]), at)
        return seen


class Subscribers:
    """``count`` streams held open on a loop of their own."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.subs: list[_Subscriber] = []

    def open(self, timeout: float = 120) -> Subscribers:
        self.thread.start()
        request = (f"GET /availability/stream HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()

        async def connect_all():
            for i in range(self.count):
                sub = _Subscriber(request)
                await self.loop.create_connection(lambda s=sub: s, "127.0.0.1", self.port)
                self.subs.append(sub)
                if i % 100 == 99:
                    await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(connect_all(), self.loop).result(timeout)
        deadline = time.monotonic() + timeout
        while any(sub.status() is None for sub in self.subs):
            if time.monotonic() > deadline:
                raise RuntimeError("some streams never answered")
            time.sleep(0.05)
        refused = [s.status() for s in self.subs if s.status() != 200]
        if refused:
            raise RuntimeError(f"{len(refused)} streams refused: {sorted(set(refused))}")
        return self

    def close(self) -> None:
        def close_all():
            for sub in self.subs:
                if sub.transport is not None:
                    sub.transport.close()

        self.loop.call_soon_threadsafe(close_all)
        time.sleep(0.5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Return once nothing has arrived for ``quiet`` seconds (without parsing
        meanwhile: the loop's thread must have the interpreter to itself)."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            now = sum(len(sub.chunks) for sub in self.subs)
            if now == count:
                return
            count = now
            time.sleep(quiet)


@dataclass
class StreamFigures:
    subscribers: int
    bookings: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    kb_per_stream: float
    book_rps: float
    book_p99_ms: float


def _book_burst(port: int, slot_ids: list[int]) -> dict[int, float]:
    """Book each slot once, from a few keep-alive connections; slot id -> when its 200 came."""
    answered: dict[int, float] = {}
    lock = threading.Lock()
    shares = [slot_ids[i::BOOKING_THREADS] for i in range(BOOKING_THREADS)]

    def book(share: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for slot_id in share:
                body = json.dumps({"slot_id": slot_id, "email": f"burst{slot_id}@example.com"})
                conn.request("POST", "/book", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                at = time.perf_counter()
                if response.status != 200:
                    raise RuntimeError(f"booking {slot_id}: {response.status}")
                with lock:
                    answered[slot_id] = at
        finally:
            conn.close()

    with ThreadPoolExecutor(BOOKING_THREADS) as pool:
        list(pool.map(book, shares))
    return answered


def run(process, database_url: str, subscribers: int, seconds: float,
        connections: int) -> StreamFigures:
    """The scenario against the running service ``process`` (bench.servers.Process)."""
    data.reset_slots(database_url, max(BOOKINGS, 16))
    time.sleep(1)  # the watchers hear the reset (a resync) before the streams open
    before = sum(process.rss_mb())
    subs = Subscribers(process.port, subscribers).open()
    try:
        time.sleep(2)  # settled
        per_stream_kb = (sum(process.rss_mb()) - before) * 1e6 / 1024 / subscribers
        slot_ids = list(range(1, BOOKINGS + 1))
        answered = _book_burst(process.port, slot_ids)
        subs.wait_quiet()
        arrivals = [sub.booked_at() for sub in subs.subs]
        missing = sum(1 for arrival in arrivals if not set(slot_ids) <= set(arrival))
        if missing:
            raise RuntimeError(f"{missing} subscribers missed some of the bookings")
        latencies = sorted(
            max(arrival[slot_id] for arrival in arrivals) - answered[slot_id]
            for slot_id in slot_ids
        )
        # Booking throughput while the streams are open (they go on receiving).
        data.reset_slots(database_url, THROUGHPUT_POOL)
        warm = load.run(process.port, "book", [1, 300], 30, connections)
        quota = min(THROUGHPUT_POOL - 300, max(300, int(warm.rate * seconds)))
        result = load.run(process.port, "book", [301, quota], 60 + 4 * seconds, connections)
        if result.statuses.get("200") != quota:
            raise RuntimeError(f"bookings with streams open: {result.statuses} {result.errors}")
        still_open = sum(1 for sub in subs.subs if not sub.lost)
        if still_open != subscribers:
            raise RuntimeError(f"{subscribers - still_open} streams closed during the run")
    finally:
        subs.close()
    return StreamFigures(
        subscribers=subscribers, bookings=len(slot_ids),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        max_ms=latencies[-1] * 1000,
        kb_per_stream=per_stream_kb,
        book_rps=result.rate, book_p99_ms=result.p99_ms,
    )
