"""The seeder plugins: business-day rules, slot times, and the registry."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import EntryPoint, entry_points
from zoneinfo import ZoneInfo

import pytest

from seeders import (
    ENTRY_POINT_GROUP,
    SeederLoadError,
    SeederOptions,
    UnknownSeederError,
    available_seeders,
    get_seeder_factory,
)
from seeders.business_day import NextBusinessDaySeeder

UTC_ZONE = ZoneInfo("UTC")


def seeder(holidays: str = "US", tz: str = "UTC", **options) -> NextBusinessDaySeeder:
    country, _, subdiv = holidays.partition("-")
    return NextBusinessDaySeeder(
        SeederOptions(
            timezone=ZoneInfo(tz), country=country or None, subdivision=subdiv or None, **options
        )
    )


def noon(day: date, tz: str = "UTC") -> datetime:
    return datetime.combine(day, time(12), tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(
    ("holidays", "today", "expected"),
    [
        ("US", date(2026, 12, 24), date(2026, 12, 28)),  # Christmas Friday, weekend
        ("US", date(2026, 7, 2), date(2026, 7, 6)),  # Jul 3 is the observed Independence Day
        ("US", date(2026, 11, 25), date(2026, 11, 27)),  # Thanksgiving Thursday
        ("US-CA", date(2026, 11, 25), date(2026, 11, 30)),  # California: the Friday too
        ("US", date(2026, 11, 20), date(2026, 11, 23)),  # Friday -> Monday
        ("IL", date(2026, 11, 19), date(2026, 11, 22)),  # Israel: Fri-Sat weekend
        ("", date(2026, 12, 24), date(2026, 12, 25)),  # holidays disabled: Christmas counts
        ("", date(2026, 11, 20), date(2026, 11, 23)),  # ...but weekends still do not
    ],
)
def test_next_business_day(holidays, today, expected):
    slots = seeder(holidays).slots(noon(today))
    assert {s.start.date() for s in slots} == {expected}


def test_sixteen_half_hour_slots_from_nine_to_five():
    slots = seeder().slots(noon(date(2026, 11, 20)))
    assert len(slots) == 16
    assert slots[0].start == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert slots[-1].end == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert all(a.end == b.start for a, b in zip(slots, slots[1:]))


def test_local_hours_after_the_dst_change():
    """New York moves to EDT on Sun 2026-03-08: Monday 09:00 local is 13:00 UTC."""
    slots = seeder(tz="America/New_York").slots(noon(date(2026, 3, 6), "America/New_York"))
    assert slots[0].start == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert slots[0].start.astimezone(ZoneInfo("America/New_York")).hour == 9
    assert len(slots) == 16


def test_today_is_taken_in_the_configured_time_zone():
    """Thu 23:30 in New York is already Friday in UTC; the next business day is still Friday."""
    now = datetime(2026, 11, 20, 4, 30, tzinfo=UTC)  # Thu 2026-11-19 23:30 EST
    slots = seeder(tz="America/New_York").slots(now)
    assert slots[0].start.astimezone(ZoneInfo("America/New_York")).date() == date(2026, 11, 20)


def test_custom_hours_and_slot_length():
    slots = seeder(day_start=time(10), day_end=time(12), slot_minutes=45).slots(
        noon(date(2026, 11, 20))
    )
    assert [s.start.time() for s in slots] == [time(10), time(10, 45)]  # 11:30 would overrun


def test_several_days_skip_weekends_and_holidays():
    slots = seeder().slots(noon(date(2026, 11, 24)), days=3)
    assert sorted({s.start.date() for s in slots}) == [
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]
    assert len(slots) == 48


def test_options_are_checked_when_the_seeder_is_built():
    with pytest.raises(ValueError, match="day_start"):
        seeder(day_start=time(17), day_end=time(9))


# --- registry ---------------------------------------------------------------


class OtherSeeder:
    name = "other"

    def __init__(self, options):
        self.options = options

    def slots(self, now, days=1):
        return []


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_builtin_seeder_is_declared_as_an_installed_entry_point():
    installed = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
    assert installed.get("next-business-day") == "seeders.business_day:NextBusinessDaySeeder"
    assert "next-business-day" in available_seeders()


def test_third_party_seeder_is_found_by_name():
    source = [ep("other", f"{__name__}:OtherSeeder")]
    assert get_seeder_factory("other", source) is OtherSeeder
    assert available_seeders(source) == ["next-business-day", "other"]


def test_unknown_name_lists_the_installed_seeders():
    source = [ep("other", f"{__name__}:OtherSeeder")]
    with pytest.raises(UnknownSeederError) as info:
        get_seeder_factory("nope", source)
    assert str(info.value) == "Unknown seeder 'nope'; installed seeders: next-business-day, other"


def test_duplicate_names_are_an_error():
    source = [ep("other", f"{__name__}:OtherSeeder"), ep("other", "elsewhere:Thing")]
    with pytest.raises(SeederLoadError, match="Two seeders are named 'other'"):
        get_seeder_factory("other", source)
    with pytest.raises(SeederLoadError, match="next-business-day"):
        available_seeders([ep("next-business-day", "elsewhere:Thing")])


def test_a_seeder_that_fails_to_import_names_itself():
    with pytest.raises(SeederLoadError, match="'broken'.*no_such_module") as info:
        get_seeder_factory("broken", [ep("broken", "no_such_module:Seeder")])
    assert isinstance(info.value.__cause__, ImportError)
