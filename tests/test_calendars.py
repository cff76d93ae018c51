"""Calendars, a rep each: effective settings, seeding in each rep's own zone,
hours, slot length and holidays, and a start time unique per calendar."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import peewee
import pytest
from fastapi.testclient import TestClient
from support import FRIDAY

from scheduler_app import booking, calendars
from scheduler_app.app import create_app
from scheduler_app.models import Booking, Calendar, Closure, OutboxMessage, TimeSlot
from scheduler_app.seeding import build_seeder, seed_days
from scheduler_app.settings import Settings

NEW_YORK, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")


def new_calendar(slug: str, **columns) -> Calendar:
    with Calendar._meta.database.connection_context():
        return Calendar.create(slug=slug, name=slug.title(), created_at=datetime(2026, 11, 1),
                               **columns)


def test_the_default_calendars_settings_are_the_environments():
    settings = replace(Settings(), timezone="America/New_York", rep_email="rep@example.com")
    default = Calendar(id=1, slug="default", name="Default")
    assert calendars.effective_settings(default, settings) == settings


def test_a_calendars_columns_override_the_settings_it_sets():
    settings = replace(Settings(), timezone="America/New_York", holidays="US", slot_minutes=30,
                       rep_email="rep@example.com", max_bookings_per_day=5)
    berlin = Calendar(slug="berlin", name="Berlin", timezone="Europe/Berlin", holidays="DE-BE",
                      day_start="08:30", day_end="16:00", slot_minutes=45, min_notice_minutes=60,
                      email="anna@example.com")
    own = calendars.effective_settings(berlin, settings)
    assert (own.timezone, own.holidays, own.day_start, own.day_end, own.slot_minutes,
            own.min_notice_minutes, own.rep_email) == (
        "Europe/Berlin", "DE-BE", time(8, 30), time(16, 0), 45, 60, "anna@example.com")
    assert own.max_bookings_per_day == 5  # not set: the setting's
    assert own.database_url == settings.database_url
    none = calendars.effective_settings(Calendar(slug="x", name="X", holidays=""), settings)
    assert none.holidays == "" and none.holiday_country is None  # "": no holidays at all


@pytest.mark.parametrize("slug, valid", [
    ("default", True), ("anna-berlin", True), ("a", True), ("rep2", True), ("x" * 64, True),
    ("", False), ("Anna", False), ("-anna", False), ("anna-", False), ("anna berlin", False),
    ("anna/berlin", False), ("anna_b", False), ("x" * 65, False), ("é", False)])
def test_a_slug_is_lowercase_and_url_safe(slug, valid):
    assert calendars.valid_slug(slug) is valid


def test_by_slug_and_active(db):
    berlin = new_calendar("berlin", timezone="Europe/Berlin")
    new_calendar("gone", active=False)
    with db.connection_context():
        assert calendars.by_slug("berlin").id == berlin.id
        assert calendars.by_slug("gone").active is False
        assert calendars.by_slug("nobody") is None
        assert calendars.by_slug("Not A Slug") is None
        assert [c.slug for c in calendars.active()] == ["default", "berlin"]


def slots_of(db, calendar_id: int) -> list[tuple[datetime, datetime]]:
    with db.connection_context():
        return [(s.replace(tzinfo=UTC), e.replace(tzinfo=UTC)) for s, e in
                TimeSlot.select(TimeSlot.start_time, TimeSlot.end_time)
                .where(TimeSlot.calendar_id == calendar_id).order_by(TimeSlot.start_time).tuples()]


def assert_working_days(slots, zone: ZoneInfo, country: str, minutes: int,
                        first: date, last: date) -> None:
    """Every slot is 9:00 + k x ``minutes`` in ``zone`` on a working day of ``country``;
    every working day from ``first`` to ``last`` has all of them, up to 17:00."""
    by_day: dict[date, list[time]] = {}
    for start, end in slots:
        local = start.astimezone(zone)
        assert end - start == timedelta(minutes=minutes)
        by_day.setdefault(local.date(), []).append(local.time())
    calendar = holidays.country_holidays(country, years=range(2026, 2029))
    full = [(datetime(2000, 1, 1, 9) + timedelta(minutes=k * minutes)).time()
            for k in range(8 * 60 // minutes)]
    day = first
    while day <= last:
        working = day.weekday() < 5 and day not in calendar
        assert by_day.get(day, []) == (full if working else []), (day, zone)
        day += timedelta(days=1)


def test_new_york_and_berlin_are_each_seeded_in_their_own_zone_hours_and_holidays(db, settings):
    """Through March 2027: the US clocks change on 14 March, the EU's on 28 March."""
    berlin = new_calendar("berlin", timezone="Europe/Berlin", holidays="DE", slot_minutes=45)
    settings = replace(settings, holidays="US")  # the default calendar: New York, 30 minutes
    assert seed_days(build_seeder(settings), FRIDAY, 90, settings=settings) > 0
    first, last = date(2026, 11, 23), date(2027, 3, 31)
    new_york = slots_of(db, 1)
    assert_working_days([s for s in new_york if s[0].astimezone(NEW_YORK).date() <= last],
                        NEW_YORK, "US", 30, first, last)
    assert_working_days([s for s in slots_of(db, berlin.id)
                         if s[0].astimezone(BERLIN).date() <= last], BERLIN, "DE", 45, first, last)

    def utc_starts(calendar_id: int, day: date) -> list[str]:
        return [f"{s:%H:%M}" for s, _ in slots_of(db, calendar_id) if s.date() == day][:1]

    # 9:00 in each rep's zone, in UTC: before, between and after the two changes.
    before, between, after = date(2027, 3, 12), date(2027, 3, 15), date(2027, 3, 30)
    assert [utc_starts(1, d) for d in (before, between, after)] == [
        ["14:00"], ["13:00"], ["13:00"]]
    assert [utc_starts(berlin.id, d) for d in (before, between, after)] == [
        ["08:00"], ["08:00"], ["07:00"]]
    # A holiday of one rep's country closes only that rep.
    assert utc_starts(1, date(2026, 11, 26)) == [] and utc_starts(berlin.id, date(2026, 11, 26))
    for easter in (date(2027, 3, 26), date(2027, 3, 29)):  # Good Friday, Easter Monday
        assert utc_starts(berlin.id, easter) == [] and utc_starts(1, easter)


