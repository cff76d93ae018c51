"""The rep's page (``/admin``) and its script and stylesheet, under the strict CSP."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request, Response

from ..web import REP_ZONE, static_file
from .gate import PAGE_FILES, PAGE_HEADERS

pages = APIRouter(include_in_schema=False)


def _page_route(path: str, name: str, media_type: str) -> None:
    def serve(request: Request) -> Response:
        body = static_file(name)
        if name == "admin.html":
            zone = html.escape(request.app.state.settings.timezone, quote=True)
            body = body.replace(REP_ZONE, f'data-rep-timezone="{zone}"'.encode())
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)

    pages.add_api_route(path, serve, methods=["GET"], name=name)


for _path, (_name, _media_type) in PAGE_FILES.items():
    _page_route(_path, _name, _media_type)
