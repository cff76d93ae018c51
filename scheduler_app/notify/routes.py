"""The calendar endpoints: the rep's subscribed feed and the lead's download.

``GET /calendar/{secret}.ics`` is a capability URL (calendar clients cannot
send a header): the secret is SCHEDULER_CALENDAR_SECRET, compared in constant
time, and an unset or wrong one gets the same 404 as an unknown path. It lists
every confirmed booking whose meeting starts from 30 days ago on, and those
cancelled in the last 30 days as ``STATUS:CANCELLED``, with the invitations'
UIDs and sequences, and answers 304 to its own ``ETag``.

``GET /bookings/{reference}/invite.ics`` gives the lead's "Add to calendar"
file, with the booking's manage token as ``Authorization: Bearer``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response

from .. import booking
from ..db import reading, session
from ..models import Booking, TimeSlot, to_db_time
from ..routes import NO_STORE, UNAUTHORIZED, UNAVAILABLE, UNKNOWN_BOOKING, Bearer
from .outbox import snapshot

router = APIRouter(tags=["calendar"])

# What the feed lists: meetings from this long ago on, and cancels this recent.
FEED_PAST = timedelta(days=30)

CALENDAR = "text/calendar; charset=utf-8"
ICS_EXAMPLE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//scheduler-app//Meeting scheduler//EN\r\n"
    "...\r\nBEGIN:VEVENT\r\nUID:7K3QX9M2@scheduler-app\r\nSEQUENCE:0\r\n"
    "DTSTART:20261123T140000Z\r\nDTEND:20261123T143000Z\r\n...\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)
_ICS = {"text/calendar": {"schema": {"type": "string"}, "example": ICS_EXAMPLE}}
_NOT_FOUND = {"description": "No calendar here: the secret is wrong, or no feed is configured "
              "(the same answer as any unknown path).",
              "content": {"application/json": {"example": {"detail": "Not Found"}}}}


def feed_bookings(settings, now) -> list[dict]:
    """The feed's events: confirmed from 30 days ago on, and recent cancels."""
    since = to_db_time(now - FEED_PAST)
    query = (
        Booking.select(Booking, TimeSlot)
        .join(TimeSlot)
        .where((TimeSlot.start_time >= since)
               & ((Booking.status == "confirmed")
                  | ((Booking.status == "cancelled") & (Booking.cancelled_at >= since))))
        .order_by(TimeSlot.start_time, Booking.id)
    )
    with reading(), session():
        rows = [(b, (b.slot.id, b.slot.start_time, b.slot.end_time)) for b in query]
    return [snapshot(b, slot, settings, "feed", b.updated_at) for b, slot in rows]


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/calendar/{secret}.ics",
    summary="The rep's calendar feed, for a calendar subscription",
    response_class=Response,
    responses={
        200: {"description": "The bookings as iCalendar: confirmed ones from 30 days ago on, "
              "and those cancelled in the last 30 days (`STATUS:CANCELLED`).", "content": _ICS},
        304: {"description": "Unchanged since the `ETag` given in `If-None-Match`."},
        404: _NOT_FOUND,
        503: UNAVAILABLE,
    },
)
def calendar_feed(secret: str, request: Request,
                  if_none_match: Annotated[str | None, Header()] = None) -> Response:
    state = request.app.state
    configured = state.settings.calendar_secret
    # Compare even when nothing is configured, in the same time.
    given, expected = secret.encode(), (configured or "\0").encode()
    if not hmac.compare_digest(given, expected) or configured is None:
        raise HTTPException(status_code=404, detail="Not Found")
    from . import invitations  # icalendar: only where a calendar is rendered

    body = invitations.feed(feed_bookings(state.settings, state.clock()),
                            state.settings.meeting_title)
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache",
               "Referrer-Policy": "no-referrer"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CALENDAR, headers=headers)


@router.get(
    "/bookings/{reference}/invite.ics",
    summary="The booking as a calendar file (Add to calendar)",
    response_class=Response,
    tags=["bookings"],
    responses={
        200: {"description": "The booking as iCalendar (`METHOD:PUBLISH`, the same UID and "
              "SEQUENCE as the emailed invitations), to import into a calendar.",
              "content": _ICS},
        401: UNAUTHORIZED,
        404: UNKNOWN_BOOKING,
        503: UNAVAILABLE,
    },
)
def booking_invite(reference: str, token: Bearer, request: Request) -> Response:
    settings = request.app.state.settings
    view = booking.get(reference, token)
    slot = (view.slot.id, view.slot.start_time, view.slot.end_time)
    snap = snapshot(view.booking, slot, settings, "download", view.booking.updated_at)
    filename = f"{view.booking.reference}.ics"
    from . import invitations

    return Response(invitations.download(snap), media_type=f"{CALENDAR}; method=PUBLISH",
                    headers={**NO_STORE,
                             "Content-Disposition": f'attachment; filename="{filename}"'})
