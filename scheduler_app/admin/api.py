"""The rep's API under ``/admin``: thin handlers; the rules are ``rep_calendar``'s
and ``booking``'s, run by ``booking.transaction``; each change is logged with
its request id."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from .. import booking, rep_calendar
from ..query_window import Since, Until, window
from ..schemas import SLOT_EXAMPLE, ErrorOut, SlotOut, encode, slot_dict
from .gate import PREFIX, UNAUTHORIZED_MESSAGE, require_admin
from .shapes import (
    ADMIN_BOOKING,
    CLOSURE,
    AdminBookingOut,
    CancelBody,
    ClosureCreatedOut,
    ClosureOut,
    ClosureRequest,
    SlotsRequest,
)

log = logging.getLogger("scheduler_app.admin")

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
NOTICE_HEADER = "Scheduler-Notice"  # what a 204 has to say (DELETE /admin/closures/{id})

router = APIRouter(prefix=PREFIX, tags=["admin"], dependencies=[Depends(require_admin)])


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
