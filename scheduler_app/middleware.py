"""Pure ASGI middleware: the request id, the request-body limit, the booking log
line and the JSON 500.

Pure ASGI (not ``BaseHTTPMiddleware``) so that nothing is buffered and the
context of the request reaches the handlers' threads unchanged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import request_id

booking_log = logging.getLogger("scheduler_app.booking")

OUTCOMES = {
    200: "booked",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    503: "unavailable",
}


# What an incoming X-Request-ID may be: short, no spaces or quotes, nothing
# that could break a log line. Anything else is replaced by a generated id.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")


class _Middleware:
    """Pure ASGI middleware that handles the requests it ``applies`` to (HTTP ones
    unless it says otherwise) and passes everything else through."""

    def __init__(self, app: ASGIApp):
        self.app = app

    def applies(self, scope: Scope) -> bool:
        return scope["type"] == "http"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.applies(scope):
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestId(_Middleware):
    """Give every request an id: its X-Request-ID when sane, else a new one.

    The id goes into the ``request_id`` context variable, which the log filter
    puts on every line logged for the request (by the app and by uvicorn), and
    into the response's X-Request-ID header. The variable is not reset: each
    request runs in its own task, with its own copy of the context, and
    uvicorn's error log, which runs after this middleware has returned, still
    needs it.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        rid = given.decode() if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimit(_Middleware):
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        super().__init__(app)
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"Request body too large: the limit is {self.max_bytes} bytes."

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await JSONResponse({"detail": self._too_large()}, status_code=413)(scope, receive, send)
            return
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

        await self.app(scope, limited, send)


class InternalError(_Middleware):
    """Answer an unexpected exception with a JSON 500, then let it go on.

    Starlette answers such an exception outside every middleware, so its 500
    would carry neither the request id nor the CORS headers, and a browser page
    could not read it. Here the answer goes through them like any other; the
    exception is raised again so that the server logs its traceback (Starlette
    sends nothing more once a response has started).
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not started:
                response = JSONResponse({"detail": "Internal server error."}, status_code=500)
                await response(scope, receive, send)
            raise


def mask_email(email: str | None) -> str | None:
    """``jane@example.com`` -> ``j***@example.com``: enough to correlate, not to read."""
    if not email:
        return None
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


class BookingLog(_Middleware):
    """One log line per POST /book: slot id, outcome, status, duration, masked email.

    The handler leaves what it parsed in ``request.state.booking`` as
    ``(slot_id, email)``; a request refused before that (422, 413) logs without.
    """

    def __init__(self, app: ASGIApp, path: str = "/book"):
        super().__init__(app)
        self.path = path

    def applies(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "POST"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            slot_id, email = scope.get("state", {}).get("booking", (None, None))
            extra = {
                "slot_id": slot_id,
                "outcome": OUTCOMES.get(status, "error"),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "email": mask_email(email),
            }
            booking_log.info(
                "booking slot=%s outcome=%s status=%s duration_ms=%s email=%s",
                *(extra[k] for k in ("slot_id", "outcome", "status", "duration_ms", "email")),
                extra=extra,
            )
