"""Store what the configured seeder produces, each slot exactly once."""

from __future__ import annotations

from datetime import datetime

from seeders import Seeder, SeederOptions, Slot, get_seeder_factory

from . import booking
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


def insert_slots(slots: list[Slot], now: datetime) -> int:
    """Insert the slots whose start time is not taken yet, through the booking
    transaction (so the change feed hears of them); return how many were new."""
    if not slots:
        return 0
    spans = [(s.start, s.end) for s in slots]
    return len(booking.transaction(Settings(), now, lambda tx: booking.add_slots(tx, spans)))


def seed_if_empty(seeder: Seeder, now: datetime, days: int = 1) -> int:
    """Startup seeding (AC1): fill an empty table with ``days`` business days of slots;
    return the number of slots added."""
    with session():
        if TimeSlot.select().exists():
            return 0
    return insert_slots(seeder.slots(now, days), now)


def seed_days(seeder: Seeder, now: datetime, days: int) -> int:
    """Add the slots of the next ``days`` business days that are not there yet."""
    return insert_slots(seeder.slots(now, days), now)
