"""The rep's working calendar as plain functions (rep_calendar.py), with seeding,
minimum notice and the daily cap, on SQLite and PostgreSQL.

The clock is Friday 2026-11-20, 10:00 in New York; ``seed`` fills Monday 23,
Tuesday 24 and Wednesday 25 November (16 slots each, 09:00-17:00), so Tuesday's
slots are 17-32. Thursday 26 is Thanksgiving.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support import FRIDAY

from scheduler_app import availability, booking, rep_calendar
from scheduler_app.booking import Details, transaction
from scheduler_app.db import session
from scheduler_app.errors import (
    BookingUnchangeable,
    ClosureNotFound,
    DayFull,
    ReferenceNotFound,
    SlotClosed,
    SlotNotFound,
    SlotNotRemovable,
    SlotsRefused,
    SlotTooSoon,
)
from scheduler_app.models import Booking, Change, Closure, TimeSlot
from scheduler_app.seeding import build_seeder, seed_days

NOW = FRIDAY  # tests/support.py's fixed instant
NY = ZoneInfo("America/New_York")
MONDAY, TUESDAY, WEDNESDAY = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.fixture
def calendar(db, settings):
    """Three seeded business days; returns the settings."""
    assert seed_days(build_seeder(settings), NOW, 3, settings=settings) == 48
    return settings


def run(settings, change, now=NOW):
    return transaction(settings, now, change)


def book(settings, slot_id, email="lead@example.com", now=NOW, **kw) -> booking.BookingView:
    return run(settings, lambda tx: booking.book(tx, slot_id, Details(email, **kw)), now)


def free_on(day: date, now=NOW) -> list[int]:
    start, end = local(day, 0), local(day + timedelta(days=1), 0)
    return [s.id for s in availability.free_slots(now, start, end)]


def slots_on(day: date) -> int:
    start, end = local(day, 0), local(day + timedelta(days=1), 0)
    with session():
        return TimeSlot.select().where(
            (TimeSlot.start_time >= start.astimezone(UTC).replace(tzinfo=None))
            & (TimeSlot.start_time < end.astimezone(UTC).replace(tzinfo=None))).count()


def row(slot_id: int) -> TimeSlot | None:
    with session():
        return TimeSlot.get_or_none(TimeSlot.id == slot_id)


def changes() -> list[tuple[int, str]]:
    with session():
        return list(Change.select(Change.slot_id, Change.state).order_by(Change.v).tuples())


# -- closures -------------------------------------------------------------------------


def test_closing_a_day_takes_out_its_free_slots_and_keeps_its_bookings(calendar):
    kept = book(calendar, 20, name="Jane", notes="Budget")  # Tuesday 10:30
    before = len(changes())
    view = run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY, None, "Conference"))
    assert (view.closure.first_day, view.closure.last_day, view.closure.reason) == (
        TUESDAY, TUESDAY, "Conference")
    assert [c.booking.reference for c in view.conflicts] == [kept.booking.reference]
    assert sorted(s.id for s in view.removed) == [i for i in range(17, 33) if i != 20]
    assert free_on(TUESDAY) == []
    assert slots_on(TUESDAY) == 1  # only the booked one is left: the others are deleted
    assert row(20).is_booked and row(20).booked_by_email == "lead@example.com"
    assert len(free_on(MONDAY)) == len(free_on(WEDNESDAY)) == 16  # other days untouched
    assert changes()[before:] == [(i, "removed") for i in range(17, 33) if i != 20]
    assert "1 booked meeting(s) in these days are kept" in view.message


def test_a_closure_spans_days_and_checks_its_range(calendar):
    view = run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY, WEDNESDAY))
    assert len(view.removed) == 32 and free_on(WEDNESDAY) == []
    for first, last, message in (
        (WEDNESDAY, TUESDAY, "to must be the same day as from or later"),
        (TUESDAY, TUESDAY + timedelta(days=366), "at most 366 days"),
        (date(1, 1, 1), None, "days must be from 1970-01-01"),
    ):
        with pytest.raises(ValueError, match=message):
            run(calendar, lambda tx, first=first, last=last: rep_calendar.close(tx, first, last))
    with session():
        assert Closure.select().count() == 1  # nothing of the refused ones was written


def test_a_slot_a_cancelled_booking_refers_to_is_kept_closed_then_reopened(calendar):
    old = book(calendar, 18)
    run(calendar, lambda tx: booking.cancel(tx, old.booking.reference, old.token))
    view = run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY))
    assert 18 in {s.id for s in view.removed}
    kept = row(18)  # the cancelled booking's record needs its row
    assert (kept.is_booked, kept.state, kept.held_until, kept.hold_token_hash) == (
        False, "closed", None, None)
    assert free_on(TUESDAY) == []
    with pytest.raises(SlotClosed, match="Slot 18 is on a day the rep has closed."):
        book(calendar, 18, "other@example.com")
    with pytest.raises(SlotClosed):
        run(calendar, lambda tx: booking.hold(tx, 18))
    before = len(changes())
    reopened = run(calendar, lambda tx: rep_calendar.reopen(tx, view.closure.id))
    assert [s.id for s in reopened.freed] == [18]
    assert "1 kept slot(s) are free again" in reopened.notice
    assert "next `scheduler-app seed`" in reopened.notice
    assert changes()[before:] == [(18, "free")]
    assert free_on(TUESDAY) == [18]
    book(calendar, 18, "other@example.com")
    with pytest.raises(ClosureNotFound, match=f"Closure {view.closure.id} does not exist."):
        run(calendar, lambda tx: rep_calendar.reopen(tx, view.closure.id))


def test_a_cancel_or_move_on_a_closed_day_keeps_the_slot_closed(calendar):
    lead = book(calendar, 17, "lead@example.com")
    mover = book(calendar, 19, "mover@example.com")
    closure = run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY)).closure
    run(calendar, lambda tx: booking.cancel(tx, lead.booking.reference, lead.token))
    run(calendar, lambda tx: booking.reschedule(tx, mover.booking.reference, mover.token, 1))
    assert free_on(TUESDAY) == []  # neither slot came back on the closed day
    assert {(row(i).state, row(i).held_until, row(i).hold_token_hash) for i in (17, 19)} == {
        ("closed", None, None)}
    assert changes()[-2:] == [(1, "booked"), (19, "removed")]
    run(calendar, lambda tx: rep_calendar.reopen(tx, closure.id))
    assert free_on(TUESDAY) == [17, 19]


def test_overlapping_closures_reopen_only_what_no_other_covers(calendar):
    old = book(calendar, 18)
    run(calendar, lambda tx: booking.cancel(tx, old.booking.reference, old.token))
    first = run(calendar, lambda tx: rep_calendar.close(tx, MONDAY, TUESDAY)).closure
    second = run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY, WEDNESDAY))
    assert len(second.removed) == 16  # Tuesday's were out already
    assert run(calendar, lambda tx: rep_calendar.reopen(tx, first.id)).freed == []
    assert free_on(TUESDAY) == []
    assert [s.id for s in run(calendar, lambda tx: rep_calendar.reopen(
        tx, second.closure.id)).freed] == [18]


def test_the_rep_cancels_by_reference_alone(calendar):
    view = book(calendar, 5)
    done = run(calendar, lambda tx: rep_calendar.cancel(tx, view.booking.reference.lower(), "Ill"))
    assert (done.booking.status, done.booking.cancelled_by, done.booking.cancel_reason) == (
        "cancelled", "rep", "Ill")
    assert 5 in free_on(MONDAY)
    again = run(calendar, lambda tx: rep_calendar.cancel(tx, view.booking.reference, "Other"))
    assert again.booking.cancel_reason == "Ill"  # the same state
    with pytest.raises(ReferenceNotFound, match="No booking has the reference NOSUCH00."):
        run(calendar, lambda tx: rep_calendar.cancel(tx, "nosuch00"))
    started = book(calendar, 6)
    with pytest.raises(BookingUnchangeable):
        run(calendar, lambda tx: rep_calendar.cancel(tx, started.booking.reference),
            now=local(MONDAY, 11, 45))


# -- seeding ---------------------------------------------------------------------------


def test_seeding_leaves_a_closed_day_empty_until_it_is_reopened(db, settings):
    seeder = build_seeder(settings)
    closure = run(settings, lambda tx: rep_calendar.close(tx, TUESDAY)).closure
    assert seed_days(seeder, NOW, 3, settings=settings) == 32
    assert (slots_on(MONDAY), slots_on(TUESDAY), slots_on(WEDNESDAY)) == (16, 0, 16)
    run(settings, lambda tx: rep_calendar.reopen(tx, closure.id))
    assert seed_days(seeder, NOW, 3, settings=settings) == 16
    assert slots_on(TUESDAY) == 16


def test_seeding_goes_around_the_reps_extra_times(db, settings):
    extra = run(settings, lambda tx: rep_calendar.add_times(
        tx, local(TUESDAY, 12, 15), local(TUESDAY, 12, 45)))
    assert seed_days(build_seeder(settings), NOW, 3, settings=settings) == 46
    with session():
        moments = [r.start_time.replace(tzinfo=UTC).astimezone(NY) for r in TimeSlot.select()]
    starts = {m.strftime("%H:%M") for m in moments if m.date() == TUESDAY}
    assert "12:00" not in starts and "12:30" not in starts and "12:15" in starts
    assert [s.id for s in extra] == [1]


# -- extra times -----------------------------------------------------------------------


def test_extra_times_are_cut_into_slots_in_the_reps_zone(calendar):
    saturday = date(2026, 11, 28)
    naive = datetime(2026, 11, 28, 10, 0)  # no offset: New York
    added = run(calendar, lambda tx: rep_calendar.add_times(tx, naive, naive + timedelta(hours=1)))
    assert [(s.start_time, s.end_time) for s in added] == [
        (datetime(2026, 11, 28, 15, 0), datetime(2026, 11, 28, 15, 30)),
        (datetime(2026, 11, 28, 15, 30), datetime(2026, 11, 28, 16, 0)),
    ]
    assert free_on(saturday) == [s.id for s in added]
    assert changes()[-2:] == [(added[0].id, "added"), (added[1].id, "added")]


def test_extra_times_that_overlap_lie_in_the_past_or_on_a_closed_day_add_nothing(calendar):
    run(calendar, lambda tx: rep_calendar.close(tx, WEDNESDAY))
    cases = [
        (local(MONDAY, 16, 45), local(MONDAY, 17, 45),
         "the slot at 2026-11-23 16:45 overlaps slot 16 (2026-11-23 16:30-17:00)"),
        (local(WEDNESDAY, 18), local(WEDNESDAY, 18, 30),
         "the slot at 2026-11-25 18:00 is on a closed day (closure 1)"),
        (NOW - timedelta(hours=1), NOW, "the slot at 2026-11-20 09:00 is in the past"),
    ]
    with session():
        before = TimeSlot.select().count()
    for start, end, problem in cases:
        with pytest.raises(SlotsRefused) as refused:
            run(calendar, lambda tx, s=start, e=end: rep_calendar.add_times(tx, s, e))
        assert str(refused.value).startswith("Nothing was added (America/New_York times): ")
        assert problem in str(refused.value)
    with session():
        assert TimeSlot.select().count() == before  # the free 17:15 of the first was not added
    many = local(MONDAY, 9), local(MONDAY, 13)
    with pytest.raises(SlotsRefused, match=r"; and 3 more\.$"):
        run(calendar, lambda tx: rep_calendar.add_times(tx, *many))


@pytest.mark.parametrize(("start", "end", "message"), [
    (datetime(2026, 11, 28, 10), datetime(2026, 11, 28, 10), "end must be later than start"),
    (datetime(2026, 11, 28, 10), datetime(2026, 11, 28, 10, 45), "it is 45 minutes"),
    (datetime(2026, 11, 28), datetime(2026, 12, 30), "at most 1000 slots at once"),
    (datetime(1, 1, 1), datetime(1, 1, 1, 0, 30), "out of range|times must be from"),
])
def test_a_span_must_cut_into_whole_slots(settings, start, end, message):
    with pytest.raises(ValueError, match=message):
        rep_calendar.spans(start, end, settings)


def test_removing_a_slot(calendar):
    before = len(changes())
    assert run(calendar, lambda tx: rep_calendar.remove_slot(tx, 2)).id == 2
    assert row(2) is None and 2 not in free_on(MONDAY)
    assert changes()[before:] == [(2, "removed")]
    with pytest.raises(SlotNotFound):
        run(calendar, lambda tx: rep_calendar.remove_slot(tx, 2))
    with pytest.raises(SlotNotFound):
        run(calendar, lambda tx: rep_calendar.remove_slot(tx, 2**40))
    view = book(calendar, 3)
    with pytest.raises(SlotNotRemovable,
                       match=f"Slot 3 is booked \\(booking {view.booking.reference}\\)"):
        run(calendar, lambda tx: rep_calendar.remove_slot(tx, 3))
    run(calendar, lambda tx: booking.hold(tx, 4))
    with pytest.raises(SlotNotRemovable, match="Slot 4 is held by a visitor"):
        run(calendar, lambda tx: rep_calendar.remove_slot(tx, 4))
    later = NOW + timedelta(minutes=10)  # the hold has run out
    run(calendar, lambda tx: rep_calendar.remove_slot(tx, 4), now=later)


def test_a_removed_slot_with_a_cancelled_booking_is_kept_out_of_sight_and_can_return(calendar):
    view = book(calendar, 7)
    run(calendar, lambda tx: booking.cancel(tx, view.booking.reference, view.token))
    run(calendar, lambda tx: rep_calendar.remove_slot(tx, 7))
    assert (row(7).state, row(7).held_until, row(7).hold_token_hash) == ("removed", None, None)
    assert 7 not in free_on(MONDAY)
    with pytest.raises(SlotNotFound, match="Slot 7 does not exist."):
        book(calendar, 7)
    with pytest.raises(SlotNotFound):
        run(calendar, lambda tx: rep_calendar.remove_slot(tx, 7))
    assert rep_calendar.bookings(calendar, NOW, status="cancelled")[0].slot.id == 7  # its record
    again = run(calendar, lambda tx: rep_calendar.add_times(
        tx, local(MONDAY, 12), local(MONDAY, 12, 30)))
    assert [s.id for s in again] == [7]
    assert 7 in free_on(MONDAY)


# -- the lists -------------------------------------------------------------------------


def test_the_bookings_list_is_in_start_order_and_filters(calendar):
    late = book(calendar, 30, "late@example.com")
    early = book(calendar, 2, "early@example.com")
    gone = book(calendar, 10, "gone@example.com")
    run(calendar, lambda tx: booking.cancel(tx, gone.booking.reference, gone.token))

    def refs(**kw):
        return [v.booking.reference for v in rep_calendar.bookings(calendar, NOW, **kw)]

    assert refs() == [early.booking.reference, late.booking.reference]
    assert refs(status="cancelled") == [gone.booking.reference]
    assert refs(status="all") == [early.booking.reference, gone.booking.reference,
                                  late.booking.reference]
    assert refs(start=local(TUESDAY, 0)) == [late.booking.reference]
    assert refs(end=local(TUESDAY, 0)) == [early.booking.reference]
    # Without ``start``, only meetings that have not started.
    assert [v.booking.reference for v in rep_calendar.bookings(
        calendar, local(MONDAY, 9, 40))] == [late.booking.reference]


def test_the_csv_quotes_what_needs_it_and_defuses_formulas(calendar):
    notes = 'Line one, with "quotes"\nline two'
    tricky = [("=HYPERLINK(\"http://evil\")", "+1 555"), ("-2+3", "@SUM(A1)"),
              ("\tTabbed", "plain")]
    views = [book(calendar, 2, "a,b@example.com", name="Jane, Q.", notes=notes,
                  source={"utm_source": "news,letter", "referrer": "https://example.com/?a=1"})]
    for i, (name, note) in enumerate(tricky):
        views.append(book(calendar, 3 + i, f"lead{i}@example.com", name=name, notes=note))
    text = rep_calendar.to_csv(rep_calendar.bookings(calendar, NOW), calendar)
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(rep_calendar.CSV_COLUMNS)
    first = rows[0]
    assert (first["email"], first["name"], first["notes"]) == ("a,b@example.com", "Jane, Q.", notes)
    assert (first["utm_source"], first["referrer"]) == ("news,letter", "https://example.com/?a=1")
    assert first["start_time"] == "2026-11-23T09:30:00-05:00"
    assert first["reference"] == views[0].booking.reference and first["slot_id"] == "2"
    assert [(r["name"], r["notes"]) for r in rows[1:]] == [
        ("'=HYPERLINK(\"http://evil\")", "'+1 555"), ("'-2+3", "'@SUM(A1)"), ("'\tTabbed", "plain")]


# -- minimum notice and the daily cap ------------------------------------------------------


def test_minimum_notice_hides_and_refuses_the_slots_too_soon(calendar):
    noticed = replace(calendar, min_notice_minutes=120)
    monday_8 = local(MONDAY, 8)  # 09:00, 09:30 and 10:00 start within two hours
    earliest = monday_8 + timedelta(minutes=120)
    listed = [s.id for s in availability.free_slots(monday_8, earliest=earliest)]
    assert listed[:2] == [4, 5]
    with pytest.raises(SlotTooSoon, match="Slot 2 starts in less than 120 minutes"):
        book(noticed, 2, now=monday_8)
    with pytest.raises(SlotTooSoon):
        run(noticed, lambda tx: booking.hold(tx, 3), now=monday_8)
    assert book(noticed, 4, now=monday_8).slot.id == 4
    assert book(calendar, 1, now=monday_8).slot.id == 1  # no notice: the spec's behaviour


def test_the_daily_cap_counts_confirmed_bookings_of_the_reps_day(calendar):
    capped = replace(calendar, max_bookings_per_day=2)
    book(capped, 1, "a@example.com")
    gone = book(capped, 2, "b@example.com")
    run(capped, lambda tx: booking.cancel(tx, gone.booking.reference, gone.token))
    book(capped, 3, "c@example.com")
    with pytest.raises(DayFull, match="Slot 4 is on a day that is fully booked."):
        book(capped, 4, "d@example.com")
    book(capped, 17, "d@example.com")  # Tuesday is another day
    rows = availability.free_slot_rows(NOW)
    listed = {r[0] for r in booking.without_full_days(rows, capped, NOW)}
    assert not listed & set(range(1, 17)) and set(range(18, 33)) <= listed


def test_twenty_concurrent_bookings_of_one_day_with_a_cap_of_three(calendar, run_together):
    capped = replace(calendar, max_bookings_per_day=3)
    extra = run(capped, lambda tx: rep_calendar.add_times(
        tx, local(MONDAY, 17), local(MONDAY, 19)))  # 20 slots on Monday
    ids = list(range(1, 17)) + [s.id for s in extra]
    results = run_together(20, lambda i: book(capped, ids[i], f"lead{i}@example.com"))
    won = [r for r in results if isinstance(r, booking.BookingView)]
    assert len(won) == 3, results
    assert all(isinstance(r, DayFull) for r in results if r not in won)
    with session():
        assert Booking.select().where(Booking.status == "confirmed").count() == 3


def test_a_closure_and_concurrent_cancels_of_its_day_leave_nothing_free(calendar, run_together):
    views = [book(calendar, 17 + i, f"lead{i}@example.com") for i in range(8)]

    def act(i):
        if i == 0:
            return run(calendar, lambda tx: rep_calendar.close(tx, TUESDAY))
        view = views[i - 1]
        if i % 2:
            return run(calendar, lambda tx: booking.cancel(tx, view.booking.reference, view.token))
        return run(calendar, lambda tx: booking.reschedule(
            tx, view.booking.reference, view.token, 40 + i))

    results = run_together(9, act)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert free_on(TUESDAY) == []
