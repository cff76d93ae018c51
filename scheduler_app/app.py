"""Build the ASGI application: settings, database, seeding at startup, routes, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import datetime

import anyio
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import __version__
from .admin import AdminGate
from .admin import pages as admin_pages
from .admin import router as admin_router
from .book_lane import BookLane
from .cors import Cors
from .db import close_database
from .errors import ClientError, DatabaseUnavailable
from .health_routes import router as health_router
from .live import Live
from .live.stream import lane as stream_lane
from .live.stream import router as stream_router
from .middleware import Front
from .notify import relay
from .notify.routes import router as calendar_router
from .protect import service as protect
from .routes import router
from .seeding import build_seeder
from .settings import Settings
from .startup import prepare_database, utc_now
from .web import router as web_router

log = logging.getLogger("scheduler_app")

Clock = Callable[[], datetime]


def create_app(settings: Settings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The application for ``settings`` (default: read from the environment).

    Configuration errors (``ConfigError``, ``UnknownSeederError``) are raised
    here, before anything is served. ``clock`` gives the current time.
    """
    settings = settings or Settings.from_env()
    seeder = build_seeder(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        prepare_database(settings, seeder, clock())
        # Each worker delivers the outbox in a thread of its own (never on the loop).
        notifier = relay.start(settings, clock)
        # The change feed's watcher and the holds' sweeper, in threads of their own.
        await anyio.to_thread.run_sync(live.start, asyncio.get_running_loop())
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(live.stop)
            if notifier is not None:
                await anyio.to_thread.run_sync(notifier.stop)
            close_database()

    app = FastAPI(
        title="Meeting scheduler",
        version=__version__,
        description="Book a 30-minute meeting from a sales rep's calendar.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.live = live = Live(settings, clock)
    app.include_router(stream_router)  # before /availability's router: the more specific path
    app.include_router(router)
    app.include_router(health_router)
    app.include_router(calendar_router)
    app.include_router(web_router)
    # The rep's side: left out of /openapi.json while SCHEDULER_ADMIN_TOKEN is unset,
    # when every /admin path answers 404 (AdminGate, asked by Front).
    app.include_router(admin_router, include_in_schema=settings.admin_token is not None)
    app.include_router(admin_pages)
    # GET /form, /altcha/challenge, and the rate limits Front applies.
    protection = protect.install(app, settings.protection)
    # Request id, the stream's and the booking's lanes, rate limits, admin gate,
    # body limit, JSON 500, booking log line: one layer (scheduler_app/middleware.py).
    app.add_middleware(Front, max_bytes=settings.max_body_bytes,
                       admin=AdminGate(settings.admin_token), stream=stream_lane, book=BookLane,
                       limits=protection.limits)
    if settings.cors_origins:
        # Outermost, so that every response (413 included) carries the headers.
        app.add_middleware(Cors, origins=settings.cors_origins)
    _add_error_handlers(app)
    return app


def _detail(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _finite(value: object) -> object:
    """``value`` (JSON-like) with NaN and the infinities as the strings JSON lacks."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClientError)
    async def refused(request: Request, exc: ClientError) -> JSONResponse:
        # A refusal holds for this moment only (and may answer a token): no cache keeps it.
        return _detail(exc.status, str(exc), {"Cache-Control": "no-store", **(exc.headers or {})})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422, except that an input it cannot write as JSON (Python's
        # json reads NaN and Infinity) is written as a string: a 422, never a 500.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(DatabaseUnavailable)
    async def unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _detail(503, "The service is temporarily unavailable; try again shortly.",
                       {"Retry-After": "5"})
