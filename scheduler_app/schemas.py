"""The JSON shapes of the API: request validation and response documentation."""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated

import email_validator
from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)

from .booking import SlotRow, free_slot
from .models import EMAIL_MAX_LENGTH


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


# How many slots' JSON encode_free_slots keeps (about 500 bytes each with its
# key, so at most ~8 MB): more than a year of business days of 30-minute slots,
# and the benchmark's 10,000.
FREE_SLOT_CACHE = 16_384

# GET /availability?from=&to=&limit=: documented in the README.
MAX_RANGE_DAYS = 366
MAX_LIMIT = 1000
# The error type of the window checks that OpenAPI cannot express (to after
# from, the maximum range, moments past year 1-9999 in UTC), so that a
# schema-valid query may still get it.
WINDOW_ERROR = "window_error"


def _iso_moment(value: object) -> object:
    """Accept only ISO 8601 text for a date or a datetime (no Unix timestamps)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 date (2026-11-23) or datetime (2026-11-23T09:00:00-05:00)"
        ) from None


IsoMoment = Annotated[datetime | date, BeforeValidator(_iso_moment)]


# GET /availability's query parameters: plain parameters rather than one model,
# which FastAPI takes ~0.1 ms longer to parse on every request.
Since = Annotated[
    IsoMoment | None,
    Query(
        alias="from",
        description="Only slots starting at or after this date or datetime. A date means "
        "midnight in the rep's time zone; a datetime without an offset is in the rep's time zone.",
        examples=["2026-11-23"],
    ),
]
Until = Annotated[
    IsoMoment | None,
    Query(
        alias="to",
        description="Only slots starting before this datetime; a date includes that whole day. "
        f"At most {MAX_RANGE_DAYS} days after `from`.",
        examples=["2026-11-27"],
    ),
]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description=f"At most this many slots (1 to {MAX_LIMIT})."),
]


def window(
    since: date | None, until: date | None, tz: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` of ``from`` and ``to`` as aware datetimes, in ``tz`` where they
    say no offset.

    Raises ``RequestValidationError`` (422) when ``to`` is not after ``from``,
    the range is over ``MAX_RANGE_DAYS``, or a moment is out of range.
    """
    start = _moment("from", since, tz, end_of_day=False)
    end = _moment("to", until, tz, end_of_day=True)
    if start is not None and end is not None:
        if end <= start:
            raise _invalid("to", until, "must be later than from")
        if end - start > timedelta(days=MAX_RANGE_DAYS):
            raise _invalid("to", until, f"must be at most {MAX_RANGE_DAYS} days after from")
    return start, end


def _moment(name: str, value: date | None, tz: tzinfo, end_of_day: bool) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=tz)
        else:
            day = value + timedelta(days=1) if end_of_day else value
            moment = datetime.combine(day, time(), tz)
        return moment.astimezone(UTC)
    except OverflowError:
        raise _invalid(name, value, "is out of range") from None


def _invalid(name: str, value: date, message: str) -> RequestValidationError:
    """A 422 with FastAPI's standard body, for checks that need more than one field."""
    return RequestValidationError(
        [{"type": WINDOW_ERROR, "loc": ("query", name), "msg": message, "input": value.isoformat()}]
    )


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


class BookingOut(BaseModel):
    message: str
    slot: SlotOut


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
