"""POST /book's own lane: a well-formed booking goes straight to ``routes.book``.

FastAPI's routing, dependency solving and exception layers cost about half of
a booking's CPU (py-spy, 1 worker). ``middleware.Front`` hands POST /book here
instead; this lane takes only what FastAPI itself would accept, in the way it
would read it, and gives everything else to the app unchanged:

- taken: a JSON body (``Content-Type: application/json``, with parameters or
  not) that ``json.loads`` reads and ``BookingRequest`` validates, as FastAPI
  does (its ``request.json()`` and then the model, in Python mode), and no
  ``Idempotency-Key`` header. The handler is then ``routes.book`` itself, and
  its exceptions go to the app's own exception handlers: the answer is the
  same, byte for byte, as through the route;
- given on (with the body read so far replayed): any other content type, a body
  that does not parse or validate, an ``Idempotency-Key``. FastAPI answers those,
  so every refusal (422 and its ``detail`` list) is FastAPI's own.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette._utils import is_async_callable  # as Starlette's ExceptionMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .routes import book
from .schemas import BookingRequest

_TAKEN_TYPE = b"application/json"


class BookLane:
    """ASGI: POST /book, the common case here, the rest to ``app``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                await self.app(scope, receive, send)
                return
            if name == b"content-type" and content_type is None:
                content_type = value
        if content_type is None or \
                content_type.partition(b";")[0].strip().lower() != _TAKEN_TYPE:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except HTTPException as exc:  # the body limit, as FastAPI raises it again
            await _handled(request, exc, send)
            return
        except ClientDisconnect as exc:  # FastAPI's answer to a body it could not read
            error = HTTPException(400, "There was an error parsing the body")
            error.__cause__ = exc
            await _handled(request, error, send)
            return
        body = None
        if raw:
            try:
                body = BookingRequest.model_validate(json.loads(raw))
            except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
                body = None
        if body is None:
            await self.app(scope, _replay(raw, receive), send)
            return
        try:
            response = await book(body, request)
        except Exception as exc:
            if not await _handled(request, exc, send):
                raise
            return
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given first, whole."""
    replayed = False

    async def replaying() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying


async def _handled(request: Request, exc: Exception, send: Send) -> bool:
    """Answer ``exc`` with the app's handler for it (as Starlette's
    ExceptionMiddleware would); False when the app has none."""
    handlers = request.scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            break
    else:
        return False
    if is_async_callable(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    await response(request.scope, request.receive, send)
    return True

