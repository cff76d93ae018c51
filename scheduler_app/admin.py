"""The rep's side over HTTP: the ``/admin`` API and page, behind SCHEDULER_ADMIN_TOKEN.

Access is decided by ``AdminGate``, before anything else reads the request
(its body included), for every path under ``/admin``:

- no SCHEDULER_ADMIN_TOKEN: 404, as for any unknown path (and the routes are
  left out of ``/openapi.json``, so nothing shows there is an admin);
- else the page (``/admin`` and its two files) is served to anyone, since it
  holds no data, and every API call needs ``Authorization: Bearer <token>``
  (compared as SHA-256 digests in constant time); without it, or with another
  token, 401 with ``WWW-Authenticate: Bearer`` and nothing more.

Every ``/admin`` answer has ``Cache-Control: no-store``, and none is open to
other origins: ``cors.Cors`` passes ``/admin`` by and refuses its preflights.
The handlers are thin: the rules are ``rep_calendar``'s and ``booking``'s,
run by ``booking.transaction``; each change is logged with its request id.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from starlette.types import Scope

from . import booking, rep_calendar
from .errors import Unauthorized
from .middleware import ADMIN_PREFIX as PREFIX
from .schemas import (
    SLOT_EXAMPLE,
    ErrorOut,
    Reason,
    Since,
    SlotOut,
    Until,
    encode,
    slot_dict,
    window,
)
from .web import DEMO_CSP, REP_ZONE, static_file

log = logging.getLogger("scheduler_app.admin")

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
NOTICE_HEADER = "Scheduler-Notice"  # what a 204 has to say (DELETE /admin/closures/{id})

# The page and its files: served without the token (they hold no data).
PAGE_FILES = {
    PREFIX: ("admin.html", "text/html; charset=utf-8"),
    f"{PREFIX}/admin.js": ("admin.js", "text/javascript; charset=utf-8"),
    f"{PREFIX}/admin.css": ("admin.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": DEMO_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
UNAUTHORIZED_MESSAGE = "This needs the admin token as Authorization: Bearer."


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as Bearer (constant time)."""
    scheme, _, given = (header or "").partition(" ")
    matched = hmac.compare_digest(_digest(given.strip()), _digest(token))
    return matched and scheme.lower() == "bearer"


def _json(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class AdminGate:
    """The gate ``middleware.Front`` asks first about every ``/admin`` request:
    404 without a token configured, 401 for an API call without the right Bearer
    token, else None (let in; Front marks the answer ``Cache-Control: no-store``)."""

    def __init__(self, token: str | None):
        self.token = token

    def __call__(self, scope: Scope) -> Response | None:
        if self.token is None:
            return _json(404, "Not Found")
        if scope["path"] not in PAGE_FILES:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not authorized(header, self.token):
                log.warning("admin: refused %s %s without the admin token",
                            scope["method"], scope["path"])
                return _json(401, UNAUTHORIZED_MESSAGE,
                             {**Unauthorized.headers, "Cache-Control": "no-store"})
        return None


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(
        auto_error=False, scheme_name="AdminToken",
        description="SCHEDULER_ADMIN_TOKEN, as `Authorization: Bearer <token>`."))],
) -> None:
    """The gate's check again, for the routes (and their documentation)."""
    token = request.app.state.settings.admin_token
    given = f"Bearer {credentials.credentials}" if credentials else None
    if token is None or not authorized(given, token):
        raise Unauthorized(UNAUTHORIZED_MESSAGE)


router = APIRouter(prefix=PREFIX, tags=["admin"], dependencies=[Depends(require_admin)])
pages = APIRouter(include_in_schema=False)


# -- request and response shapes ---------------------------------------------------

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


def _error(description: str, example: str) -> dict:
    return {"model": ErrorOut, "description": description,
            "content": {JSON: {"example": {"detail": example}}}}


UNAUTHORIZED = _error("No `Authorization: Bearer` with the admin token, or another token.",
                      UNAUTHORIZED_MESSAGE)
UNAVAILABLE = _error("The database is unavailable.", "The database is unavailable: ...")
INVALID = {"description": "Bad input (FastAPI's standard body)."}


