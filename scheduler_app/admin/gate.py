"""Who may use ``/admin``: SCHEDULER_ADMIN_TOKEN as a Bearer token, compared in
constant time; the page's files are served to anyone (they hold no data)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Scope

from ..errors import Unauthorized
from ..middleware import ADMIN_PREFIX as PREFIX
from ..web import DEMO_CSP

log = logging.getLogger("scheduler_app.admin")

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
