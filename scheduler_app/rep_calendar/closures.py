"""Closed days: ``close``, ``reopen``, the list of closures and their conflicts.

Closing takes the days' free slots that have not started out, in the same
transaction: deleted, or, when a booking (cancelled since) still refers to
one, kept with the state ``closed`` (not listed, not bookable) for that
booking's record. Booked slots are kept: they are the closure's
``conflicts``, for the rep to decide. ``reopen`` deletes a closure and opens
its kept slots again; the deleted ones come back with the next seeding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import peewee

from .. import booking
from ..availability import SlotRow, as_datetime
from ..booking import CALENDAR_LOCK, BookingView, Tx
from ..db import reading, session
from ..errors import ClosureNotFound
from ..models import CLOSED, MAX_SLOT_ID, OPEN, Booking, Closure, TimeSlot, to_db_time
from ..settings import Settings
from ._common import EARLIEST_DAY, LATEST_DAY, batches, day_range, iso, returned
from .bookings import booking_row, views

# The longest closure.
MAX_CLOSURE_DAYS = 366


def check_days(first: date, last: date | None) -> date:
    """The closure's last day (``first`` when None); ``ValueError`` saying why not."""
    last = first if last is None else last
    if first < EARLIEST_DAY or last > LATEST_DAY:
        raise ValueError(f"days must be from {EARLIEST_DAY} to {LATEST_DAY}")
    if last < first:
        raise ValueError("to must be the same day as from or later")
    if (last - first).days >= MAX_CLOSURE_DAYS:
        raise ValueError(f"a closure is at most {MAX_CLOSURE_DAYS} days long")
    return last


def conflicts(first: date, last: date, settings: Settings, now: datetime) -> list[BookingView]:
    """The confirmed bookings of the rep's days ``first`` to ``last`` that have not started."""
    start, end = days_bounds(first, last, settings)
    query = (
        Booking.select(Booking, TimeSlot).join(TimeSlot)
        .where((Booking.status == "confirmed") & (TimeSlot.start_time >= start)
               & (TimeSlot.start_time < end) & (TimeSlot.start_time > to_db_time(now)))
    )
    return views(query)


@dataclass(frozen=True)
class ClosureView:
    """A closure, the booked meetings in its days (kept), and what closing took out."""

    closure: Closure
    conflicts: list[BookingView]
    removed: list[SlotRow] = field(default_factory=list)

    @property
    def message(self) -> str:
        """What closing did, for the rep (the API's ``message``, the CLI's line)."""
        days = day_range(self.closure.first_day, self.closure.last_day)
        text = f"Closed {days}; {len(self.removed)} free slot(s) taken out."
        if self.conflicts:
            text += (f" {len(self.conflicts)} booked meeting(s) in these days are kept: "
                     "cancel them if they cannot take place.")
        return text


def closures(settings: Settings, now: datetime) -> list[ClosureView]:
    """Every closure, by its first day, with its conflicts."""
    with reading(), session():
        rows = list(Closure.select().order_by(Closure.first_day, Closure.id))
        return [ClosureView(c, conflicts(c.first_day, c.last_day, settings, now)) for c in rows]


def closed_days(first: date, last: date, calendar_id: int | None = None) -> set[date]:
    """The days from ``first`` to ``last`` that a closure covers (of one calendar:
    its own closures and those of every calendar; ``None``: any closure)."""
    days: set[date] = set()
    where = (Closure.first_day <= last) & (Closure.last_day >= first)
    if calendar_id is not None:
        where &= Closure.calendar_id.is_null() | (Closure.calendar_id == calendar_id)
    query = Closure.select(Closure.first_day, Closure.last_day).where(where).tuples()
    for low, high in query:
        day = max(low, first)
        while day <= min(high, last):
            days.add(day)
            day += timedelta(days=1)
    return days


def covering(day: date) -> Closure | None:
    return (Closure.select().where((Closure.first_day <= day) & (Closure.last_day >= day))
            .order_by(Closure.id).first())


def days_bounds(first: date, last: date, settings: Settings) -> tuple[datetime, datetime]:
    """Days ``first`` to ``last`` of the rep as naive UTC ``[start, end)``."""
    return booking.day_bounds(first, settings)[0], booking.day_bounds(last, settings)[1]