def _invalid(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", field),
                                    "msg": f"Value error, {message}", "input": str(value)}])


def _now(request: Request) -> datetime:
    return request.app.state.clock()


def _change(request: Request, change):
    state = request.app.state
    return booking.transaction(state.settings, state.clock(), change)


# -- bookings ------------------------------------------------------------------------


@router.get(
    "/bookings",
    summary="The rep's bookings, as JSON or CSV",
    response_class=Response,
    responses={
        200: {
            "description": "The bookings whose meeting starts in the window, in start order; "
            "without `from`, those that have not started. CSV with `Accept: text/csv` or "
            "`format=csv`.",
            "content": {
                JSON: {"schema": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/AdminBookingOut"}},
                       "example": [ADMIN_BOOKING]},
                "text/csv": {"schema": {"type": "string"},
                             "example": ",".join(rep_calendar.CSV_COLUMNS) + "\r\n..."},
            },
        },
        401: UNAUTHORIZED,
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def list_bookings(
    request: Request, since: Since = None, until: Until = None,
    status: Annotated[Literal["confirmed", "cancelled", "all"],
                      Query(description="confirmed (default), cancelled, or all.")] = "confirmed",
    format: Annotated[Literal["json", "csv"] | None,  # the query's name
                      Query(description="csv or json; default: from `Accept`.")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    settings = request.app.state.settings
    start, end = window(since, until, settings.tz)
    views = rep_calendar.bookings(settings, _now(request), start, end, status)
    if format == "csv" or (format is None and "text/csv" in (accept or "")):
        day = _now(request).astimezone(settings.tz).date().isoformat()
        return Response(rep_calendar.to_csv(views, settings), media_type=CSV, headers={
            "Content-Disposition": f'attachment; filename="bookings-{day}.csv"'})
    return Response(encode([rep_calendar.booking_row(v, settings) for v in views]),
                    media_type=JSON)


@router.post(
    "/bookings/{reference}/cancel",
    summary="Cancel a booking on the lead's behalf",
    response_model=AdminBookingOut,
    responses={
        200: {"description": "Cancelled (again: the same state), recorded as by the rep; the "
              "slot is free again, and the lead is told when notifications are configured.",
              "content": {JSON: {"example": {**ADMIN_BOOKING, "status": "cancelled",
                                             "cancelled_by": "rep"}}}},
        401: UNAUTHORIZED,
        404: _error("No booking has this reference.", "No booking has the reference 7K3QX9M2."),
        409: _error("The meeting has already started.",
                    "This meeting has already started and can no longer be cancelled."),
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def cancel_booking(reference: str, request: Request, body: CancelBody | None = None) -> Response:
    settings = request.app.state.settings
    reason = body.reason if body else None
    view = _change(request, lambda tx: rep_calendar.cancel(tx, reference, reason))
    log.info("admin: cancelled booking %s (slot %d)", view.booking.reference, view.slot.id)
    return Response(encode(rep_calendar.booking_row(view, settings)), media_type=JSON)


# -- closures ------------------------------------------------------------------------


@router.get(
    "/closures",
    summary="The closed days",
    response_model=list[ClosureOut],
    responses={200: {"content": {JSON: {"example": [CLOSURE]}}}, 401: UNAUTHORIZED,
               503: UNAVAILABLE},
)
def list_closures(request: Request) -> Response:
    settings = request.app.state.settings
    rows = [rep_calendar.closure_row(c, settings)
            for c in rep_calendar.closures(settings, _now(request))]
    return Response(encode(rows), media_type=JSON)


@router.post(
    "/closures",
    summary="Close days",
    status_code=201,
    response_model=ClosureCreatedOut,
    responses={
        201: {"description": "Closed: the days' free slots are taken out; their booked ones "
              "are kept and listed in `conflicts`, for the rep to decide.",
              "content": {JSON: {"example": {
                  **CLOSURE, "removed": 15,
                  "message": "Closed 2026-11-23; 15 free slot(s) taken out. 1 booked "
                  "meeting(s) in these days are kept: cancel them if they cannot take place."}}}},
        401: UNAUTHORIZED,
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def close_days(body: ClosureRequest, request: Request) -> Response:
    settings = request.app.state.settings
    view = _change(request, lambda tx: rep_calendar.close(tx, body.first, body.last, body.reason))
    row = rep_calendar.closure_row(view, settings)
    log.info("admin: closed %s to %s (closure %d): %d free slot(s) taken out, "
             "%d booked meeting(s) kept", row["from"], row["to"], row["id"], len(view.removed),
             len(view.conflicts))
    return Response(encode({**row, "removed": len(view.removed), "message": view.message}),
                    status_code=201, media_type=JSON)


@router.delete(
    "/closures/{closure_id}",
    summary="Reopen closed days",
    status_code=204,
    responses={
        204: {"description": "Reopened. The days' slots kept for a booking's record are free "
              "again; the others are seeded again by the next `scheduler-app seed` if the days "
              "are within its horizon, as the `Scheduler-Notice` header says.",
              "headers": {NOTICE_HEADER: {"schema": {"type": "string"}, "description":
                                          "What reopening does for the days' slots."}}},
        401: UNAUTHORIZED,
        404: _error("No closure has this id.", "Closure 7 does not exist."),
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def reopen_days(closure_id: int, request: Request) -> Response:
    done = _change(request, lambda tx: rep_calendar.reopen(tx, closure_id))
    log.info("admin: reopened closure %d (%s to %s): %d kept slot(s) free again", closure_id,
             done.closure.first_day, done.closure.last_day, len(done.freed))
    return Response(status_code=204, headers={NOTICE_HEADER: done.notice})


# -- extra times ---------------------------------------------------------------------


@router.post(
    "/slots",
    summary="Open extra times",
    status_code=201,
    response_model=list[SlotOut],
    responses={
        201: {"description": "The slots made of the span, cut into SCHEDULER_SLOT_MINUTES.",
              "content": {JSON: {"example": [SLOT_EXAMPLE]}}},
        401: UNAUTHORIZED,
        409: _error("A slot would be in the past, on a closed day, or over another slot "
                    "(each is named); nothing was added.",
                    "Nothing was added (America/New_York times): the slot at 2026-11-23 09:00 "
                    "overlaps slot 1 (2026-11-23 09:00-09:30)."),
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def add_slots(body: SlotsRequest, request: Request) -> Response:
    settings = request.app.state.settings
    try:
        rep_calendar.spans(body.start, body.end, settings)
    except ValueError as exc:
        raise _invalid("end", str(exc), body.end.isoformat()) from None
    added = _change(request, lambda tx: rep_calendar.add_times(tx, body.start, body.end))
    log.info("admin: added %d slot(s), %s to %s", len(added), added[0].start_time.isoformat(),
             added[-1].end_time.isoformat())
    return Response(encode([slot_dict(s, settings.tz) for s in added]), status_code=201,
                    media_type=JSON)


@router.delete(
    "/slots/{slot_id}",
    summary="Remove a free slot",
    status_code=204,
    responses={
        204: {"description": "Removed; it is no longer listed."},
        401: UNAUTHORIZED,
        404: _error("No slot has this id.", "Slot 42 does not exist."),
        409: _error("The slot is booked or held by a visitor.",
                    "Slot 3 is booked (booking 7K3QX9M2); cancel the booking first."),
        422: INVALID,
        503: UNAVAILABLE,
    },
)
def remove_slot(slot_id: int, request: Request) -> Response:
    _change(request, lambda tx: rep_calendar.remove_slot(tx, slot_id))
    log.info("admin: removed slot %d", slot_id)
    return Response(status_code=204)


# -- the page ------------------------------------------------------------------------


def _page_route(path: str, name: str, media_type: str) -> None:
    def serve(request: Request) -> Response:
        body = static_file(name)
        if name == "admin.html":
            zone = html.escape(request.app.state.settings.timezone, quote=True)
            body = body.replace(REP_ZONE, f'data-rep-timezone="{zone}"'.encode())
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)

    pages.add_api_route(path, serve, methods=["GET"], name=name)


for _path, (_name, _media_type) in PAGE_FILES.items():
    _page_route(_path, _name, _media_type)
