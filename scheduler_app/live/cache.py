"""GET /availability, versioned: encoded bodies kept per worker, ETags, 304s.

A body is kept with the feed version it was read at, and served again only
after the request itself has read the current version: one primary-key read
of ``feed_version`` on PostgreSQL; on SQLite ``PRAGMA data_version`` on a
dedicated connection, which changes whenever another connection (of any
process) commits, and only then that same read. So once any worker or server
has answered a booking, a hold or a cancel, no later GET anywhere serves a
body from before it: its transaction bumped the version before it answered.
Waiting for the watcher's NOTIFY would not do: it may come after the client,
having its 200, already asked another worker.

Time changes a list too, with no version: a slot that starts (or comes within
the minimum notice) leaves it, so a kept body is served without the slots
that have started since it was read (cut from the front: the list is by start
time; a body under ``limit`` is read again instead, as the next slot would
have to come in). A hold that runs out, or a booking that starts while a
daily cap applies, changes what is listed at a moment known when the body is
read: the body is kept until then only.

The version check (``versions.py``) and a kept body are served on the event
loop: on SQLite the check reads a local file; on PostgreSQL a reader thread
makes the round trip, one for all the requests waiting. Reading a new body
goes to the thread pool.

The ETag is the version and a digest of the body served, so two workers with
the same list give the same tag, and any change gives a new one.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import peewee
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .. import availability, booking, calendars
from ..availability import as_datetime
from ..db import reading, session
from ..errors import CalendarNotFound
from ..models import Booking, TimeSlot, to_db_time
from ..schemas import encode_free_slots
from ..settings import Settings
from .versions import version_reader

JSON = "application/json"
# Caches (a browser, a proxy) may keep the body but must ask again each time,
# with If-None-Match.
CACHE_CONTROL = "no-cache"
MAX_ENTRIES = 64
MAX_BYTES = 32 * 1024 * 1024

Key = tuple  # (start, end, limit) of the query, and a calendar's slug when one is asked


@dataclass
class Entry:
    """One encoded list: the version and moment it was read at, until when it holds."""

    version: int
    read_at: datetime  # aware
    until: datetime | None  # aware: read again from then on
    limited: bool  # under ``limit``: cannot lose slots from the front
    starts: list[datetime]  # naive UTC, ascending
    offsets: list[int]  # where each slot's JSON starts in ``body``
    body: bytes
    etags: dict[int, str] = field(default_factory=dict)

    def body_from(self, first: int) -> bytes:
        if first == 0:
            return self.body
        if first >= len(self.starts):
            return b"[]"
        return b"[" + self.body[self.offsets[first]:]

    def etag(self, first: int) -> str:
        tag = self.etags.get(first)
        if tag is None:
            digest = hashlib.blake2b(self.body_from(first), digest_size=8).hexdigest()
            tag = self.etags[first] = f'"{self.version}-{digest}"'
        return tag


def build_entry(version: int, now: datetime, until: datetime | None, limited: bool,
                rows: list[tuple], tz) -> Entry:
    pieces = [encode_free_slots([row], tz)[1:-1] for row in rows]
    offsets, at = [], 1
    for piece in pieces:
        offsets.append(at)
        at += len(piece) + 1
    body = b"[" + b",".join(pieces) + b"]"
    starts = [as_datetime(row[1]) for row in rows]
    return Entry(version, now, until, limited, starts, offsets, body)


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of ``If-None-Match`` with ``etag``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


class AvailabilityCache:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._reading: dict[tuple[Key, int], asyncio.Event] = {}  # on the event loop only
        self._versions = version_reader(settings.database_url)
        self.hits = self.misses = 0

    # -- the request -------------------------------------------------------------

    async def respond(self, key: Key, now: datetime, if_none_match: str | None) -> Response:
        version = await self._versions.current()
        answer = self._kept(key, version, now, if_none_match)
        if answer is not None:
            return answer
        # One read per list and version at a time: the requests that miss together
        # wait for the first one's read (of the state they all saw, since the
        # version has not changed) instead of each reading the whole list in a
        # thread of its own, which multiplied the CPU and the worker's memory
        # (10,000 slots, 8 connections: +32 MB resident, never given back).
        flight = (key, version)
        reading_now = self._reading.get(flight)
        if reading_now is None:
            self._reading[flight] = reading_now = asyncio.Event()
            try:
                return await run_in_threadpool(self._fresh, key, version, now, if_none_match)
            finally:
                del self._reading[flight]
                reading_now.set()
        await reading_now.wait()
        answer = self._kept(key, version, now, if_none_match)
        if answer is not None:
            return answer
        return await run_in_threadpool(self._fresh, key, version, now, if_none_match)

    def _kept(self, key: Key, version: int, now: datetime,
              if_none_match: str | None) -> Response | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None or entry.version != version or now < entry.read_at:
            return None
        if entry.until is not None and now >= entry.until:
            return None
        earliest = to_db_time(now + timedelta(minutes=self.settings.min_notice_minutes))
        first = bisect.bisect_right(entry.starts, earliest)  # those have started
        if first and entry.limited:
            return None
        self.hits += 1
        return self._response(entry, first, if_none_match)

    def _fresh(self, key: Key, version: int, now: datetime,
               if_none_match: str | None) -> Response:
        """Read the list (after ``version`` was read), keep it, answer it."""
        self.misses += 1
        settings = self.settings
        start, end, limit, *slug = key
        calendar_id = _calendar_id(slug[0]) if slug else None
        earliest = now + timedelta(minutes=settings.min_notice_minutes)
        rows = availability.free_slot_rows(now, start, end, limit, earliest, calendar_id)
        if settings.max_bookings_per_day:
            rows = booking.without_full_days(rows, settings, now)
        entry = build_entry(version, now, _changes_by_itself(now, settings), limit is not None,
                            rows, settings.tz)
        self._keep(key, entry)
        return self._response(entry, 0, if_none_match)

    def _response(self, entry: Entry, first: int, if_none_match: str | None) -> Response:
        etag = entry.etag(first)
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(entry.body_from(first), media_type=JSON, headers=headers)

    # -- keeping -----------------------------------------------------------------

    def _keep(self, key: Key, entry: Entry) -> None:
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                if old.version > entry.version:
                    return  # a newer one got there first
                self._bytes -= len(old.body)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._bytes += len(entry.body)
            while len(self._entries) > MAX_ENTRIES or (self._bytes > MAX_BYTES
                                                       and len(self._entries) > 1):
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def close(self) -> None:
        self._versions.close()


def _calendar_id(slug: str) -> int:
    """The id of the calendar named ``slug`` (active or not); ``CalendarNotFound`` if none."""
    with reading(), session():
        calendar = calendars.by_slug(slug)
    if calendar is None:
        raise CalendarNotFound(slug)
    return calendar.id


def _changes_by_itself(now: datetime, settings: Settings) -> datetime | None:
    """The next moment the list changes with no write: the first hold to run out,
    and with a daily cap the next confirmed booking to start (aware, or None)."""
    db_now = to_db_time(now)
    with reading(), session():
        moments = [
            TimeSlot.select(peewee.fn.MIN(TimeSlot.held_until))
            .where((TimeSlot.held_until > db_now) & ~TimeSlot.is_booked).scalar()
        ]
        if settings.max_bookings_per_day:
            moments.append(
                TimeSlot.select(peewee.fn.MIN(TimeSlot.start_time))
                .join(Booking, on=(Booking.slot == TimeSlot.id))
                .where((Booking.status == "confirmed") & (TimeSlot.start_time > db_now)).scalar()
            )
    moments = [as_datetime(m).replace(tzinfo=UTC) for m in moments if m is not None]
    return min(moments) if moments else None
