"""Cross-origin access for the booking widget, with Starlette's CORS middleware.

Only the origins in SCHEDULER_CORS_ORIGINS may call the API from a browser,
with GET, POST and DELETE, a JSON body, a Bearer token and an Idempotency-Key,
never with credentials (cookies). Without any origin
configured the middleware is not installed, so no response carries CORS headers.
The rep's ``/admin`` is never open to other origins: its answers get no CORS
headers and its preflights are refused, whatever the origin.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "POST", "DELETE", "OPTIONS")  # DELETE: the widget releases its hold
HEADERS = ("Content-Type",
           "Authorization",  # the hold and manage tokens (Bearer)
           "Idempotency-Key",  # POST /book, /holds and reschedule
           "If-None-Match",  # the widget's polls of GET /availability
           "Last-Event-ID")  # an EventSource reconnecting to GET /availability/stream
EXPOSED = ("ETag",  # the widget reads the list's version from it
           "Retry-After", "RateLimit", "RateLimit-Policy")  # a 429 (scheduler_app/protect)
SAME_ORIGIN_ONLY = ("/admin",)  # these paths and those under them


class Cors(CORSMiddleware):
    """Starlette's middleware for ``origins``, but a refused preflight gets a JSON
    400 with a ``detail`` (like every other error) and no CORS headers at all."""

    def __init__(self, app: ASGIApp, origins: Collection[str]):
        super().__init__(
            app,
            allow_origins=tuple(origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _same_origin_only(scope["path"]):
            headers = Headers(scope=scope)
            if (scope["method"] == "OPTIONS" and "origin" in headers
                    and "access-control-request-method" in headers):
                refused = JSONResponse(
                    {"detail": "Cross-origin request refused: the admin is for the "
                     "service's own pages only."}, status_code=400)
                await refused(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Starlette's, but an origin not allowed gets no Expose-Headers either."""
        if message["type"] == "http.response.start":
            downstream = send

            async def send(message: Message) -> None:
                headers = MutableHeaders(scope=message)
                if "access-control-allow-origin" not in headers:
                    del headers["access-control-expose-headers"]
                await downstream(message)

        await super().send(message, send, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = response.body.decode().removeprefix("Disallowed CORS ")
        return JSONResponse(
            {"detail": f"Cross-origin request refused: {refused} not allowed."},
            status_code=400,
            headers={"Vary": response.headers["Vary"]},
        )


def _same_origin_only(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in SAME_ORIGIN_ONLY)
