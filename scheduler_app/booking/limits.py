"""The limits a booking must keep, the rep's days, and the locks that keep them.

- per email: at most ``SCHEDULER_MAX_UPCOMING_PER_EMAIL`` upcoming confirmed
  bookings (``check_email_limit``);
- per day: at most ``SCHEDULER_MAX_BOOKINGS_PER_DAY`` confirmed bookings on the
  rep's day (``check_day_cap``), and availability without the full days
  (``without_full_days``);
- the rep's days (``local_day``, ``day_bounds``) and closures (``day_closed``).

Concurrent transactions checking the same limit are serialised by ``lock``
(PostgreSQL's advisory transaction locks; SQLite's BEGIN IMMEDIATE already
serialises every write). ``CALENDAR_LOCK`` orders the calendar's changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import peewee

from ..availability import SlotRow, as_datetime
from ..db import database, session
from ..errors import DayFull, TooManyBookings
from ..models import Booking, Closure, TimeSlot, to_db_time
from ..settings import Settings
from .tx import Tx

# Taken exclusively (PostgreSQL) by what changes the calendar's days (closures,
# extra times, seeding), shared by what frees a slot (cancel, reschedule), so
# that no slot is freed on a day being closed without the closure seeing it.
CALENDAR_LOCK = "calendar"


def lock(key: str, shared: bool = False) -> None:
    """PostgreSQL: serialise the transactions that check the same limit (SQLite's
    BEGIN IMMEDIATE already serialises every write); ``shared`` ones only with
    those that take ``key`` exclusively."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        database.execute_sql(f"SELECT {function}(hashtext(%s))", (key,))


def check_email_limit(tx: Tx, email: str) -> None:
    """``TooManyBookings`` when ``email`` has its limit of upcoming confirmed bookings."""
    limit = tx.settings.max_upcoming_per_email
    if not limit:
        return
    lock(f"email:{email.lower()}")
    upcoming = (
        Booking.select()
        .join(TimeSlot, on=(Booking.slot == TimeSlot.id))
        .where((peewee.fn.LOWER(Booking.email) == email.lower())
               & (Booking.status == "confirmed") & (TimeSlot.start_time > tx.db_now))
        .count()
    )
    if upcoming >= limit:
        raise TooManyBookings(limit)


def check_day_cap(tx: Tx, slot: SlotRow) -> None:
    """``DayFull`` when the slot's day (the rep's) has its cap of confirmed bookings."""
    cap = tx.settings.max_bookings_per_day
    if not cap:
        return
    day = local_day(slot.start_time, tx.settings)
    lock(f"day:{day.isoformat()}")
    if confirmed_on(day, tx.settings) >= cap:
        raise DayFull(slot.id)


def day_bounds(day: date, settings: Settings) -> tuple[datetime, datetime]:
    """The rep's ``day`` as naive UTC ``[start, end)``."""
    start = datetime.combine(day, time(), settings.tz)
    return to_db_time(start), to_db_time(datetime.combine(day + timedelta(days=1), time(),
                                                          settings.tz))


def local_day(moment: datetime, settings: Settings) -> date:
    """The rep's day of a naive UTC moment."""
    return moment.replace(tzinfo=UTC).astimezone(settings.tz).date()


def day_closed(slot: SlotRow, settings: Settings) -> bool:
    """Whether the slot's day (the rep's) is in one of the rep's closures."""
    day = local_day(slot.start_time, settings)
    return Closure.select().where((Closure.first_day <= day) & (Closure.last_day >= day)).exists()


def confirmed_on(day: date, settings: Settings) -> int:
    """How many confirmed bookings the rep's ``day`` has."""
    start, end = day_bounds(day, settings)
    return (
        Booking.select()
        .join(TimeSlot, on=(Booking.slot == TimeSlot.id))
        .where((Booking.status == "confirmed") & (TimeSlot.start_time >= start)
               & (TimeSlot.start_time < end))
        .count()
    )


def without_full_days(rows: list[tuple], settings: Settings, now: datetime) -> list[tuple]:
    """``availability.free_slot_rows`` without the slots of days that have
    ``SCHEDULER_MAX_BOOKINGS_PER_DAY`` confirmed bookings (the rep's days)."""
    with session():
        starts = (
            TimeSlot.select(TimeSlot.start_time)
            .join(Booking, on=(Booking.slot == TimeSlot.id))
            .where((Booking.status == "confirmed") & (TimeSlot.start_time > to_db_time(now)))
            .tuples()
        )
        per_day: dict[date, int] = {}
        for (start,) in starts:
            day = local_day(as_datetime(start), settings)
            per_day[day] = per_day.get(day, 0) + 1
    full = {day for day, count in per_day.items() if count >= settings.max_bookings_per_day}
    if not full:
        return rows
    return [row for row in rows if local_day(as_datetime(row[1]), settings) not in full]
