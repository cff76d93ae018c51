"""Build the ASGI application: settings, database, seeding at startup, routes, errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from . import __version__
from .cors import Cors
from .db import close_database
from .errors import ClientError, DatabaseUnavailable
from .middleware import BodyLimit, BookingLog, InternalError, RequestId
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
        try:
            yield
        finally:
            close_database()

    app = FastAPI(
        title="Meeting scheduler",
        version=__version__,
        description="Book a 30-minute meeting from a sales rep's calendar.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.include_router(router)
    app.include_router(web_router)
    app.add_middleware(InternalError)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BookingLog)
    app.add_middleware(RequestId)  # outermost of ours: every response and log line has it
    if settings.cors_origins:
        # Outermost, so that every response (413 included) carries the headers.
        app.add_middleware(Cors, origins=settings.cors_origins)
    _add_error_handlers(app)
    return app


def _detail(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClientError)
    async def refused(request: Request, exc: ClientError) -> JSONResponse:
        return _detail(exc.status, str(exc), exc.headers)

    @app.exception_handler(DatabaseUnavailable)
    async def unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _detail(503, "The service is temporarily unavailable; try again shortly.",
                       {"Retry-After": "5"})
