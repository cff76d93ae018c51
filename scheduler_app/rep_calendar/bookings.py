"""The rep's bookings: the list (JSON rows and CSV) and the rep's cancel."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import peewee

from .. import booking
from ..availability import SlotRow
from ..booking import BookingView, Tx
from ..db import reading, session
from ..errors import BookingNotFound, ReferenceNotFound
from ..models import Booking, TimeSlot, to_db_time
from ..settings import Settings
from ._common import iso, slot_row

STATUSES = ("confirmed", "cancelled", "all")


def bookings(settings: Settings, now: datetime, start: datetime | None = None,
             end: datetime | None = None, status: str = "confirmed") -> list[BookingView]:
    """The bookings whose meeting starts in ``[start, end)`` (aware; ``start`` None:
    those that have not started), with ``status`` (confirmed, cancelled or all),
    in start order."""
    condition = (TimeSlot.start_time >= to_db_time(start)) if start is not None \
        else (TimeSlot.start_time > to_db_time(now))
    if end is not None:
        condition &= TimeSlot.start_time < to_db_time(end)
    if status != "all":
        condition &= Booking.status == status
    with reading(), session():
        return views(Booking.select(Booking, TimeSlot).join(TimeSlot).where(condition))


def views(query: peewee.Select) -> list[BookingView]:
    """The bookings of ``query`` with their slots, in start order."""
    rows = query.order_by(TimeSlot.start_time, Booking.id)
    return [BookingView(b, slot_row(b.slot)) for b in rows]


def cancel(tx: Tx, reference: str, reason: str | None = None) -> BookingView:
    """Cancel a booking on the lead's behalf (no token; recorded as by the rep)."""
    try:
        return booking.cancel(tx, reference, None, reason, by="rep")
    except BookingNotFound:
        raise ReferenceNotFound(reference.upper()) from None


def slot_info(slot: SlotRow, settings: Settings) -> dict:
    """A slot's id and times (in the rep's zone, with offset)."""
    return {"id": slot.id, "start_time": iso(slot.start_time, settings),
            "end_time": iso(slot.end_time, settings)}


def booking_row(view: BookingView, settings: Settings) -> dict:
    """A booking as the rep's list shows it (the API's JSON, the CSV's columns)."""
    b = view.booking
    return {
        "reference": b.reference,
        "status": b.status,
        "slot": slot_info(view.slot, settings),
        "email": b.email,
        "name": b.name,
        "notes": b.notes,
        "source": json.loads(b.source) if b.source else None,
        "timezone": b.timezone,
        "created_at": iso(b.created_at, settings),
        "cancelled_at": iso(b.cancelled_at, settings),
        "cancel_reason": b.cancel_reason,
        "cancelled_by": b.cancelled_by,
    }


SOURCE_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                 "referrer")
CSV_COLUMNS = ("reference", "status", "start_time", "end_time", "email", "name", "notes",
               "timezone", *SOURCE_FIELDS, "created_at", "cancelled_at", "cancel_reason",
               "cancelled_by", "slot_id")
# What a spreadsheet takes for a formula (OWASP's list: =, +, -, @, tab, CR).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell: text starting like a formula gets a ' in front, so a
    spreadsheet shows it instead of running it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(views: list[BookingView], settings: Settings) -> str:
    """The bookings as CSV with a header row (the ``csv`` module quotes commas,
    quotes and line breaks; rows end with CRLF, as RFC 4180 has them)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for view in views:
        row = booking_row(view, settings)
        source = row["source"] or {}
        cells = {**row, **{f: source.get(f) for f in SOURCE_FIELDS},
                 "start_time": row["slot"]["start_time"], "end_time": row["slot"]["end_time"],
                 "slot_id": row["slot"]["id"]}
        writer.writerow([_cell(cells[column]) for column in CSV_COLUMNS])
    return out.getvalue()
