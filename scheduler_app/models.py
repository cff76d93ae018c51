"""The tables. Timestamps are naive UTC throughout.

``calendars`` holds the reps (row one: the default, the SCHEDULER_* rep); each
slot and booking belongs to one, a closure to one or to all (NULL).
``time_slots`` keeps the spec's five columns and their meaning; a booking is
also a row of ``bookings``, and the two agree at all times (a booked slot has
exactly one confirmed booking, with its email). The other tables serve the
booking module's one transaction function: idempotency keys, the change feed
(``feed_version`` and ``changes``), the outbox of notifications, and the rep's
closures. The schema is created and upgraded by ``migrations.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from .db import database

EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 200
NOTES_MAX_LENGTH = 2000
REASON_MAX_LENGTH = 500
REFERENCE_LENGTH = 8


class _Model(peewee.Model):
    class Meta:
        database = database


# A slot's ``state`` in the rep's calendar. ``open``: listed and bookable when
# free. ``closed``: on a day the rep closed, kept (not deleted) because a
# booking, cancelled since, refers to it; reopening the day opens it again.
# ``removed``: taken out by the rep, kept for the same reason; adding the same
# time again opens it again. A slot that is not open is never booked nor held.
OPEN, CLOSED, REMOVED = "open", "closed", "removed"
SLOT_STATES = (OPEN, CLOSED, REMOVED)
STATE_CHECK = (
    "state IN ('open', 'closed', 'removed') AND (state = 'open' OR "
    "(NOT is_booked AND held_until IS NULL AND hold_token_hash IS NULL))"
)


# The default calendar: the rep the SCHEDULER_* settings describe (row one).
DEFAULT_CALENDAR_ID = 1
DEFAULT_CALENDAR_SLUG = "default"
SLUG_MAX_LENGTH = 64


class Calendar(_Model):
    """A rep's calendar. A NULL setting reads the matching SCHEDULER_* variable
    (see ``calendars.py``); the default calendar is row one."""

    id = peewee.AutoField()
    slug = peewee.CharField(max_length=SLUG_MAX_LENGTH, unique=True)  # lowercase, URL-safe
    name = peewee.CharField(max_length=NAME_MAX_LENGTH)
    email = peewee.CharField(max_length=EMAIL_MAX_LENGTH, null=True)
    timezone = peewee.CharField(max_length=64, null=True)
    day_start = peewee.CharField(max_length=5, null=True)  # "09:00"
    day_end = peewee.CharField(max_length=5, null=True)
    holidays = peewee.CharField(max_length=16, null=True)  # "US", "US-CA", "" (none)
    slot_minutes = peewee.IntegerField(null=True)
    min_notice_minutes = peewee.IntegerField(null=True)
    max_bookings_per_day = peewee.IntegerField(null=True)
    weight = peewee.IntegerField(default=100)
    priority = peewee.IntegerField(default=2)
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField()
    deactivated_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "calendars"


# The calendar column of time_slots: no REFERENCES in the model, since SQLite
# cannot add one with a default to an existing table; on PostgreSQL the
# migration adds the foreign key.
def _calendar_column() -> peewee.IntegerField:
    return peewee.IntegerField(column_name="calendar_id", default=DEFAULT_CALENDAR_ID,
                               constraints=[peewee.SQL(f"DEFAULT {DEFAULT_CALENDAR_ID}")])


class TimeSlot(_Model):
    """One bookable span of a rep's calendar; a start time is unique per calendar."""

    id = peewee.AutoField()
    start_time = peewee.DateTimeField()
    end_time = peewee.DateTimeField()
    is_booked = peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT false")])
    booked_by_email = peewee.CharField(max_length=EMAIL_MAX_LENGTH, null=True)
    # A hold (reserve, then confirm): live while held_until is after now.
    held_until = peewee.DateTimeField(null=True)
    hold_token_hash = peewee.CharField(max_length=64, null=True)
    state = peewee.CharField(max_length=8, default=OPEN, constraints=[
        peewee.SQL(f"DEFAULT '{OPEN}'"), peewee.Check(STATE_CHECK)])
    calendar_id = _calendar_column()

    class Meta:
        table_name = "time_slots"


# Two reps may have the same time; one rep not twice.
CALENDAR_START_INDEX = "time_slots_calendar_start_time"
TimeSlot.add_index(TimeSlot.index(TimeSlot.calendar_id, TimeSlot.start_time,
                                  name=CALENDAR_START_INDEX, unique=True))