def close(tx: Tx, first: date, last: date | None = None, reason: str | None = None) -> ClosureView:
    """Close the rep's days ``first`` to ``last`` (default: ``first`` alone): take
    their free slots out, keep their booked ones (the conflicts)."""
    last = check_days(first, last)
    booking.lock(CALENDAR_LOCK)
    closure = Closure.create(first_day=first, last_day=last, reason=reason or None,
                             created_at=tx.db_now)
    start, end = days_bounds(first, last, tx.settings)
    referred = Booking.select(Booking.id).where(Booking.slot == TimeSlot.id)
    candidates = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time,
                        peewee.fn.EXISTS(referred).alias("referred"))
        .where(~TimeSlot.is_booked & (TimeSlot.start_time >= start) & (TimeSlot.start_time < end)
               & (TimeSlot.start_time > tx.db_now) & (TimeSlot.state == OPEN))
        .tuples()
    )
    rows = list(candidates)
    gone = [r for r in rows if not r[3]]
    kept = [r for r in rows if r[3]]
    removed = []
    for batch in batches([r[0] for r in gone]):
        # Guarded: a slot booked meanwhile (PostgreSQL) is a conflict instead.
        query = TimeSlot.delete().where(TimeSlot.id.in_(batch) & ~TimeSlot.is_booked)
        removed += returned(query)
    for batch in batches([r[0] for r in kept]):
        query = (TimeSlot.update(state=CLOSED, held_until=None, hold_token_hash=None)
                 .where(TimeSlot.id.in_(batch) & ~TimeSlot.is_booked))
        removed += returned(query)
    for slot in sorted(removed):
        tx.slot_changed(slot, "removed")
    return ClosureView(closure, conflicts(first, last, tx.settings, tx.now),
                       sorted(removed, key=lambda s: s.start_time))


@dataclass(frozen=True)
class Reopened:
    closure: Closure
    freed: list[SlotRow]  # the slots kept closed, free again

    @property
    def notice(self) -> str:
        """What reopening means for the days' other slots (the API's header, the CLI's line)."""
        days = day_range(self.closure.first_day, self.closure.last_day)
        freed = f"{len(self.freed)} kept slot(s) are free again; " if self.freed else ""
        return (f"Reopened {days}: {freed}the other slots of these days are seeded again by "
                "the next `scheduler-app seed` if the days are within its horizon "
                "(SCHEDULER_SEED_DAYS business days).")


def reopen(tx: Tx, closure_id: int) -> Reopened:
    """Delete closure ``closure_id``; free its days' kept slots that no other closure covers."""
    booking.lock(CALENDAR_LOCK)
    closure = Closure.get_or_none(Closure.id == closure_id) if 1 <= closure_id <= MAX_SLOT_ID \
        else None
    if closure is None:
        raise ClosureNotFound(closure_id)
    closure.delete_instance()
    start, end = days_bounds(closure.first_day, closure.last_day, tx.settings)
    still = closed_days(closure.first_day, closure.last_day)
    marked = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
        .where((TimeSlot.state == CLOSED) & ~TimeSlot.is_booked
               & (TimeSlot.start_time >= start) & (TimeSlot.start_time < end)
               & (TimeSlot.start_time > tx.db_now))
        .tuples()
    )
    ids = [i for i, s, _ in marked if booking.local_day(as_datetime(s), tx.settings) not in still]
    freed = []
    for batch in batches(ids):
        query = (TimeSlot.update(state=OPEN)
                 .where(TimeSlot.id.in_(batch) & (TimeSlot.state == CLOSED)))
        freed += returned(query)
    freed.sort(key=lambda s: s.start_time)
    for slot in freed:
        tx.slot_changed(slot, "free")
    return Reopened(closure, freed)


def closure_row(view: ClosureView, settings: Settings) -> dict:
    c = view.closure
    return {
        "id": c.id,
        "from": as_date(c.first_day).isoformat(),
        "to": as_date(c.last_day).isoformat(),
        "reason": c.reason,
        "created_at": iso(c.created_at, settings),
        "conflicts": [booking_row(b, settings) for b in view.conflicts],
    }


def as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
