"""Calendars, a rep each: reading them, and a calendar's effective settings.

A calendar's setting columns (zone, working hours, holidays, slot length,
notice, daily cap, email) override the ``SCHEDULER_*`` settings; a NULL
column reads the setting, so the default calendar (row one, every column
NULL after the upgrade) is the rep the environment describes, as before
calendars existed. Pure functions of rows and settings, apart from the reads.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import time

from .models import DEFAULT_CALENDAR_ID, SLUG_MAX_LENGTH, Calendar
from .settings import Settings

# Lowercase letters, digits and inner hyphens: safe in a URL path and a query.
SLUG_PATTERN = re.compile(rf"^[a-z0-9](?:[a-z0-9-]{{0,{SLUG_MAX_LENGTH - 2}}}[a-z0-9])?$")


def valid_slug(slug: str) -> bool:
    """Whether ``slug`` can name a calendar: lowercase, URL-safe, at most 64 characters."""
    return bool(SLUG_PATTERN.fullmatch(slug))


def by_slug(slug: str) -> Calendar | None:
    """The calendar named ``slug`` (active or not), or ``None``; a connection must be open."""
    if not valid_slug(slug):
        return None  # no row can have it
    return Calendar.get_or_none(Calendar.slug == slug)


def active() -> list[Calendar]:
    """The active calendars, by id (the default first); a connection must be open."""
    return list(Calendar.select().where(Calendar.active).order_by(Calendar.id))


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def effective_settings(calendar: Calendar, settings: Settings) -> Settings:
    """``settings`` with the calendar's own values in place of the SCHEDULER_* ones
    it sets (a NULL column keeps the setting; ``holidays`` ``""`` means none)."""
    own = {
        "timezone": calendar.timezone,
        "holidays": calendar.holidays,
        "day_start": _clock(calendar.day_start) if calendar.day_start else None,
        "day_end": _clock(calendar.day_end) if calendar.day_end else None,
        "slot_minutes": calendar.slot_minutes,
        "min_notice_minutes": calendar.min_notice_minutes,
        "max_bookings_per_day": calendar.max_bookings_per_day,
        "rep_email": calendar.email,
    }
    changes = {name: value for name, value in own.items() if value is not None}
    return dataclasses.replace(settings, **changes) if changes else settings


def is_default(calendar: Calendar) -> bool:
    return calendar.id == DEFAULT_CALENDAR_ID
