"""The bodies of the rep's API: what it accepts and what it answers."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from .. import rep_calendar
from ..schemas import SLOT_EXAMPLE, Reason

def _day(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date as YYYY-MM-DD, such as 2026-11-24")


Day = Annotated[date, BeforeValidator(_day), WithJsonSchema({"type": "string", "format": "date"})]
_MOMENT = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d"
           r"(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$")


def _moment(value: object) -> object:
    if isinstance(value, str):
        if not re.match(_MOMENT, value):
            raise ValueError("must be an ISO 8601 datetime such as 2026-11-24T14:00 (the rep's "
                             "time) or 2026-11-24T14:00:00-05:00")
        return datetime.fromisoformat(value)
    raise ValueError("must be an ISO 8601 datetime as text")


Moment = Annotated[
    datetime, BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "pattern": _MOMENT, "examples": ["2026-11-28T10:00"],
                    "description": "ISO 8601; without an offset, in the rep's time zone."}),
]


class ClosureRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, json_schema_extra={
        "examples": [{"from": "2026-12-24", "to": "2026-12-31", "reason": "Holidays"}]})

    first: Day = Field(alias="from", description="The first closed day (the rep's).")
    last: Day | None = Field(None, alias="to", description="The last one; default: `from`.")
    reason: Reason | None = None

    @model_validator(mode="after")
    def _days(self) -> ClosureRequest:
        rep_calendar.check_days(self.first, self.last)
        return self


class SlotsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={
        "examples": [{"start": "2026-11-28T10:00", "end": "2026-11-28T12:00"}]})

    start: Moment
    end: Moment


class AdminSlotOut(BaseModel):
    id: int
    start_time: datetime
    end_time: datetime


class AdminBookingOut(BaseModel):
    reference: str
    status: str
    slot: AdminSlotOut
    email: str
    name: str | None
    notes: str | None
    source: dict[str, str] | None
    timezone: str | None
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None


class ClosureOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    reason: str | None
    created_at: datetime
    conflicts: list[AdminBookingOut] = Field(
        description="The confirmed bookings in these days that have not started: kept.")


class ClosureCreatedOut(ClosureOut):
    removed: int = Field(description="How many free slots of these days were taken out.")
    message: str


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="ignore",
                              json_schema_extra={"examples": [{"reason": "The rep is ill"}]})

    reason: Reason | None = None


ADMIN_SLOT = {k: SLOT_EXAMPLE[k] for k in ("id", "start_time", "end_time")}
ADMIN_BOOKING = {
    "reference": "7K3QX9M2", "status": "confirmed", "slot": ADMIN_SLOT,
    "email": "lead@example.com", "name": "Jane Lead", "notes": "About the enterprise plan",
    "source": {"utm_source": "newsletter"}, "timezone": "Europe/Paris",
    "created_at": "2026-11-20T10:00:00-05:00", "cancelled_at": None, "cancel_reason": None,
    "cancelled_by": None,
}
CLOSURE = {"id": 1, "from": "2026-11-23", "to": "2026-11-23", "reason": "Conference",
           "created_at": "2026-11-20T10:00:00-05:00", "conflicts": [ADMIN_BOOKING]}
