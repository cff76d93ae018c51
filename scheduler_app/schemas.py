"""The JSON shapes of the API: request validation and response documentation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Annotated

import email_validator
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from .booking import SlotRow
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
