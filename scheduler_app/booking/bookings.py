"""The booking rules: book, find, get, cancel, reschedule.

Each change is a function of the change's ``Tx`` (see ``tx.py``); it takes and
frees slots with the slot rules (``slots.py``) and keeps the limits
(``limits.py``). ``now`` comes with the ``Tx``, so the rules are testable at
any time.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from ..availability import SlotRow
from ..db import database, session, sql
from ..errors import BookingNotFound, BookingUnchangeable
from ..migrations import new_reference
from ..models import Booking, TimeSlot
from ..settings import Settings
from ..tokens import token_hash
from .limits import CALENDAR_LOCK, check_day_cap, check_email_limit, lock
from .slots import check_and_take, check_takeable, free, read_slot, take
from .tx import Tx, transaction

# The booking's calendar is its slot's, copied at booking.
_INSERT_BOOKING = (
    "INSERT INTO bookings (reference, slot_id, email, name, notes, status, token_hash, "
    "sequence, timezone, source, created_at, updated_at, calendar_id) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, "
    "(SELECT calendar_id FROM time_slots WHERE id = {p})) RETURNING id, calendar_id"
)


@dataclass(frozen=True)
class Details:
    """What a lead sends with a booking, validated by the HTTP layer."""

    email: str
    name: str | None = None
    notes: str | None = None
    timezone: str | None = None
    source: dict | None = None


@dataclass(frozen=True)
class BookingView:
    """A booking with its slot, as the API shows it; ``token`` only when just made."""

    booking: Booking
    slot: SlotRow
    token: str | None = None


def book(tx: Tx, slot_id: int, details: Details, hold_token: str | None = None) -> BookingView:
    """Book slot ``slot_id`` for the lead; return the booking with its new token.

    Raises ``SlotNotFound``, ``SlotAlreadyBooked``, ``SlotAlreadyStarted``,
    ``SlotHeld``, ``SlotTooSoon``, ``DayFull`` or ``TooManyBookings``.
    """
    # The slot's refusals come first, then the limits': taking it first (one
    # round trip on PostgreSQL) changes no answer, as a refusal undoes the take.
    slot = check_and_take(tx, slot_id, details.email, hold_token)
    check_email_limit(tx, details.email)
    check_day_cap(tx, slot)
    token = tx.new_token()
    fields = {
        "reference": new_reference(), "slot_id": slot.id, "email": details.email,
        "name": details.name, "notes": details.notes, "status": "confirmed",
        "token_hash": token_hash(token), "sequence": 0, "timezone": details.timezone,
        "source": json.dumps(details.source, sort_keys=True) if details.source else None,
        "created_at": tx.db_now, "updated_at": tx.db_now,
    }
    booking_id, calendar_id = database.execute_sql(
        sql(_INSERT_BOOKING), (*fields.values(), slot.id)).fetchone()
    booking = Booking(id=booking_id, calendar_id=calendar_id, **fields)
    tx.booking_changed("booking.created", booking.id)
    return BookingView(booking, slot, token)


def find(reference: str, token: str | None) -> BookingView:
    """The booking of ``reference`` if ``token`` is its token (``None``: the rep's
    access, no token needed); ``BookingNotFound`` for an unknown reference and a
    wrong token alike."""
    booking = Booking.get_or_none(Booking.reference == reference.upper())
    if token is not None:
        stored = booking.token_hash if booking is not None else None
        # Compare even when there is nothing to compare with, in the same time.
        if not hmac.compare_digest(token_hash(token), stored or "0" * 64) or stored is None:
            raise BookingNotFound()
    if booking is None:
        raise BookingNotFound()
    slot = read_slot(booking.slot_id)[0]
    if booking.status != "confirmed":
        # Its slot is no longer this booking's: never show who booked it since.
        slot = slot._replace(is_booked=False, booked_by_email=None)
    return BookingView(booking, slot)


def get(reference: str, token: str) -> BookingView:
    """Read a booking with its token (outside any change)."""
    with session():
        return find(reference, token)


def cancel(tx: Tx, reference: str, token: str | None, reason: str | None = None,
           by: str = "lead") -> BookingView:
    """Cancel the booking and free its slot; again: the same state. ``token`` None:
    the rep's cancel. ``BookingUnchangeable`` once the meeting has started."""
    lock(CALENDAR_LOCK, shared=True)  # before any row: see CALENDAR_LOCK
    view = find(reference, token)
    booking = view.booking
    if booking.status == "cancelled":
        return view
    if view.slot.start_time <= tx.db_now:
        raise BookingUnchangeable("This meeting has already started and can no longer be cancelled.")
    updated = (
        Booking.update(status="cancelled", cancelled_at=tx.db_now, cancel_reason=reason,
                       cancelled_by=by, sequence=Booking.sequence + 1, updated_at=tx.db_now)
        .where((Booking.id == booking.id) & (Booking.status == "confirmed")
               & (Booking.slot == booking.slot_id))
        .execute()
    )
    if updated != 1:
        # Changed since it was read (PostgreSQL: a concurrent cancel, or a
        # reschedule that moved it): cancel it as it is now, or answer it cancelled.
        return cancel(tx, reference, token, reason, by)
    free(tx, view.slot)
    tx.booking_changed("booking.cancelled", booking.id)
    return BookingView(Booking.get_by_id(booking.id), view.slot._replace(is_booked=False,
                                                                           booked_by_email=None))


def reschedule(tx: Tx, reference: str, token: str, slot_id: int,
               hold_token: str | None = None) -> BookingView:
    """Move the booking to slot ``slot_id``: take the new slot, free the old one,
    ``sequence`` + 1, all or nothing. Same reference and token."""
    lock(CALENDAR_LOCK, shared=True)  # before any row: see CALENDAR_LOCK
    view = find(reference, token)
    booking = view.booking
    if booking.status != "confirmed":
        raise BookingUnchangeable("This booking is cancelled; book a new time instead.")
    if view.slot.start_time <= tx.db_now:
        raise BookingUnchangeable("This meeting has already started and can no longer be moved.")
    if slot_id == view.slot.id:
        return view
    new_slot = check_takeable(tx, slot_id, hold_token)
    check_day_cap(tx, new_slot)
    new_slot = take(tx, new_slot, booking.email, hold_token)
    updated = (
        Booking.update(slot=new_slot.id, sequence=Booking.sequence + 1, updated_at=tx.db_now,
                       calendar_id=TimeSlot.select(TimeSlot.calendar_id)
                       .where(TimeSlot.id == new_slot.id))
        .where((Booking.id == booking.id) & (Booking.status == "confirmed")
               & (Booking.slot == view.slot.id))
        .execute()
    )
    if updated != 1:  # cancelled or moved meanwhile: undo it all (the savepoint)
        raise BookingUnchangeable("This booking changed meanwhile; reload it and try again.")
    free(tx, view.slot)
    tx.booking_changed("booking.rescheduled", booking.id)
    return BookingView(Booking.get_by_id(booking.id), new_slot)


def book_slot(slot_id: int, email: str, now: datetime,
              settings: Settings | None = None) -> SlotRow:
    """Book slot ``slot_id`` for ``email``; return the booked slot (the spec's POST /book,
    kept for callers that need only the slot)."""
    view = transaction(settings or Settings(), now, lambda tx: book(tx, slot_id, Details(email)))
    return view.slot
