"""Cross-origin access for the booking widget, with Starlette's CORS middleware.

Only the origins in SCHEDULER_CORS_ORIGINS may call the API from a browser,
with GET and POST and a JSON body, never with credentials. Without any origin
configured the middleware is not installed, so no response carries CORS headers.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

METHODS = ("GET", "POST", "OPTIONS")
HEADERS = ("Content-Type",)


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
        )

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
