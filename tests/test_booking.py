"""The booking rules as plain functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler_app import availability, booking
from scheduler_app.db import close_database, init_database
from scheduler_app.errors import SlotAlreadyBooked, SlotAlreadyStarted, SlotNotFound
from scheduler_app.migrations import upgrade
from scheduler_app.models import TimeSlot

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def add_slot(start: datetime, booked: bool = False, email: str | None = None) -> int:
    naive = start.astimezone(UTC).replace(tzinfo=None)
    with TimeSlot._meta.database.connection_context():
        return TimeSlot.create(
            start_time=naive, end_time=naive + timedelta(minutes=30), is_booked=booked,
            booked_by_email=email,
        ).id


def stored(slot_id: int) -> TimeSlot:
    with TimeSlot._meta.database.connection_context():
        return TimeSlot.get_by_id(slot_id)


def test_free_slots_are_the_unbooked_future_ones_in_order(db):
    later = add_slot(NOW + timedelta(hours=3))
    sooner = add_slot(NOW + timedelta(hours=1))
    add_slot(NOW + timedelta(hours=2), booked=True, email="x@example.com")
    add_slot(NOW - timedelta(minutes=10))  # already started
    assert [s.id for s in availability.free_slots(NOW)] == [sooner, later]


def test_book_a_free_slot(db):
    slot_id = add_slot(NOW + timedelta(hours=1))
    slot = booking.book_slot(slot_id, "lead@example.com", NOW)
    assert (slot.id, slot.is_booked, slot.booked_by_email) == (slot_id, True, "lead@example.com")
    row = stored(slot_id)
    assert row.is_booked is True and row.booked_by_email == "lead@example.com"
    assert availability.free_slots(NOW) == []


def test_booked_slot_is_refused_and_keeps_its_owner(db):
    slot_id = add_slot(NOW + timedelta(hours=1), booked=True, email="first@example.com")
    with pytest.raises(SlotAlreadyBooked):
        booking.book_slot(slot_id, "second@example.com", NOW)
    assert stored(slot_id).booked_by_email == "first@example.com"


def test_started_slot_is_refused(db):
    slot_id = add_slot(NOW - timedelta(minutes=1))
    with pytest.raises(SlotAlreadyStarted):
        booking.book_slot(slot_id, "lead@example.com", NOW)
    assert stored(slot_id).is_booked is False


@pytest.mark.parametrize("slot_id", [0, -1, 999, 2**31, 2**63, 10**30])
def test_missing_ids_are_not_found(db, slot_id):
    add_slot(NOW + timedelta(hours=1))
    with pytest.raises(SlotNotFound):
        booking.book_slot(slot_id, "lead@example.com", NOW)


def test_on_sqlite_waiting_threads_hold_no_connection(tmp_path, run_together):
    """32 threads reading and booking at once: they queue for the process's one
    reader and one writer before taking a connection, so two are opened, not 32.
    (SQLite only: on PostgreSQL each thread has a connection of its own.)"""
    db = init_database(f"sqlite:///{tmp_path / 'slots.db'}")
    upgrade()
    ids = [add_slot(NOW + timedelta(hours=1 + i)) for i in range(16)]
    results = run_together(32, lambda i: availability.free_slots(NOW) if i % 2
                           else booking.book_slot(ids[i // 2], f"lead{i}@example.com", NOW))
    assert not [r for r in results if isinstance(r, Exception)]
    try:
        assert len(db._connections) + len(db._in_use) <= 2
    finally:
        close_database()


def test_twenty_threads_one_slot_exactly_one_wins(db, run_together):
    slot_id = add_slot(NOW + timedelta(hours=1))
    results = run_together(20, lambda i: booking.book_slot(slot_id, f"lead{i}@example.com", NOW))
    winners = [r for r in results if isinstance(r, availability.SlotRow)]
    assert len(winners) == 1
    assert all(isinstance(r, SlotAlreadyBooked) for r in results if r not in winners)
    assert stored(slot_id).booked_by_email == winners[0].booked_by_email
