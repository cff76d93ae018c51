"""The booking widget, its demo page and the lead's manage page: static files
shipped in the package.

``/widget.js`` and ``/widget.css`` are embedded by pages on other origins (see
the README), and so are ``/kit.js`` and ``/kit.css``: the helpers and controls
that the widget, the manage page and the admin page share (widget.js loads
them from its own origin; the pages name them before their own files).
``/demo`` shows the widget on the service itself, under a strict
Content-Security-Policy that the widget must (and does) live with.
``/manage/{reference}`` is the page of a booking's manage link: the same page
for every reference (it reads the booking with the token in its URL fragment),
under the same policy, sending no Referer and never cached.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

# Everything from this origin, nothing inline, nothing from anywhere else.
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# path -> (file in scheduler_app/static, media type, extra headers)
_EMBEDDED = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
FILES = {
    "/widget.js": ("widget.js", "text/javascript; charset=utf-8", _EMBEDDED),
    "/widget.css": ("widget.css", "text/css; charset=utf-8", _EMBEDDED),
    "/kit.js": ("kit.js", "text/javascript; charset=utf-8", _EMBEDDED),
    "/kit.css": ("kit.css", "text/css; charset=utf-8", _EMBEDDED),
    "/demo.css": ("demo.css", "text/css; charset=utf-8", {"Cache-Control": "public, max-age=300"}),
    "/demo": ("demo.html", "text/html; charset=utf-8", {"Content-Security-Policy": DEMO_CSP}),
    "/manage.js": ("manage.js", "text/javascript; charset=utf-8", {"Cache-Control": "public, max-age=300"}),
    "/manage.css": ("manage.css", "text/css; charset=utf-8", {"Cache-Control": "public, max-age=300"}),
}

MANAGE_PATH = "/manage/{reference}"
MANAGE_HEADERS = {
    "Content-Security-Policy": DEMO_CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# Where manage.html names the rep's time zone, filled in from SCHEDULER_TIMEZONE.
REP_ZONE = b'data-rep-timezone=""'


@cache
def static_file(name: str) -> bytes:
    return (files(__package__) / "static" / name).read_bytes()


def _route(path: str, name: str, media_type: str, headers: dict[str, str]) -> None:
    def serve() -> Response:
        return Response(
            static_file(name),
            media_type=media_type,
            headers={"X-Content-Type-Options": "nosniff", **headers},
        )

    router.add_api_route(path, serve, methods=["GET"], name=name)


for _path, _spec in FILES.items():
    _route(_path, *_spec)


@router.get(MANAGE_PATH, name="manage.html")
def manage_page(reference: str, request: Request) -> Response:
    """The same page for any reference, known or not: it changes nothing and
    tells nothing; the booking is read by its script, with the token."""
    zone = html.escape(request.app.state.settings.timezone, quote=True)
    page = static_file("manage.html").replace(REP_ZONE, f'data-rep-timezone="{zone}"'.encode())
    return Response(page, media_type="text/html; charset=utf-8", headers=MANAGE_HEADERS)
