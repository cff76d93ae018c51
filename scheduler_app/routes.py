"""HTTP handlers: translate requests into booking calls and results into responses.

Reads are sync ``def`` handlers, run in the thread pool, each opening and
closing its own database connection on its thread (GET /availability excepted:
see ``live/cache.py``). The changes are ``async def``: they hand the change to
``booking.transaction_async``, which never blocks the loop (SQLite's writer
thread, or the thread pool on PostgreSQL). With an ``Idempotency-Key`` the
stored answer of a first request is replayed.
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import booking, idempotency
from .booking import Answer, Details, IdempotencyKey
from .errors import Unauthorized
from .route_docs import (
    BOOKING_EXAMPLE,
    IDEMPOTENCY_REUSED,
    JSON,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNKNOWN_BOOKING,
    error_doc,
)
from .query_window import CalendarSlug, Limit, Since, Until, window
from .schemas import (
    SLOT_EXAMPLE,
    BookingDetailsOut,
    BookingOut,
    BookingRequest,
    CancelRequest,
    HoldOut,
    HoldRequest,
    RescheduleRequest,
    SlotOut,
    booking_dict,
    encode,
    moment_iso,
    slot_dict,
)

router = APIRouter()

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
            "headers": {"ETag": {"description": "The feed version and a digest of the body; "
                                                "send it back in `If-None-Match`.",
                                 "schema": {"type": "string"}}},
        },
        304: {"description": "Unchanged since the `If-None-Match` ETag (no body)."},
        404: error_doc("No calendar has the `calendar` slug.", "No calendar is named 'anna'."),
        503: error_doc("The database is unavailable.", "The database is unavailable: ..."),
    },
)
async def list_availability(
    request: Request, since: Since = None, until: Until = None, limit: Limit = None,
    calendar: CalendarSlug = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match",
                                                include_in_schema=False)] = None,
) -> Response:
    """The one async handler here: ``live.cache`` checks the feed version, serves a
    kept body or reads a new one, and never waits for PostgreSQL on the loop."""
    state = request.app.state
    start, end = window(since, until, state.settings.tz)
    key = (start, end, limit) if calendar is None else (start, end, limit, calendar)
    return await state.live.cache.respond(key, state.clock(), if_none_match)


NO_STORE = {"Cache-Control": "no-store"}

IdempotencyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", pattern=r'^"?[\x21-\x7e][\x20-\x7e]{0,254}"?$',
           description="1-255 printable ASCII characters, quoted or not; a retry with the "
           "same key and body within 24 h gets the first answer again."),
]
_bearer = HTTPBearer(auto_error=False, description="The manage token, or the hold token.")


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The request's ``Authorization: Bearer`` token; 401 without one."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized()
    return credentials.credentials


Bearer = Annotated[str, Depends(bearer_token)]


def _public_base(request: Request) -> str:
    """SCHEDULER_PUBLIC_URL, else the request's own base URL (Starlette's
    ``request.base_url``, worked out once per scheme, host and root path)."""
    configured = request.app.state.settings.public_url
    if configured:
        return configured
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    return _base_url(scope.get("scheme", "http"), host, tuple(server) if server else None,
                     scope.get("app_root_path", scope.get("root_path", "")))


@functools.lru_cache(maxsize=64)
def _base_url(scheme: str, host: bytes | None, server: tuple | None, root_path: str) -> str:
    scope = {"type": "http", "scheme": scheme, "server": server, "path": "/",
             "root_path": root_path, "query_string": b"",
             "headers": [] if host is None else [(b"host", host)]}
    return str(Request(scope).base_url).rstrip("/")


def _answer(answer: Answer) -> Response:
    headers = dict(NO_STORE)
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(answer.body, status_code=answer.status, media_type=JSON, headers=headers)


async def _change(request: Request, change, render, header: str | None, body,
                  token: str | None = None) -> Response:
    """Run ``change`` through the booking transaction, idempotently with a key.

    A request's bearer ``token`` is part of what its key stands for: a retry
    with another token is another request, never the stored answer.
    """
    state = request.app.state
    key = None
    if header is not None:
        try:
            value = idempotency.parse(header)
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("header", "Idempotency-Key"),
                                           "msg": str(exc), "input": header}]) from None
        scope = f"{request.method} {request.url.path}"
        request_data = body.model_dump(mode="json")
        if token is not None:
            request_data["Authorization"] = booking.token_hash(token)
        key = IdempotencyKey(scope, value, request_data, render)
    result = await booking.transaction_async(state.settings, state.clock(), change, key)
    return _answer(result if key is not None else render(result))


@router.post(
    "/book",
    summary="Book a slot",
    response_model=BookingOut,
    responses={
        200: {
            "description": "The slot is booked for this email. `booking.token` manages it: keep it.",
            "content": {
                JSON: {
                    "example": {
                        "message": "Slot 1 is booked for lead@example.com.",
                        "slot": BOOKING_EXAMPLE["slot"],
                        "booking": {
                            "reference": "7K3QX9M2", "status": "confirmed", "token": "…",
                            "manage_url": "https://book.example.com/manage/7K3QX9M2#token=…",
                        },
                    }
                }
            },
        },
        404: error_doc("No slot has this id.", "Slot 42 does not exist."),
        409: error_doc(
            "The slot is already booked, held by another visitor, or has already started; "
            "or the lead has reached their limit of upcoming bookings.",
            "Slot 1 is already booked.",
        ),
        413: error_doc("The body is over the size limit.", "Request body too large: ..."),
        422: IDEMPOTENCY_REUSED,
        503: UNAVAILABLE,
    },
)
async def book(body: BookingRequest, request: Request, key: IdempotencyHeader = None) -> Response:
    settings = request.app.state.settings
    request.state.booking = (body.slot_id, body.email)  # for the booking log line
    base = _public_base(request)
    # Bot traps, challenges, per-email limit (scheduler_app/protect); a filled honeypot: a decoy.
    if (decoy := await request.app.state.protection.screen_booking(request, body, base)):
        return _answer(Answer(200, encode(decoy)))
    details = Details(body.email, body.name, body.notes, body.timezone,
                      body.source.model_dump(exclude_none=True) if body.source else None)

    def render(view: booking.BookingView) -> Answer:
        reference = view.booking.reference
        return Answer(200, encode({
            "message": f"Slot {view.slot.id} is booked for {view.slot.booked_by_email}.",
            "slot": slot_dict(view.slot, settings.tz),
            "booking": {
                "reference": reference,
                "status": view.booking.status,
                "token": view.token,
                "manage_url": f"{base}/manage/{reference}#token={view.token}",
            },
        }))

    return await _change(request, lambda tx: booking.book(tx, body.slot_id, details, body.hold_token),
                   render, key, body)


@router.post(
    "/holds",
    summary="Hold a slot while the lead fills in the form",
    status_code=201,
    response_model=HoldOut,
    tags=["holds"],
    responses={
        201: {"description": "Held until `expires_at`; only `hold_token` can book it meanwhile.",
              "content": {JSON: {"example": {
                  "hold_id": 1, "hold_token": "…", "slot": SLOT_EXAMPLE,
                  "expires_at": "2026-11-20T10:05:00-05:00"}}}},
        404: error_doc("No slot has this id.", "Slot 42 does not exist."),
        409: error_doc("The slot is booked, held or has started.",
                    "Slot 1 is held by another visitor for a few minutes."),
        422: IDEMPOTENCY_REUSED,
        503: UNAVAILABLE,
    },
)
async def place_hold(body: HoldRequest, request: Request,
                     key: IdempotencyHeader = None) -> Response:
    tz = request.app.state.settings.tz

    def render(held: booking.Hold) -> Answer:
        return Answer(201, encode({
            "hold_id": held.slot.id,
            "hold_token": held.token,
            "slot": slot_dict(held.slot, tz),
            "expires_at": moment_iso(held.expires_at, tz),
        }))

    return await _change(request, lambda tx: booking.hold(tx, body.slot_id), render, key, body)


@router.delete(
    "/holds/{hold_id}",
    summary="Release a hold",
    status_code=204,
    tags=["holds"],
    responses={
        204: {"description": "Released; the slot is free again."},
        401: UNAUTHORIZED,
        404: error_doc("No live hold has this id and token.", "No live hold has this id and token."),
        503: UNAVAILABLE,
    },
)
async def release_hold(hold_id: int, token: Bearer, request: Request) -> Response:
    state = request.app.state
    await booking.transaction_async(state.settings, state.clock(),
                                    lambda tx: booking.release(tx, hold_id, token))
    return Response(status_code=204, headers=NO_STORE)


def _booking_answer(request: Request):
    tz = request.app.state.settings.tz
    return lambda view: Answer(200, encode(booking_dict(view, tz)))


@router.get(
    "/bookings/{reference}",
    summary="A booking's details",
    response_model=BookingDetailsOut,
    tags=["bookings"],
    responses={
        200: {"content": {JSON: {"example": BOOKING_EXAMPLE}}},
        401: UNAUTHORIZED,
        404: UNKNOWN_BOOKING,
        503: UNAVAILABLE,
    },
)
def booking_details(reference: str, token: Bearer, request: Request) -> Response:
    return _answer(_booking_answer(request)(booking.get(reference, token)))


@router.post(
    "/bookings/{reference}/cancel",
    summary="Cancel a booking",
    response_model=BookingDetailsOut,
    tags=["bookings"],
    responses={
        200: {"description": "Cancelled (again: the same state); the slot is free again.",
              "content": {JSON: {"example": {**BOOKING_EXAMPLE, "status": "cancelled"}}}},
        401: UNAUTHORIZED,
        404: UNKNOWN_BOOKING,
        409: error_doc("The meeting has already started.",
                    "This meeting has already started and can no longer be cancelled."),
        503: UNAVAILABLE,
    },
)
async def cancel_booking(reference: str, token: Bearer, request: Request,
                         body: CancelRequest | None = None) -> Response:
    reason = body.reason if body else None
    return await _change(request, lambda tx: booking.cancel(tx, reference, token, reason),
                   _booking_answer(request), None, body)


@router.post(
    "/bookings/{reference}/reschedule",
    summary="Move a booking to another slot",
    response_model=BookingDetailsOut,
    tags=["bookings"],
    responses={
        200: {"description": "Moved; the old slot is free again. Same reference and token.",
              "content": {JSON: {"example": {
                  **BOOKING_EXAMPLE, "slot": {**BOOKING_EXAMPLE["slot"], "id": 2,
                                              "start_time": "2026-11-23T09:30:00-05:00",
                                              "end_time": "2026-11-23T10:00:00-05:00"}}}}},
        401: UNAUTHORIZED,
        404: error_doc("No booking has this reference and token, or no slot has this id.",
                    "Slot 42 does not exist."),
        409: error_doc("The new slot is booked, held or started; or the booking is cancelled "
                    "or its meeting has started.", "Slot 2 is already booked."),
        422: IDEMPOTENCY_REUSED,
        503: UNAVAILABLE,
    },
)
async def reschedule_booking(reference: str, body: RescheduleRequest, token: Bearer,
                             request: Request, key: IdempotencyHeader = None) -> Response:
    await request.app.state.protection.screen_reschedule(request, reference, token)  # per email
    return await _change(
        request,
        lambda tx: booking.reschedule(tx, reference, token, body.slot_id, body.hold_token),
        _booking_answer(request), key, body, token,
    )
