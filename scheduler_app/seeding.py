"""Store what the configured seeder produces, each slot exactly once, never on
a day the rep has closed nor over a slot already there (the rep's extra times).

The seeders stay pure: the filter is here (``rep_calendar.open_spans``), in
the same transaction as the insert.
"""

from __future__ import annotations

from datetime import datetime

from seeders import Seeder, SeederOptions, Slot, get_seeder_factory

from . import booking, rep_calendar
from .db import session
from .models import TimeSlot
from .settings import Settings


def build_seeder(settings: Settings) -> Seeder:
    """The seeder named by ``SCHEDULER_SEEDER``, built from the calendar settings."""
    factory = get_seeder_factory(settings.seeder)
    return factory(
        SeederOptions(
            timezone=settings.tz,
            country=settings.holiday_country,
            subdivision=settings.holiday_subdivision,
            day_start=settings.day_start,
            day_end=settings.day_end,
            slot_minutes=settings.slot_minutes,
        )
    )


def insert_slots(slots: list[Slot], now: datetime, settings: Settings) -> int:
    """Insert the slots whose start time is not taken yet, on no closed day and
    over no other slot, through the booking transaction (so the change feed
    hears of them); return how many were new."""
    if not slots:
        return 0
    spans = [(s.start, s.end) for s in slots]
    added = booking.transaction(
        settings, now, lambda tx: booking.add_slots(tx, rep_calendar.open_spans(tx, spans)))
    return len(added)


def seed_if_empty(seeder: Seeder, now: datetime, days: int = 1, *, settings: Settings) -> int:
    """Startup seeding (AC1): fill an empty table with ``days`` business days of slots;
    return the number of slots added."""
    with session():
        if TimeSlot.select().exists():
            return 0
    return insert_slots(seeder.slots(now, days), now, settings)


def seed_days(seeder: Seeder, now: datetime, days: int, *, settings: Settings) -> int:
    """Add the slots of the next ``days`` business days that are not there yet
    (closed days excepted)."""
    return insert_slots(seeder.slots(now, days), now, settings)
