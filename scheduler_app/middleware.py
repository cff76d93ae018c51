"""One pure ASGI middleware for every HTTP request: ``Front``.

In one pass, outermost of the app's own layers (only ``cors.Cors`` is outside
it), it:

1. gives the request its id: its X-Request-ID when sane, else a new one, in the
   ``logs.request_id`` context variable and in the response's X-Request-ID;
2. sends GET /availability/stream down its own lane (``stream``), past the rest,
   and POST /book down its own (``book``: ``book_lane.BookLane``);
3. applies the rate limits (``limits``: ``protect.ratelimit.RateLimits``) to
   whatever answers the request, lanes included, so a 429 has the request id;
4. lets the admin gate (``admin``) refuse an ``/admin`` request (404 or 401)
   before anything reads its body, and marks every ``/admin`` answer no-store;
5. refuses request bodies over ``max_bytes`` with 413, declared or streamed;
6. answers an unexpected exception with a JSON 500 (so it carries the request id
   and the CORS headers), then lets it go on so that the server logs it;
7. writes one log line per POST /book (slot id, outcome, status, duration,
   masked email), which stands in for uvicorn's access line (``logs``).

Pure ASGI (not ``BaseHTTPMiddleware``) so that nothing is buffered and the
context of the request reaches the handlers' threads unchanged. One layer,
not six: each wrapper cost a call and a ``send`` closure per message.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Protocol

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import BOOKING_METHOD, BOOKING_PATH, request_id

booking_log = logging.getLogger("scheduler_app.booking")

OUTCOMES = {
    200: "booked",
    404: "not_found",
    403: "forbidden",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}

STREAM_PATH = "/availability/stream"
ADMIN_PREFIX = "/admin"

# What an incoming X-Request-ID may be: short, no spaces or quotes, nothing
# that could break a log line. Anything else is replaced by a generated id.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")

_NO_STORE = (b"cache-control", b"no-store")

#: The admin gate: the refusal of an ``/admin`` request, or None to let it in.
Gate = Callable[[Scope], Response | None]


class Limits(Protocol):
    """Rate limits around whatever answers a request (``protect.ratelimit``)."""

    async def around(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None: ...


def _new_request_id() -> str:
    """32 random hex digits (the shape of a uuid4's hex, as nginx's $request_id)."""
    return os.urandom(16).hex()


def mask_email(email: str | None) -> str | None:
    """``jane@example.com`` -> ``j***@example.com``: enough to correlate, not to read."""
    if not email:
        return None
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


class Front:
    """The request id, the stream lane, the admin gate, the body limit, the JSON
    500 and the booking log line, in that order, in one layer."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, admin: Gate | None = None,
                 stream: ASGIApp | None = None,
                 book: Callable[[ASGIApp], ASGIApp] | None = None,
                 limits: Limits | None = None):
        self.app = app
        self.limits = limits
        self.max_bytes = max_bytes
        self.admin = admin
        self.stream = stream
        self.book = book(app) if book is not None else None  # POST /book's lane, before app

    def _too_large(self) -> str:
        return f"Request body too large: the limit is {self.max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = content_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
            elif name == b"content-length":
                content_length = value
        rid = given.decode() if given and _SANE_REQUEST_ID.fullmatch(given) else _new_request_id()
        # Not reset: each request runs in its own task, with its own copy of the
        # context, and uvicorn's error log, which runs after this returns, needs it.
        request_id.set(rid)
        path, method = scope["path"], scope["method"]
        rid_header = (b"x-request-id", rid.encode())
        app: ASGIApp = self.app
        limited = True
        no_store = False
        if path == STREAM_PATH and method in ("GET", "HEAD") and self.stream is not None:
            app, limited = self.stream, False
        elif self.admin is not None and is_admin_path(path):
            refusal = self.admin(scope)
            if refusal is not None:
                await refusal(scope, receive, _with_header(send, rid_header))
                return
            no_store = True
        booking = path == BOOKING_PATH and method == BOOKING_METHOD
        if booking and self.book is not None:
            app = self.book
        started_at = time.perf_counter() if booking else 0.0
        status = 0  # 0: no response started

        async def send_on(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                if no_store:
                    headers = _no_store(headers)
                message["headers"] = [*headers, rid_header]
            await send(message)

        if limited and content_length is not None and (
                not content_length.isdigit() or int(content_length) > self.max_bytes):
            app = self._refuse_too_large
        elif limited:
            receive = self._limited(receive)
        try:
            if self.limits is not None:
                await self.limits.around(app, scope, receive, send_on)
            else:
                await app(scope, receive, send_on)
        except Exception:
            if not status:
                response = JSONResponse({"detail": "Internal server error."}, status_code=500)
                await response(scope, receive, send_on)
            raise
        finally:
            if booking:
                _log_booking(scope, status or 500, started_at)

    async def _refuse_too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self._too_large()}, status_code=413)(scope, receive, send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised while the handler reads the body; FastAPI passes
                    # HTTPExceptions on, and they become JSON responses.
                    raise HTTPException(413, self._too_large())
            return message

        return limited


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return sending


def _no_store(headers) -> list:
    """``headers`` with ``Cache-Control: no-store`` in place of the first Cache-Control
    and without the others, or added last (as Starlette's ``MutableHeaders`` sets it)."""
    kept, placed = [], False
    for name, value in headers:
        if name == b"cache-control":
            if not placed:
                kept.append(_NO_STORE)
                placed = True
            continue
        kept.append((name, value))
    if not placed:
        kept.append(_NO_STORE)
    return kept


def _log_booking(scope: Scope, status: int, started_at: float) -> None:
    """The booking's one line. The handler leaves what it parsed in
    ``request.state.booking`` as ``(slot_id, email)``; a request refused before
    that (422, 413) logs without."""
    slot_id, email = scope.get("state", {}).get("booking", (None, None))
    outcome = OUTCOMES.get(status, "error")
    duration = round((time.perf_counter() - started_at) * 1000, 1)
    masked = mask_email(email)
    if not booking_log.isEnabledFor(logging.INFO):
        return
    # The record made directly: ``Logger.info`` would first walk the stack for
    # a file and line that no format of ours prints (a tenth of a booking's CPU
    # went to this line).
    record = booking_log.makeRecord(
        booking_log.name, logging.INFO, __file__, 0,
        "booking slot=%s outcome=%s status=%s duration_ms=%s email=%s",
        (slot_id, outcome, status, duration, masked), None, "_log_booking",
        {"slot_id": slot_id, "outcome": outcome, "status": status,
         "duration_ms": duration, "email": masked},
    )
    booking_log.handle(record)
