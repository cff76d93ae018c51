"""The booking rules as plain functions, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import invariant
import psycopg2
import pytest
from support import FRIDAY

from scheduler_app import availability, booking, idempotency
from scheduler_app.booking import Answer, Details, IdempotencyKey, transaction
from scheduler_app.db import close_database, init_database, session
from scheduler_app.errors import (
    BookingNotFound,
    BookingUnchangeable,
    HoldNotFound,
    IdempotencyKeyReused,
    SlotAlreadyBooked,
    SlotAlreadyStarted,
    SlotHeld,
    SlotNotFound,
    TooManyBookings,
)
from scheduler_app.migrations import CROCKFORD, new_reference, upgrade
from scheduler_app.models import Booking, Change, FeedVersion, TimeSlot
from scheduler_app.notify.outbox import BookingEvent
from scheduler_app.settings import Settings

NOW = FRIDAY  # tests/support.py's fixed instant


def add_slot(start: datetime) -> int:
    """A free slot at ``start`` (booked ones are booked through the booking module)."""
    naive = start.astimezone(UTC).replace(tzinfo=None)
    with TimeSlot._meta.database.connection_context():
        return TimeSlot.create(start_time=naive, end_time=naive + timedelta(minutes=30)).id


def stored(slot_id: int) -> TimeSlot:
    with TimeSlot._meta.database.connection_context():
        return TimeSlot.get_by_id(slot_id)


def test_free_slots_are_the_unbooked_future_ones_in_order(db):
    later = add_slot(NOW + timedelta(hours=3))
    sooner = add_slot(NOW + timedelta(hours=1))
    booking.book_slot(add_slot(NOW + timedelta(hours=2)), "x@example.com", NOW)
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
    slot_id = add_slot(NOW + timedelta(hours=1))
    booking.book_slot(slot_id, "first@example.com", NOW)
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


# -- the one transaction and its changes ---------------------------------------------

SETTINGS = Settings()


def run(change, now=NOW, settings=SETTINGS, key=None):
    return transaction(settings, now, change, key)


def made(slot_id: int, email: str = "lead@example.com", **kw) -> booking.BookingView:
    return run(lambda tx: booking.book(tx, slot_id, Details(email, **kw)))


def stored_booking(booking_id: int) -> Booking:
    with session():
        return Booking.get_by_id(booking_id)


def feed() -> tuple[int, list[tuple[int, str]]]:
    """The feed version and the (slot id, state) of each change, in order."""
    with session():
        version = FeedVersion.get_by_id(1).v
        changes = list(Change.select(Change.slot_id, Change.state).order_by(Change.v).tuples())
    return version, changes


def test_book_makes_a_confirmed_booking_with_a_hashed_token(db):
    slot_id = add_slot(NOW + timedelta(hours=1))
    view = made(slot_id, name="Jane", notes="Hi", timezone="Europe/Paris")
    assert (view.slot.is_booked, view.slot.booked_by_email) == (True, "lead@example.com")
    row = stored_booking(view.booking.id)
    assert (row.slot_id, row.status, row.sequence, row.name, row.notes, row.timezone) == (
        slot_id, "confirmed", 0, "Jane", "Hi", "Europe/Paris")
    assert row.token_hash == hashlib.sha256(view.token.encode()).hexdigest()
    assert len(row.reference) == 8 and set(row.reference) <= set(CROCKFORD)
    assert feed() == (1, [(slot_id, "booked")])


def test_a_refused_change_leaves_nothing_behind(db):
    first, second = add_slot(NOW + timedelta(hours=1)), add_slot(NOW + timedelta(hours=2))

    def book_then_refuse(tx):
        booking.book(tx, first, Details("lead@example.com"))
        raise SlotHeld(second)

    with pytest.raises(SlotHeld):
        run(book_then_refuse)
    assert stored(first).is_booked is False
    with session():
        assert Booking.select().count() == 0
    assert feed() == (0, [])


def test_the_events_and_slot_changes_of_each_change(db):
    a, b = add_slot(NOW + timedelta(hours=1)), add_slot(NOW + timedelta(hours=2))
    seen = []

    def recorded(change):
        def wrapped(tx):
            seen.append(tx)
            return change(tx)
        return wrapped

    view = run(recorded(lambda tx: booking.book(tx, a, Details("lead@example.com"))))
    run(recorded(lambda tx: booking.reschedule(tx, view.booking.reference, view.token, b)))
    run(recorded(lambda tx: booking.cancel(tx, view.booking.reference, view.token)))
    assert [tx.events for tx in seen] == [
        [BookingEvent("booking.created", view.booking.id)],
        [BookingEvent("booking.rescheduled", view.booking.id)],
        [BookingEvent("booking.cancelled", view.booking.id)],
    ]
    assert feed() == (4, [(a, "booked"), (b, "booked"), (a, "free"), (b, "free")])
    assert stored_booking(view.booking.id).sequence == 2


def test_hold_book_with_its_token_and_expiry(db):
    slot_id = add_slot(NOW + timedelta(hours=1))
    held = run(lambda tx: booking.hold(tx, slot_id))
    assert held.expires_at == (NOW + timedelta(seconds=300)).replace(tzinfo=None)
    assert availability.free_slots(NOW) == []
    with pytest.raises(SlotHeld):
        made(slot_id, "other@example.com")
    with pytest.raises(SlotHeld):
        run(lambda tx: booking.hold(tx, slot_id))
    # At held_until the hold is over, for the availability query and the guarded UPDATE.
    at_expiry = NOW + timedelta(seconds=300)
    assert [s.id for s in availability.free_slots(at_expiry)] == [slot_id]
    with pytest.raises(HoldNotFound):
        run(lambda tx: booking.release(tx, slot_id, held.token), now=at_expiry)
    view = run(lambda tx: booking.book(tx, slot_id, Details("late@example.com")), now=at_expiry)
    assert view.slot.booked_by_email == "late@example.com"


def test_the_holder_books_and_release_frees(db):
    a, b = add_slot(NOW + timedelta(hours=1)), add_slot(NOW + timedelta(hours=2))
    held_a = run(lambda tx: booking.hold(tx, a))
    view = run(lambda tx: booking.book(tx, a, Details("lead@example.com"), held_a.token))
    assert view.slot.is_booked
    held_b = run(lambda tx: booking.hold(tx, b))
    with pytest.raises(HoldNotFound):
        run(lambda tx: booking.release(tx, b, held_a.token))
    run(lambda tx: booking.release(tx, b, held_b.token))
    assert [s.id for s in availability.free_slots(NOW)] == [b]
    with pytest.raises(HoldNotFound):
        run(lambda tx: booking.release(tx, b, held_b.token))
    assert feed()[1] == [(a, "held"), (a, "booked"), (b, "held"), (b, "free")]


def test_find_needs_the_token_except_for_the_rep(db):
    view = made(add_slot(NOW + timedelta(hours=1)))
    reference = view.booking.reference
    with session():
        assert booking.find(reference.lower(), view.token).booking.id == view.booking.id
        for token in ("", "wrong", view.token + "x"):
            with pytest.raises(BookingNotFound):
                booking.find(reference, token)
        with pytest.raises(BookingNotFound):
            booking.find("ZZZZZZZZ", view.token)
        with pytest.raises(BookingNotFound):
            booking.find("ZZZZZZZZ", None)
        assert booking.find(reference, None).booking.id == view.booking.id


def test_a_booking_without_a_token_cannot_be_found_by_any_token(db):
    """As the bookings recorded from the first release's slots."""
    view = made(add_slot(NOW + timedelta(hours=1)))
    with session():
        Booking.update(token_hash=None).where(Booking.id == view.booking.id).execute()
        with pytest.raises(BookingNotFound):
            booking.find(view.booking.reference, view.token)
        with pytest.raises(BookingNotFound):
            booking.find(view.booking.reference, hashlib.sha256(b"").hexdigest())