@pytest.mark.parametrize("day, closed_rep", [(date(2028, 7, 4), "new-york"),
                                             (date(2028, 10, 3), "berlin")])
def test_independence_day_and_german_unity_day_close_only_their_rep(db, settings, day,
                                                                    closed_rep):
    """Two calendars of their own (the default one left on the environment's settings)."""
    reps = {"new-york": new_calendar("new-york", timezone="America/New_York", holidays="US"),
            "berlin": new_calendar("berlin", timezone="Europe/Berlin", holidays="DE")}
    now = datetime.combine(day - timedelta(days=7), time(12), tzinfo=UTC)
    seed_days(build_seeder(settings), now, 8, settings=settings)
    for slug, rep in reps.items():
        zone = ZoneInfo(rep.timezone)
        days = {s.astimezone(zone).date() for s, _ in slots_of(db, rep.id)}
        assert (day in days) is (slug != closed_rep), (slug, day)
        assert day + timedelta(days=1) in days


def test_a_closure_of_every_calendar_or_of_one(db, settings):
    berlin = new_calendar("berlin", timezone="Europe/Berlin", holidays="DE")
    with db.connection_context():
        Closure.create(first_day=date(2026, 11, 23), last_day=date(2026, 11, 23),
                       created_at=datetime(2026, 11, 1))  # every calendar
        Closure.create(first_day=date(2026, 11, 24), last_day=date(2026, 11, 24),
                       created_at=datetime(2026, 11, 1), calendar_id=berlin.id)
    seed_days(build_seeder(settings), FRIDAY, 3, settings=settings)
    assert sorted({s.astimezone(NEW_YORK).date() for s, _ in slots_of(db, 1)}) == [
        date(2026, 11, 24), date(2026, 11, 25)]
    assert sorted({s.astimezone(BERLIN).date() for s, _ in slots_of(db, berlin.id)}) == [
        date(2026, 11, 25)]


def test_two_calendars_at_one_start_time_are_two_slots(db, settings):
    berlin = new_calendar("berlin", timezone="America/New_York")  # the same hours as the default
    assert seed_days(build_seeder(settings), FRIDAY, 1, settings=settings) == 32
    with db.connection_context():
        start = TimeSlot.select(peewee.fn.MIN(TimeSlot.start_time)).scalar()
        ids = dict(TimeSlot.select(TimeSlot.calendar_id, TimeSlot.id)
                   .where(TimeSlot.start_time == start).tuples())
    assert sorted(ids) == [1, berlin.id]
    booked = booking.book_slot(ids[berlin.id], "lead@example.com", FRIDAY, settings)
    assert booked.is_booked
    with db.connection_context():
        assert TimeSlot.get_by_id(ids[1]).is_booked is False  # the other rep is still free
        assert not TimeSlot.get_by_id(ids[1]).booked_by_email
        assert Booking.get(Booking.slot == ids[berlin.id]).calendar_id == berlin.id
    other = booking.book_slot(ids[1], "other@example.com", FRIDAY, settings)
    assert other.is_booked
    with db.connection_context(), pytest.raises(peewee.IntegrityError):
        TimeSlot.create(start_time=start, end_time=start + timedelta(minutes=30),
                        calendar_id=berlin.id)


