"""Live availability: the read side of the change feed, in each worker process.

    hub.py      what this process has heard of the feed, as encoded events, for the streams
    watcher.py  the thread that hears the feed: LISTEN (PostgreSQL) or PRAGMA data_version
                (SQLite), then reads the ``changes`` rows after its last version
    sweeper.py  the thread that turns expired holds into ``free`` changes and prunes old rows
    stream.py   GET /availability/stream (Server-Sent Events)
    cache.py    GET /availability's encoded bodies, kept per version, with ETags
    versions.py the current version for a request on the loop (PostgreSQL: a reader thread)

The write side is ``feed.record``, called by ``booking.transaction`` in the
transaction of every change. ``Live`` is the per-app runtime the lifespan
starts and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from ..settings import Settings
from .cache import AvailabilityCache
from .hub import Hub
from .sweeper import Sweeper
from .watcher import Watcher

log = logging.getLogger("scheduler_app.live")


class Live:
    """One process's watcher, sweeper, hub and cache; ``start`` once the database is ready."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]):
        self.settings = settings
        self.hub = Hub(settings.tz)
        self.cache = AvailabilityCache(settings)
        self.sweeper = Sweeper(settings, clock)
        self.watcher = Watcher(settings.database_url, self.hub, on_held=self.sweeper.hint)
        self.started = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hear the feed from its current version on (for the streams on ``loop``),
        and sweep. It reads the database: call it in a thread."""
        self.hub.bind(loop)
        self.watcher.start()
        self.sweeper.start()
        self.started = True

    def stop(self) -> None:
        self.started = False
        self.sweeper.stop()
        self.watcher.stop()
        self.cache.close()
