"""Store what the configured seeder produces, each slot exactly once, never on
a day the rep has closed nor over a slot already there (the rep's extra times).

Each active calendar is seeded in its own zone, hours, slot length and
holidays (its effective settings, ``calendars.py``), in its own transaction;
with only the default calendar this is the seeding of a single rep. The
seeders stay pure: the filter is here (``rep_calendar.open_spans``), in the
same transaction as the insert.
"""

from __future__ import annotations

from datetime import datetime

from seeders import Seeder, SeederOptions, Slot, get_seeder_factory

from . import booking, calendars, rep_calendar
from .db import session
from .models import DEFAULT_CALENDAR_ID, TimeSlot
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


def insert_slots(slots: list[Slot], now: datetime, settings: Settings,
                 calendar_id: int = DEFAULT_CALENDAR_ID) -> int:
    """Insert the calendar's slots whose start time is not taken yet, on no closed
    day and over no other slot of it, through the booking transaction (so the
    change feed hears of them); ``settings`` are the calendar's effective ones.
    Return how many were new."""
    if not slots:
        return 0
    spans = [(s.start, s.end) for s in slots]
    added = booking.transaction(settings, now, lambda tx: booking.add_slots(
        tx, rep_calendar.open_spans(tx, spans, calendar_id), calendar_id))
    return len(added)


def _seed_each(seeder: Seeder, now: datetime, days: int, settings: Settings) -> int:
    """Seed ``days`` business days of each active calendar, each with its own
    settings; ``seeder`` serves the calendars whose settings are the environment's."""
    with session():
        active = calendars.active()
    added = 0
    for calendar in active:
        own = calendars.effective_settings(calendar, settings)
        own_seeder = seeder if own == settings else build_seeder(own)
        added += insert_slots(own_seeder.slots(now, days), now, own, calendar.id)
    return added


def seed_if_empty(seeder: Seeder, now: datetime, days: int = 1, *, settings: Settings) -> int:
    """Startup seeding (AC1): fill an empty table with ``days`` business days of
    slots of each active calendar; return the number of slots added."""
    with session():
        if TimeSlot.select().exists():
            return 0
    return _seed_each(seeder, now, days, settings)


def seed_days(seeder: Seeder, now: datetime, days: int, *, settings: Settings) -> int:
    """Add the slots of the next ``days`` business days of each active calendar
    that are not there yet (closed days excepted)."""
    return _seed_each(seeder, now, days, settings)