def test_availability_lists_one_calendars_free_slots_by_slug(settings, clock):
    with TestClient(create_app(settings, clock)) as client:
        everyone_before = client.get("/availability").json()
        assert len(everyone_before) == 16
        with Calendar._meta.database.connection_context():
            berlin = Calendar.create(slug="berlin", name="Berlin", created_at=datetime(2026, 11, 1),
                                     timezone="Europe/Berlin", holidays="DE", slot_minutes=60)
        assert seed_days(build_seeder(settings), clock.now, 1, settings=settings) == 8
        everyone = client.get("/availability").json()
        assert len(everyone) == 24
        assert [s["start_time"] for s in everyone] == sorted(s["start_time"] for s in everyone)
        assert {tuple(s) for s in everyone} == {("id", "start_time", "end_time", "is_booked",
                                                 "booked_by_email")}  # the spec's five fields
        default = client.get("/availability", params={"calendar": "default"})
        assert default.status_code == 200 and default.json() == everyone_before
        mine = client.get("/availability", params={"calendar": "berlin"}).json()
        with Calendar._meta.database.connection_context():
            ids = [i for (i,) in TimeSlot.select(TimeSlot.id)
                   .where(TimeSlot.calendar_id == berlin.id).order_by(TimeSlot.start_time).tuples()]
        assert [s["id"] for s in mine] == ids and len(ids) == 8
        # 9:00 in Berlin, shown (as every time of the API) in SCHEDULER_TIMEZONE.
        assert mine[0]["start_time"] == "2026-11-23T03:00:00-05:00"
        window = client.get("/availability", params={
            "calendar": "berlin", "from": "2026-11-23T10:00:00Z", "limit": 2}).json()
        assert [s["id"] for s in window] == ids[2:4]

        etag = client.get("/availability", params={"calendar": "berlin"}).headers["ETag"]
        assert client.post("/book", json={"slot_id": ids[0], "email": "lead@example.com"}
                           ).status_code == 200
        after = client.get("/availability", params={"calendar": "berlin"},
                           headers={"If-None-Match": etag})
        assert after.status_code == 200 and [s["id"] for s in after.json()] == ids[1:]
        assert client.get("/availability", params={"calendar": "default"}).json() == (
            everyone_before)  # the other rep's list is as it was

        for slug in ("nobody", "Berlin", "not a slug"):
            missing = client.get("/availability", params={"calendar": slug})
            assert missing.status_code == 404, slug
            assert missing.json()["detail"] == f"No calendar is named {slug!r}."
        too_long = client.get("/availability", params={"calendar": "x" * 65})
        assert too_long.status_code == 422 and too_long.json()["detail"]


def rep_notices(db) -> dict[str, tuple[str, str]]:
    """Each booked email's rep notice: (to, organizer)."""
    with db.connection_context():
        rows = OutboxMessage.select(OutboxMessage.payload).where(
            OutboxMessage.recipient == "rep").tuples()
        payloads = [json.loads(payload) for (payload,) in rows]
    return {p["email"]: (p["to"], p["organizer"]) for p in payloads}


def test_a_notice_goes_to_the_calendars_email_else_the_reps(db, settings):
    settings = replace(settings, smtp_url="smtp://127.0.0.1:2525", mail_from="desk@example.com",
                       rep_email="rep@example.com")
    anna = new_calendar("anna", timezone="America/New_York", email="anna@example.com")
    bob = new_calendar("bob", timezone="America/New_York")  # no address of his own
    assert seed_days(build_seeder(settings), FRIDAY, 1, settings=settings) == 48
    with db.connection_context():
        first = {c: i for c, i in TimeSlot.select(TimeSlot.calendar_id, peewee.fn.MIN(TimeSlot.id))
                 .group_by(TimeSlot.calendar_id).tuples()}
    for calendar_id, email in ((1, "lead1@example.com"), (anna.id, "lead2@example.com"),
                               (bob.id, "lead3@example.com")):
        booking.book_slot(first[calendar_id], email, FRIDAY, settings)
    assert rep_notices(db) == {
        "lead1@example.com": ("rep@example.com", "rep@example.com"),
        "lead2@example.com": ("anna@example.com", "anna@example.com"),
        "lead3@example.com": ("rep@example.com", "rep@example.com"),
    }
    with db.connection_context():
        assert [b.calendar_id for b in Booking.select().order_by(Booking.id)] == [
            1, anna.id, bob.id]


def test_a_calendars_email_gives_notices_even_without_scheduler_rep_email(db, settings):
    settings = replace(settings, smtp_url="smtp://127.0.0.1:2525", mail_from="desk@example.com")
    anna = new_calendar("anna", timezone="America/New_York", email="anna@example.com")
    seed_days(build_seeder(settings), FRIDAY, 1, settings=settings)
    with db.connection_context():
        ids = dict(TimeSlot.select(TimeSlot.calendar_id, peewee.fn.MIN(TimeSlot.id))
                   .group_by(TimeSlot.calendar_id).tuples())
    booking.book_slot(ids[1], "lead1@example.com", FRIDAY, settings)
    booking.book_slot(ids[anna.id], "lead2@example.com", FRIDAY, settings)
    assert rep_notices(db) == {"lead2@example.com": ("anna@example.com", "anna@example.com")}