def test_the_rep_cancels_without_a_token(db):
    view = made(add_slot(NOW + timedelta(hours=1)))
    cancelled = run(lambda tx: booking.cancel(tx, view.booking.reference, None, "Out sick", "rep"))
    assert cancelled.booking.status == "cancelled"
    row = stored_booking(view.booking.id)
    assert (row.cancelled_by, row.cancel_reason, row.sequence) == ("rep", "Out sick", 1)
    assert stored(view.slot.id).is_booked is False


def test_started_bookings_cannot_change(db):
    view = made(add_slot(NOW + timedelta(minutes=10)))
    other = add_slot(NOW + timedelta(hours=2))
    later = NOW + timedelta(minutes=10)
    with pytest.raises(BookingUnchangeable):
        run(lambda tx: booking.cancel(tx, view.booking.reference, view.token), now=later)
    with pytest.raises(BookingUnchangeable):
        run(lambda tx: booking.reschedule(tx, view.booking.reference, view.token, other),
            now=later)
    assert stored_booking(view.booking.id).status == "confirmed"


def test_the_email_limit_is_case_insensitive_and_counts_upcoming_only(db):
    limited = Settings(max_upcoming_per_email=1)
    a, b, c = (add_slot(NOW + timedelta(hours=h)) for h in (1, 2, 3))
    run(lambda tx: booking.book(tx, a, Details("Lead@Example.com")), settings=limited)
    with pytest.raises(TooManyBookings) as refused:
        run(lambda tx: booking.book(tx, b, Details("lead@EXAMPLE.com")), settings=limited)
    assert "reschedule" in str(refused.value)
    assert stored(b).is_booked is False
    after = NOW + timedelta(hours=1)  # slot a's meeting has started
    run(lambda tx: booking.book(tx, c, Details("LEAD@example.com")), settings=limited, now=after)


