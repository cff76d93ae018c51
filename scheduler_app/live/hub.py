"""What this process has heard of the change feed, for its streams, on the event loop.

The watcher thread hands each batch of changes to ``Hub.publish`` through
``loop.call_soon_threadsafe``, already encoded as Server-Sent Events (one
``bytes`` per change, shared by every stream). The hub keeps the recent ones,
numbered: versions ``floor + 1`` to ``version``, with no gap (each version has
exactly one change row). A stream asks ``after(last)`` for what it has not
sent yet, and waits on ``changed`` for more.

When the watcher finds versions it cannot account for (rows pruned while it
was away, or a version bumped without rows), it publishes a resync: the hub
starts again at that version, and every stream behind it tells its client to
fetch the list again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, tzinfo

from ..schemas import moment_iso

# How many recent events the hub keeps (a stream further behind catches up
# from the table, or resyncs). Trimmed in halves, so at most twice this.
RECENT = 4096


def slot_event(version: int, slot_id: int, start: datetime, end: datetime, state: str,
               tz: tzinfo) -> bytes:
    """The ``slot`` event of one change: ``id`` is its version; times as in /availability."""
    data = json.dumps({"id": slot_id, "start_time": moment_iso(start, tz),
                       "end_time": moment_iso(end, tz), "state": state},
                      separators=(",", ":"))
    return f"id: {version}\nevent: slot\ndata: {data}\n\n".encode()


def version_event(name: str, version: int, retry_ms: int | None = None) -> bytes:
    """A ``ping`` or ``resync`` event carrying the current version (and a ``retry:``)."""
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f'{retry}event: {name}\ndata: {{"version":{version}}}\n\n'.encode()


class Hub:
    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.version = 0  # the last version published
        self.floor = 0  # the recent events are those of versions floor+1 .. version
        self._events: list[bytes] = []
        self._changed = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers = 0  # open streams (stream.py counts them)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._changed = asyncio.Event()  # waited on from this loop

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next publish (a fresh event each time: wait on the one you got)."""
        return self._changed

    def publish(self, version: int, events: list[bytes], resync: bool = False) -> None:
        """On the loop: the events of versions ``self.version + 1 .. version``, or a
        resync at ``version`` (what came before it is unknown)."""
        if resync or version != self.version + len(events):
            self.floor, self._events = version, []
        else:
            self._events.extend(events)
            if len(self._events) > 2 * RECENT:
                drop = len(self._events) - RECENT
                del self._events[:drop]
                self.floor += drop
        self.version = version
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def publish_threadsafe(self, version: int, events: list[bytes], resync: bool = False) -> None:
        """From the watcher's thread."""
        if self.loop is None:
            self.publish(version, events, resync)
            return
        try:
            self.loop.call_soon_threadsafe(self.publish, version, events, resync)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    def after(self, last: int) -> bytes | None:
        """The events after version ``last``, joined (``b""``: none yet), or None
        when ``last`` is older than what the hub keeps."""
        if last < self.floor:
            return None
        if last >= self.version:
            return b""
        return b"".join(self._events[last - self.floor:])
