"""The protection of one application: its counters, traps and challenges, the
checks a booking goes through, and the routes the widget asks (``GET /form``,
``GET /altcha/challenge``)."""

from __future__ import annotations

import logging
import secrets

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from .. import booking
from ..errors import ClientError
from ..schemas import slot_dict
from .challenges import Altcha, ChallengeFailed, DisposableEmail, Turnstile, disposable_domain
from .counting import Counters
from .identity import client_address, client_key, email_key
from .ratelimit import RateLimits, TooManyRequests, route_group
from .settings import ProtectionSettings
from .traps import HONEYPOT_FIELD, FormClock, decoy_answer

log = logging.getLogger("scheduler_app.protect")

EXPOSED_HEADERS = ("Retry-After", "RateLimit", "RateLimit-Policy")  # to allowed CORS origins


class Protection:
    def __init__(self, settings: ProtectionSettings):
        self.settings = settings
        # Without SCHEDULER_FORM_SECRET, a secret of this process (`serve` makes one
        # for all its workers; several servers need the setting).
        secret = settings.form_secret or secrets.token_hex(32)
        self.counters = Counters(settings.storage, settings.prefix)
        self.form_clock = FormClock(secret, settings.min_fill_seconds)
        self.altcha = (Altcha(secret, settings.altcha_max_number, self.counters)
                       if settings.altcha else None)
        self.turnstile = (Turnstile(settings.turnstile_secret, settings.turnstile_verify_url)
                          if settings.turnstile_secret else None)
        self.email_limits = settings.limits_of("email")
        self.limits = RateLimits(settings, self.counters)  # applied by middleware.Front

    def form(self) -> dict:
        """What the widget needs to show its form."""
        return {
            "form_token": self.form_clock.issue(),
            "min_fill_seconds": self.settings.min_fill_seconds,
            "honeypot": HONEYPOT_FIELD if self.settings.honeypot else None,
            "altcha": self.altcha is not None,
            "turnstile_site_key": self.settings.turnstile_site_key if self.turnstile else None,
        }

    async def count_email(self, request: Request, email: str) -> None:
        """Count a booking or reschedule for ``email``; 429 past its daily limit.
        Exempt clients (loopback by default) are not counted."""
        if not self.email_limits or client_key(request.scope, self.settings.exempt) is None:
            return
        counts = await self.counters.hit(self.email_limits, email_key(email))
        if not all(count.allowed for count in counts):
            raise TooManyRequests(counts)

    async def screen_booking(self, request: Request, body, base: str) -> dict | None:
        """Check a POST /book before it books. Returns the decoy booking when the
        honeypot is filled (the caller answers it like a success); raises the
        ``ClientError`` of a failed check; None: go on."""
        settings = self.settings
        if settings.honeypot and getattr(body, HONEYPOT_FIELD, None):
            slot, decoy = await decoy_answer(body.slot_id, body.email, base)
            log.warning("Honeypot filled on POST /book (slot %s, client %s): answered as "
                        "booked, nothing booked", body.slot_id, client_address(request.scope))
            shown = {**slot_dict(slot, request.app.state.settings.tz), "is_booked": True,
                     "booked_by_email": body.email}
            return {"message": f"Slot {slot.id} is booked for {body.email}.", "slot": shown,
                    "booking": decoy}
        if settings.min_fill_seconds and body.form_token:
            self.form_clock.check(body.form_token)
        if settings.refuse_disposable_email and (domain := disposable_domain(body.email)):
            raise DisposableEmail(domain)
        await self.count_email(request, body.email)
        await self.challenges(request, body)
        return None

    async def challenges(self, request: Request, body) -> None:
        if self.altcha is not None:
            await self.altcha.verify(body.altcha)
        if self.turnstile is not None:
            address = client_address(request.scope)
            await self.turnstile.verify(body.turnstile_token, address and str(address))

    async def screen_reschedule(self, request: Request, reference: str, token: str) -> None:
        """Count a reschedule against its booking's email (read first, off the loop)."""
        if not self.email_limits or client_key(request.scope, self.settings.exempt) is None:
            return
        try:
            view = await anyio.to_thread.run_sync(booking.get, reference, token)
        except ClientError:
            return  # the change itself answers 404
        await self.count_email(request, view.booking.email)

    def readiness(self) -> dict:
        """For /ready's body: the counters' state when they are meant to be shared."""
        return {"rate_limits": self.counters.state()} if self.counters.is_shared else {}


# For the widget, like its pages: not in the API's schema.
router = APIRouter(tags=["protection"], include_in_schema=False)


@router.get("/form", summary="What the booking form needs: a signed token, the traps on")
def form(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.protection.form(), headers={"Cache-Control": "no-store"})


@router.get("/altcha/challenge", summary="An ALTCHA challenge (404 while ALTCHA is off)",
            responses={404: {"description": "ALTCHA is off."}})
def altcha_challenge(request: Request) -> JSONResponse:
    altcha = request.app.state.protection.altcha
    if altcha is None:
        return JSONResponse({"detail": "ALTCHA is off."}, status_code=404)
    return JSONResponse(altcha.challenge(), headers={"Cache-Control": "no-store"})


def install(app: FastAPI, settings: ProtectionSettings) -> Protection:
    """Add the protection to ``app``: ``app.state.protection`` (with ``limits``, the
    rate limits ``middleware.Front`` applies), the routes above and the 429s in
    the OpenAPI."""
    protection = Protection(settings)
    app.state.protection = protection
    app.include_router(router)
    _document_429(app, settings)
    return protection


TOO_MANY = {
    "description": "Too many requests from this address (or for this email): "
    "try again after `Retry-After` seconds.",
    "headers": {name: {"schema": {"type": "string"}} for name in EXPOSED_HEADERS},
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorOut"},
        "example": {"detail": "Too many requests; try again in 42 seconds."}}},
}


def _document_429(app: FastAPI, settings: ProtectionSettings) -> None:
    """List 429 in the OpenAPI of every operation a limit applies to."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for path, operations in build()["paths"].items():
                for method, operation in operations.items():
                    group = route_group(method.upper(), path.replace("{", "").replace("}", ""))
                    if group and (settings.limits_of(group) or group == "book"
                                  and settings.limits_of("email")):
                        operation["responses"].setdefault("429", TOO_MANY)
        return app.openapi_schema

    app.openapi = openapi


__all__ = ["ChallengeFailed", "Protection", "install", "router"]
