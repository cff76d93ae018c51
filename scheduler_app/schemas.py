"""The JSON shapes of the API: request validation and response documentation."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)

from .availability import SlotRow, free_slot
from .models import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    NOTES_MAX_LENGTH,
    REASON_MAX_LENGTH,
)


def _valid_email(value: str) -> str:
    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return checked.normalized


Email = Annotated[
    str,
    StringConstraints(strict=True, min_length=3, max_length=EMAIL_MAX_LENGTH),
    AfterValidator(_valid_email),
]


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone such as Europe/Paris") from None
    return value


TimeZoneName = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=64), AfterValidator(_iana_zone)
]
Token = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Utm = Annotated[str, StringConstraints(strict=True, max_length=200)]


class Source(BaseModel):
    """Where the lead came from: the landing page's UTM parameters and referrer."""

    model_config = ConfigDict(extra="forbid")

    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    utm_term: Utm | None = None
    utm_content: Utm | None = None
    referrer: Annotated[str, StringConstraints(strict=True, max_length=2000,
                                               pattern=r"^https?://")] | None = None


class BookingRequest(BaseModel):
    """What a lead sends to book a slot. Unknown fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"slot_id": 1, "email": "lead@example.com"}]},
    )

    slot_id: StrictInt = Field(description="The id of a slot from GET /availability.")
    email: Email = Field(
        description="The lead's email address (at most 254 characters).",
        json_schema_extra={"format": "email"},
    )
    name: Annotated[str, StringConstraints(strict=True, max_length=NAME_MAX_LENGTH)] | None = None
    notes: Annotated[str, StringConstraints(strict=True, max_length=NOTES_MAX_LENGTH)] | None = None
    timezone: TimeZoneName | None = Field(
        None, description="The lead's IANA time zone, for their confirmation.")
    hold_token: Token | None = Field(
        None, description="The token of the hold on this slot (POST /holds), if any.")
    source: Source | None = None
    # Bot traps and challenges (scheduler_app/protect); never part of an Idempotency-Key's request.
    website: str | None = Field(None, exclude=True, max_length=2048,
                                description="Leave it out or empty.")
    form_token: str | None = Field(None, exclude=True, max_length=200,
                                   description="The `form_token` of GET /form, if shown.")
    altcha: str | None = Field(None, exclude=True, max_length=8192,
                               description="The solved ALTCHA challenge (when ALTCHA is on).")
    turnstile_token: str | None = Field(None, exclude=True, max_length=2048,
                                        description="The Turnstile token (when Turnstile is on).")


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"slot_id": 1}]})

    slot_id: StrictInt = Field(description="The id of a slot from GET /availability.")


Reason = Annotated[str, StringConstraints(strict=True, max_length=REASON_MAX_LENGTH)]


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="ignore",
                              json_schema_extra={"examples": [{"reason": "Found another time"}]})

    reason: Reason | None = None


class RescheduleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"slot_id": 2}]})

    slot_id: StrictInt = Field(description="The id of a free slot to move to.")
    hold_token: Token | None = None


# How many slots' JSON encode_free_slots keeps (about 500 bytes each with its
# key, so at most ~8 MB): more than a year of business days of 30-minute slots,
# and the benchmark's 10,000.
FREE_SLOT_CACHE = 16_384

SLOT_EXAMPLE = {
    "id": 1,
    "start_time": "2026-11-23T09:00:00-05:00",
    "end_time": "2026-11-23T09:30:00-05:00",
    "is_booked": False,
    "booked_by_email": None,
}


class SlotOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SLOT_EXAMPLE]})

    id: int
    start_time: datetime = Field(description="ISO 8601 in the rep's time zone, with offset.")
    end_time: datetime
    is_booked: bool
    booked_by_email: str | None


class NewBookingOut(BaseModel):
    reference: str
    status: str
    token: str = Field(description="The manage token: send it as `Authorization: Bearer`.")
    manage_url: str


class BookingOut(BaseModel):
    message: str
    slot: SlotOut
    booking: NewBookingOut


class BookingDetailsOut(BaseModel):
    reference: str
    status: str
    slot: SlotOut
    email: str
    name: str | None
    notes: str | None
    created_at: datetime
    cancelled_at: datetime | None


class HoldOut(BaseModel):
    hold_id: int
    hold_token: str
    slot: SlotOut
    expires_at: datetime


class ErrorOut(BaseModel):
    detail: str


def _local_iso(moment: datetime, tz: tzinfo) -> str:
    return moment.replace(tzinfo=UTC).astimezone(tz).isoformat()


def slot_dict(slot: SlotRow, tz: tzinfo) -> dict:
    """A slot as the API shows it: timestamps in ``tz`` with their offset."""
    return {
        "id": slot.id,
        "start_time": _local_iso(slot.start_time, tz),
        "end_time": _local_iso(slot.end_time, tz),
        "is_booked": slot.is_booked,
        "booked_by_email": slot.booked_by_email,
    }


def moment_iso(moment: datetime | None, tz: tzinfo) -> str | None:
    """A naive UTC timestamp as the API shows it, or None."""
    return None if moment is None else _local_iso(moment, tz)


def booking_dict(view, tz: tzinfo) -> dict:
    """A booking (``booking.BookingView``) as GET /bookings/{reference} shows it."""
    b = view.booking
    return {
        "reference": b.reference,
        "status": b.status,
        "slot": slot_dict(view.slot, tz),
        "email": b.email,
        "name": b.name,
        "notes": b.notes,
        "created_at": moment_iso(b.created_at, tz),
        "cancelled_at": moment_iso(b.cancelled_at, tz),
    }


def encode(payload: object) -> bytes:
    """JSON bytes, compact, as FastAPI's JSONResponse writes them."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def encode_free_slots(rows: list[tuple], tz: tzinfo) -> bytes:
    """GET /availability's body for ``booking.free_slot_rows``: the bytes of
    ``encode([slot_dict(slot, tz), ...])``, with each slot's JSON memoised.

    A row's JSON depends only on the row and ``tz``, and the same slots are
    listed request after request, so a listing costs about a lookup per slot
    instead of two time-zone conversions and an encoding.
    """
    return b"[" + b",".join([_free_slot_json(row, tz) for row in rows]) + b"]"


@functools.lru_cache(maxsize=FREE_SLOT_CACHE)
def _free_slot_json(row: tuple, tz: tzinfo) -> bytes:
    return encode(slot_dict(free_slot(row), tz))
