"""What a seeder is: a named strategy that turns "now" into slot spans.

Seeders are pure: they know nothing of HTTP or of the database. The service
stores what they return (``scheduler_app.seeding``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, time
from typing import NamedTuple, Protocol, runtime_checkable
from zoneinfo import ZoneInfo


class Slot(NamedTuple):
    """One bookable span; both ends are timezone-aware."""

    start: datetime
    end: datetime


@dataclasses.dataclass(frozen=True)
class SeederOptions:
    """The calendar settings a seeder is built with."""

    timezone: ZoneInfo
    country: str | None = "US"
    subdivision: str | None = None
    day_start: time = time(9, 0)
    day_end: time = time(17, 0)
    slot_minutes: int = 30


@runtime_checkable
class Seeder(Protocol):
    """A seeder plugin. The registry calls ``factory(options)`` to build one."""

    name: str

    def slots(self, now: datetime, days: int = 1) -> list[Slot]:
        """The slots of the next ``days`` bookable days after ``now`` (an aware datetime)."""
        ...
