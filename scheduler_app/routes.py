"""HTTP handlers: translate requests into booking calls and results into responses.

They are sync ``def`` handlers, run in the thread pool; each booking call opens
and closes its own database connection on the thread it runs on.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from . import booking, health
from .errors import DatabaseUnavailable
from .schemas import (
    SLOT_EXAMPLE,
    BookingOut,
    BookingRequest,
    ErrorOut,
    Limit,
    Since,
    SlotOut,
    Until,
    encode,
    encode_free_slots,
    slot_dict,
    window,
)

router = APIRouter()

JSON = "application/json"


def _error(description: str, example: str) -> dict:
    return {
        "model": ErrorOut,
        "description": description,
        "content": {JSON: {"example": {"detail": example}}},
    }


@router.get(
    "/availability",
    summary="List the free slots",
    response_class=Response,
    responses={
        200: {
            "model": list[SlotOut],
            "description": "The slots not booked and not yet started, earliest first; "
            "with `from`, `to` and `limit`, those in the window, at most `limit`.",
            "content": {JSON: {"example": [SLOT_EXAMPLE]}},
        },
        503: _error("The database is unavailable.", "The database is unavailable: ..."),
    },
)
def availability(
    request: Request, since: Since = None, until: Until = None, limit: Limit = None
) -> Response:
    state = request.app.state
    start, end = window(since, until, state.settings.tz)
    rows = booking.free_slot_rows(state.clock(), start, end, limit)
    return Response(encode_free_slots(rows, state.settings.tz), media_type=JSON)


@router.post(
    "/book",
    summary="Book a slot",
    response_model=BookingOut,
    responses={
        200: {
            "description": "The slot is booked for this email.",
            "content": {
                JSON: {
                    "example": {
                        "message": "Slot 1 is booked for lead@example.com.",
                        "slot": {**SLOT_EXAMPLE, "is_booked": True, "booked_by_email": "lead@example.com"},
                    }
                }
            },
        },
        404: _error("No slot has this id.", "Slot 42 does not exist."),
        409: _error(
            "The slot is already booked, or has already started.", "Slot 1 is already booked."
        ),
        413: _error("The body is over the size limit.", "Request body too large: ..."),
        422: {"description": "The body is not a valid booking request."},
        503: _error("The database is unavailable.", "The database is unavailable: ..."),
    },
)
def book(body: BookingRequest, request: Request) -> Response:
    state = request.app.state
    request.state.booking = (body.slot_id, body.email)  # for the booking log line
    slot = booking.book_slot(body.slot_id, body.email, state.clock())
    payload = {
        "message": f"Slot {slot.id} is booked for {slot.booked_by_email}.",
        "slot": slot_dict(slot, state.settings.tz),
    }
    return Response(encode(payload), media_type=JSON)


@router.get(
    "/health",
    summary="Liveness: the process answers",
    tags=["health"],
    responses={200: {"content": {JSON: {"example": {"status": "ok"}}}}},
)
def liveness() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: the database answers and the table exists",
    tags=["health"],
    responses={
        200: {
            "content": {
                JSON: {"example": {"status": "ready", "slots": {"total": 16, "booked": 1, "free": 15}}}
            }
        },
        503: _error("Not ready; the detail says why.", "The time_slots table does not exist."),
    },
)
def readiness(request: Request) -> JSONResponse:
    try:
        counts = health.slot_counts(request.app.state.clock())
    except DatabaseUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "slots": counts})