def test_twenty_threads_one_email_limit_one(db, run_together):
    limited = Settings(max_upcoming_per_email=1)
    ids = [add_slot(NOW + timedelta(hours=1 + i)) for i in range(20)]
    results = run_together(20, lambda i: run(
        lambda tx: booking.book(tx, ids[i], Details("lead@example.com")), settings=limited))
    winners = [r for r in results if isinstance(r, booking.BookingView)]
    assert len(winners) == 1, results
    assert all(isinstance(r, TooManyBookings) for r in results if r not in winners)


def test_twenty_threads_one_hold_one_wins(db, run_together):
    slot_id = add_slot(NOW + timedelta(hours=1))
    results = run_together(20, lambda i: run(lambda tx: booking.hold(tx, slot_id)))
    winners = [r for r in results if isinstance(r, booking.Hold)]
    assert len(winners) == 1
    assert all(isinstance(r, SlotHeld) for r in results if r not in winners)


# -- Idempotency-Key ------------------------------------------------------------------------


def render(view: booking.BookingView) -> Answer:
    return Answer(200, f'{{"reference":"{view.booking.reference}","token":"{view.token}"}}'
                  .encode())


def test_a_keyed_transaction_replays_its_answer_with_the_same_token(db):
    slot_id = add_slot(NOW + timedelta(hours=1))
    change = lambda tx: booking.book(tx, slot_id, Details("lead@example.com"))  # noqa: E731
    first = run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    again = run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    assert (first.status, first.replayed, again.status, again.replayed) == (200, False, 200, True)
    assert again.body == first.body
    with session():
        assert Booking.select().count() == 1
    with pytest.raises(IdempotencyKeyReused):
        run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id + 1}, render))


def test_a_refused_keyed_change_is_stored_and_replayed(db):
    slot_id = add_slot(NOW + timedelta(hours=1))
    made(slot_id, "first@example.com")
    change = lambda tx: booking.book(tx, slot_id, Details("lead@example.com"))  # noqa: E731
    with pytest.raises(SlotAlreadyBooked):
        run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    again = run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    assert (again.status, again.replayed) == (409, True)
    assert again.body == b'{"detail":"Slot %d is already booked."}' % slot_id