# Serves the availability query: the free slots, by start time. Partial, so it
# holds only free slots and booked or past rows cost the query nothing; both
# databases use it for a query saying ``NOT is_booked`` (SQLite only for that
# exact term, not for ``is_booked = ?``). A composite (is_booked, start_time)
# index was not enough: with 100,000 rows PostgreSQL preferred the unique
# start_time index and filtered out every booked future row.
FREE_SLOTS_INDEX = "time_slots_free_start_time"
TimeSlot.add_index(
    TimeSlot.index(TimeSlot.start_time, name=FREE_SLOTS_INDEX, where=~TimeSlot.is_booked)
)


class Booking(_Model):
    """A lead's booking of a slot; ``reference`` is public, the token is only hashed."""

    id = peewee.AutoField()
    reference = peewee.CharField(max_length=REFERENCE_LENGTH, unique=True)
    slot = peewee.ForeignKeyField(TimeSlot, column_name="slot_id", backref="bookings")
    email = peewee.CharField(max_length=EMAIL_MAX_LENGTH, index=True)
    name = peewee.CharField(max_length=NAME_MAX_LENGTH, null=True)
    notes = peewee.TextField(null=True)
    status = peewee.CharField(max_length=16, default="confirmed")  # confirmed | cancelled
    token_hash = peewee.CharField(max_length=64, null=True)  # null: made before bookings existed
    sequence = peewee.IntegerField(default=0)
    timezone = peewee.CharField(max_length=64, null=True)
    source = peewee.TextField(null=True)  # JSON: utm_* and referrer
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()
    cancelled_at = peewee.DateTimeField(null=True)
    cancel_reason = peewee.CharField(max_length=REASON_MAX_LENGTH, null=True)
    cancelled_by = peewee.CharField(max_length=16, null=True)  # lead | rep
    calendar_id = _calendar_column()  # the slot's, copied at booking

    class Meta:
        table_name = "bookings"


# The database itself refuses a second confirmed booking of a slot.
CONFIRMED_SLOT_INDEX = "bookings_confirmed_slot"
Booking.add_index(
    Booking.index(Booking.slot, name=CONFIRMED_SLOT_INDEX, unique=True,
                  where=Booking.status == "confirmed")
)


class IdempotencyKey(_Model):
    """A request's Idempotency-Key and the answer it got, replayed for 24 hours."""

    id = peewee.AutoField()
    scope = peewee.CharField(max_length=64)  # the endpoint
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)  # SHA-256 of the request
    status = peewee.IntegerField(null=True)
    body = peewee.BlobField(null=True)
    created_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "idempotency_keys"
        indexes = ((("scope", "key"), True),)


class FeedVersion(_Model):
    """A single row: the version of availability, bumped by every change."""

    id = peewee.IntegerField(primary_key=True)
    v = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "feed_version"


class Change(_Model):
    """One change of a slot's availability, numbered by the version it made."""

    v = peewee.BigIntegerField(primary_key=True)
    slot_id = peewee.IntegerField()
    start_time = peewee.DateTimeField()
    end_time = peewee.DateTimeField()
    state = peewee.CharField(max_length=16)  # free | booked | held | added | removed
    created_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "changes"


class OutboxMessage(_Model):
    """A notification to deliver at least once: one row per message and destination."""

    id = peewee.AutoField()
    channel = peewee.CharField(max_length=16)  # email | webhook
    event = peewee.CharField(max_length=32)  # booking.created | .rescheduled | .cancelled
    recipient = peewee.CharField(max_length=32)  # lead | rep | webhook
    booking = peewee.ForeignKeyField(Booking, column_name="booking_id", null=True)
    payload = peewee.TextField()  # JSON, everything needed to send it
    status = peewee.CharField(max_length=16, default="pending")  # pending | sent | dead
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField()
    lease_until = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "outbox"
        indexes = ((("status", "next_attempt_at"), False),)


class Closure(_Model):
    """Days the rep is away, in the rep's zone: no slots are seeded in them."""

    id = peewee.AutoField()
    first_day = peewee.DateField()
    last_day = peewee.DateField()
    reason = peewee.CharField(max_length=REASON_MAX_LENGTH, null=True)
    created_at = peewee.DateTimeField()
    calendar_id = peewee.IntegerField(null=True)  # NULL: every calendar (a company holiday)

    class Meta:
        table_name = "closures"


TABLES = [Calendar, TimeSlot, Booking, IdempotencyKey, FeedVersion, Change, OutboxMessage, Closure]


def to_db_time(moment: datetime) -> datetime:
    """An aware datetime as the tables store it: naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)


# The largest id the INTEGER primary key can hold (PostgreSQL's int4).
MAX_SLOT_ID = 2**31 - 1
