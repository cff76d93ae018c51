"""The default seeder: working hours of the next business day(s).

A business day is neither a weekend day nor a public holiday of the configured
``holidays`` calendar. The weekend comes from that calendar (Friday-Saturday
in Israel), and is Saturday-Sunday when holidays are disabled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import holidays

from .base import SeederOptions, Slot

_SAT_SUN = frozenset({5, 6})


class NextBusinessDaySeeder:
    name = "next-business-day"

    def __init__(self, options: SeederOptions):
        if options.day_start >= options.day_end:
            raise ValueError("day_start must be earlier than day_end")
        if options.slot_minutes <= 0:
            raise ValueError("slot_minutes must be positive")
        self.options = options
        self._calendar = (
            holidays.country_holidays(options.country, subdiv=options.subdivision)
            if options.country
            else None
        )

    def is_business_day(self, day: date) -> bool:
        if self._calendar is None:
            return day.weekday() not in _SAT_SUN
        return self._calendar.is_working_day(day)

    def next_business_day(self, after: date) -> date:
        day = after + timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def business_days(self, after: date, count: int) -> list[date]:
        days: list[date] = []
        day = after
        while len(days) < count:
            day = self.next_business_day(day)
            days.append(day)
        return days

    def day_slots(self, day: date) -> list[Slot]:
        """The slots of one day, from ``day_start`` to ``day_end`` local time."""
        opts = self.options
        length = timedelta(minutes=opts.slot_minutes)
        start = datetime.combine(day, opts.day_start, tzinfo=opts.timezone).astimezone(UTC)
        end_of_day = datetime.combine(day, opts.day_end, tzinfo=opts.timezone).astimezone(UTC)
        slots = []
        while start + length <= end_of_day:
            slots.append(Slot(start, start + length))
            start += length
        return slots

    def slots(self, now: datetime, days: int = 1) -> list[Slot]:
        today = now.astimezone(self.options.timezone).date()
        return [slot for day in self.business_days(today, days) for slot in self.day_slots(day)]