def test_a_failed_keyed_change_stores_no_answer(db):
    slot_id = add_slot(NOW + timedelta(hours=1))

    def crash(tx):
        booking.book(tx, slot_id, Details("lead@example.com"))
        raise RuntimeError("a bug, a 500")

    with pytest.raises(RuntimeError):
        run(crash, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    change = lambda tx: booking.book(tx, slot_id, Details("lead@example.com"))  # noqa: E731
    retry = run(change, key=IdempotencyKey("POST /book", "k", {"slot_id": slot_id}, render))
    assert (retry.status, retry.replayed) == (200, False)


def test_a_keys_tokens_are_derived_from_the_key_and_the_request():
    one = IdempotencyKey("POST /book", "k", {"slot_id": 1}, render)
    assert one.token(0) == IdempotencyKey("POST /book", "k", {"slot_id": 1}, render).token(0)
    others = {
        IdempotencyKey("POST /book", "k2", {"slot_id": 1}, render).token(0),
        IdempotencyKey("POST /book", "k", {"slot_id": 2}, render).token(0),
        IdempotencyKey("POST /holds", "k", {"slot_id": 1}, render).token(0),
        one.token(1),
    }
    assert one.token(0) not in others and len(others) == 4
    assert one.key == hashlib.sha256(b"k").hexdigest()  # stored hashed


@pytest.mark.parametrize("header, key", [
    ("abc", "abc"), ('"abc"', "abc"), ("a b", "a b"), ("x" * 255, "x" * 255),
    ('"' + "x" * 255 + '"', "x" * 255), ("!", "!"), ('a"b', 'a"b'),
])
def test_idempotency_keys_parse(header, key):
    assert idempotency.parse(header) == key


@pytest.mark.parametrize("header", ["", '""', '"', " abc", "x" * 256, "caf\u00e9", "a\tb",
                                    "a\x7f"])
def test_malformed_idempotency_keys(header):
    with pytest.raises(ValueError):
        idempotency.parse(header)


def test_references_are_eight_crockford_characters():
    references = {new_reference() for _ in range(2000)}
    assert len(references) == 2000
    assert all(len(r) == 8 and set(r) <= set(CROCKFORD) for r in references)
    assert not set("ILOU") & set(CROCKFORD)


# -- a cancel racing a reschedule, made deterministic on PostgreSQL -----------------------


def wait_for_a_lock_wait(url: str) -> None:
    """Until some session of the database waits for a row lock."""
    watcher = psycopg2.connect(url)
    watcher.autocommit = True
    try:
        deadline = time.monotonic() + 30
        while True:
            with watcher.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    return
            assert time.monotonic() < deadline, "no session ever waited for the lock"
            time.sleep(0.01)
    finally:
        watcher.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_cancel_that_waited_for_a_reschedule_cancels_the_moved_booking(db, database_url):
    """The cancel read the booking on its old slot, then waited for the row while a
    reschedule moved it: it must cancel it where it is now, not answer it confirmed."""
    old, new = add_slot(NOW + timedelta(hours=1)), add_slot(NOW + timedelta(hours=2))
    view = made(old)
    mover = psycopg2.connect(database_url)  # a reschedule in progress, as booking.reschedule does
    cursor = mover.cursor()
    cursor.execute("UPDATE time_slots SET is_booked = true, booked_by_email = %s WHERE id = %s",
                   ("lead@example.com", new))
    cursor.execute("UPDATE bookings SET slot_id = %s, sequence = sequence + 1 WHERE id = %s",
                   (new, view.booking.id))
    cursor.execute("UPDATE time_slots SET is_booked = false, booked_by_email = NULL "
                   "WHERE id = %s", (old,))
    outcome = []
    canceller = threading.Thread(target=lambda: outcome.append(
        run(lambda tx: booking.cancel(tx, view.booking.reference, view.token))))
    canceller.start()
    try:
        wait_for_a_lock_wait(database_url)
        mover.commit()
    finally:
        canceller.join(30)
        mover.close()
    [cancelled] = outcome
    assert cancelled.booking.status == "cancelled"
    assert cancelled.slot.id == new
    row = stored_booking(view.booking.id)
    assert (row.status, row.slot_id, row.sequence) == ("cancelled", new, 2)
    assert stored(old).is_booked is False and stored(new).is_booked is False


def test_the_invariant_check_sees_each_kind_of_break(db, database_url):
    """tests/invariant.py, which conftest runs after every database test, can fail."""
    a, b = add_slot(NOW + timedelta(hours=1)), add_slot(NOW + timedelta(hours=2))
    view = made(a)
    assert invariant.violations(database_url) == []
    breaks = [
        (TimeSlot.update(is_booked=False, booked_by_email=None).where(TimeSlot.id == a), a),
        (TimeSlot.update(booked_by_email="other@example.com").where(TimeSlot.id == a), a),
        (TimeSlot.update(is_booked=True, booked_by_email="x@example.com").where(TimeSlot.id == b),
         b),
        (TimeSlot.update(booked_by_email="x@example.com").where(TimeSlot.id == b), b),
        (Booking.update(status="cancelled").where(Booking.id == view.booking.id), a),
    ]
    for broken, slot_id in breaks:
        with session():
            broken.execute()
        assert [row[0] for row in invariant.violations(database_url)] == [slot_id]
        repair(a, b, view)
    assert invariant.violations(database_url) == []


def repair(a: int, b: int, view: booking.BookingView) -> None:
    with session():
        TimeSlot.update(is_booked=True, booked_by_email="lead@example.com").where(
            TimeSlot.id == a).execute()
        TimeSlot.update(is_booked=False, booked_by_email=None).where(TimeSlot.id == b).execute()
        Booking.update(status="confirmed").where(Booking.id == view.booking.id).execute()
