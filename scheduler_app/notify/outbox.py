"""The outbox: the messages a booking change owes, written in its transaction.

``enqueue`` runs inside ``booking.transaction``, after the change: for each
booking event it writes one ``outbox`` row per configured destination (the
lead's email, the rep's email, the webhook). A change that rolls back leaves
no row; a change that commits has its rows, which the relay delivers.

Each row's ``payload`` is a snapshot of everything needed to send the message
(the booking as the change left it, its slot, the title, the organiser, the
manage link), so what is sent does not depend on later changes. It holds no
secret: the manage token is stored only as a hash, so no message carries it
(see the README, "Notifications").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import NamedTuple

from peewee import fn

from ..db import database, sql
from ..models import Booking, OutboxMessage, TimeSlot, to_db_time
from ..settings import Settings

# What ``status`` a row has: waiting (or being sent), delivered, given up.
PENDING, SENT, DEAD = "pending", "sent", "dead"

# ``last_error`` of webhook rows once the endpoint answered 410 Gone: the
# newest webhook row saying so keeps the endpoint disabled (see ``webhook_disabled``).
WEBHOOK_GONE = "410 Gone: the webhook endpoint is disabled"


class BookingEvent(NamedTuple):
    """A change to a booking that people must hear of."""

    name: str  # booking.created | booking.rescheduled | booking.cancelled
    booking_id: int


def utc_iso(moment: datetime) -> str:
    """A naive UTC (or aware) datetime as ``2026-11-23T14:00:00Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def parse_utc(text: str) -> datetime:
    """``utc_iso``'s text back as an aware UTC datetime."""
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)


def snapshot(booking: Booking, slot: tuple[int, datetime, datetime], settings: Settings,
             event: str, at: datetime, rep_email: str | None = None) -> dict:
    """What a message about ``booking`` (on ``slot``: id, start, end in naive UTC)
    says, for the ``event`` at ``at``; the calendar feed builds its events from it too.
    ``rep_email``: the booking's calendar's own address, if it has one."""
    slot_id, start, end = slot
    base = settings.public_url
    return {
        "event": event,
        "at": utc_iso(at),
        "reference": booking.reference,
        "status": booking.status,
        "sequence": booking.sequence,
        "email": booking.email,
        "name": booking.name,
        "notes": booking.notes,
        "source": json.loads(booking.source) if booking.source else None,
        "timezone": booking.timezone,
        "cancel_reason": booking.cancel_reason,
        "slot": {"id": slot_id, "start": utc_iso(start), "end": utc_iso(end)},
        "rep_timezone": settings.timezone,
        "title": settings.meeting_title,
        "organizer": rep_email or settings.rep_email or settings.mail_from,
        # The page, not the token: the token is never stored in clear (README).
        "manage_url": f"{base}/manage/{booking.reference}" if base else None,
    }


def destinations(settings: Settings, rep_email: str | None = None) -> list[tuple[str, str]]:
    """(channel, recipient) of each configured destination (a rep's notice: when
    the booking's calendar or SCHEDULER_REP_EMAIL gives an address)."""
    found = []
    if settings.smtp_url:
        found.append(("email", "lead"))
        if rep_email or settings.rep_email:
            found.append(("email", "rep"))
    if settings.webhook_url:
        found.append(("webhook", "webhook"))
    return found


def enqueue(events: list[BookingEvent], settings: Settings, now: datetime) -> int:
    """Write the messages ``events`` owe to the configured destinations; return how many.

    Runs inside the booking transaction, so the rows commit with the change or not at all.
    """
    if not events or not (settings.smtp_url or settings.webhook_url):
        return 0
    db_now = to_db_time(now)
    webhook_off = settings.webhook_url is not None and webhook_disabled(settings.webhook_url)
    rows = []
    for event in events:
        booking = Booking.get_by_id(event.booking_id)
        slot = (
            TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
            .where(TimeSlot.id == booking.slot_id).tuples().get()
        )
        rep_email = calendar_email(booking.calendar_id)
        common = snapshot(booking, slot, settings, event.name, now, rep_email)
        for channel, recipient in destinations(settings, rep_email):
            if recipient == "lead":
                extra = {"to": booking.email}
            elif recipient == "rep":
                extra = {"to": rep_email or settings.rep_email}
            else:
                extra = {"url": settings.webhook_url}
            if recipient == "lead" and not booking.email:
                continue  # a booking inherited from the first release may have none
            off = channel == "webhook" and webhook_off
            rows.append({
                "channel": channel, "event": event.name, "recipient": recipient,
                "booking": booking.id, "payload": json.dumps({**common, **extra}),
                "status": DEAD if off else PENDING, "attempts": 0,
                "next_attempt_at": db_now, "last_error": WEBHOOK_GONE if off else None,
                "created_at": db_now,
            })
    if rows:
        OutboxMessage.insert_many(rows).execute()
    return len(rows)


def calendar_email(calendar_id: int) -> str | None:
    """The calendar's own address for its notices (None: SCHEDULER_REP_EMAIL's)."""
    row = database.execute_sql(sql("SELECT email FROM calendars WHERE id = {p}"),
                               (calendar_id,)).fetchone()
    return row[0] if row else None


def webhook_disabled(url: str) -> bool:
    """Whether ``url`` answered 410 Gone: the newest webhook row is dead saying so,
    for this URL. ``scheduler-app outbox retry`` of that row, or another URL, enables it."""
    newest = (
        OutboxMessage.select(OutboxMessage.status, OutboxMessage.last_error,
                             OutboxMessage.payload)
        .where(OutboxMessage.channel == "webhook")
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return (
        newest is not None and newest.status == DEAD
        and (newest.last_error or "").startswith(WEBHOOK_GONE)
        and json.loads(newest.payload).get("url") == url
    )


class Listed(NamedTuple):
    id: int
    status: str
    channel: str
    recipient: str
    event: str
    reference: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def unsent(limit: int = 1000) -> list[Listed]:
    """The pending and dead messages, oldest first (for ``scheduler-app outbox``)."""
    query = (
        OutboxMessage.select()
        .where(OutboxMessage.status.in_([PENDING, DEAD]))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return [
        Listed(m.id, m.status, m.channel, m.recipient, m.event,
               json.loads(m.payload).get("reference", ""), m.attempts, m.next_attempt_at,
               m.last_error)
        for m in query
    ]


def counts() -> dict[str, int]:
    """How many messages have each status."""
    rows = (OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id))
            .group_by(OutboxMessage.status).tuples())
    return {PENDING: 0, SENT: 0, DEAD: 0, **dict(rows)}


def requeue(ids: list[int] | None, now: datetime) -> list[int]:
    """Make the dead (or pending) messages ``ids`` (None: every dead one) due now,
    with a fresh retry schedule; return the ids requeued. A sent message stays sent."""
    query = OutboxMessage.select(OutboxMessage.id).where(
        OutboxMessage.status.in_([PENDING, DEAD]) if ids is not None
        else OutboxMessage.status == DEAD)
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    found = [row.id for row in query]
    if found:
        (OutboxMessage.update(status=PENDING, attempts=0, next_attempt_at=to_db_time(now),
                              lease_until=None)
         .where(OutboxMessage.id.in_(found)).execute())
    return found
