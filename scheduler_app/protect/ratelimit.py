"""Rate limits on the public routes: a pure ASGI middleware, and the 429.

Every request to a limited route counts, whatever its answer, before the
route runs. A refused one gets 429 with ``detail``, an integer Retry-After,
the RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-headers
(Structured Field Lists: ``"book-minute";q=10;w=60`` and
``"book-minute";r=0;t=42``), and ``Cache-Control: no-store``; the limited
routes send both fields on success too.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ClientError
from .counting import Count, Counters
from .identity import client_key
from .settings import ProtectionSettings

# (methods, path pattern, group of limits); the first match wins, no match: no limit.
ROUTES = (
    ({"POST"}, re.compile(r"/book"), "book"),
    ({"POST"}, re.compile(r"/holds"), "holds"),
    ({"DELETE"}, re.compile(r"/holds/[^/]+"), "holds"),
    ({"GET", "HEAD"}, re.compile(r"/bookings/[^/]+"), "token"),
    ({"POST"}, re.compile(r"/bookings/[^/]+/(cancel|reschedule)"), "token"),
    ({"GET", "HEAD"}, re.compile(r"/availability(/stream)?|/form|/altcha/challenge"),
     "availability"),
)


def route_group(method: str, path: str) -> str | None:
    """The group of limits of a request (``book``, ``holds``, ...), None: not limited."""
    for methods, pattern, group in ROUTES:
        if method in methods and pattern.fullmatch(path):
            return group
    return None


def policy_field(counts: list[Count]) -> str:
    return ", ".join(f'"{c.limit.name}";q={c.limit.amount};w={c.limit.seconds}' for c in counts)


def state_field(counts: list[Count]) -> str:
    return ", ".join(f'"{c.limit.name}";r={c.remaining};t={c.reset}' for c in counts)


def message(seconds: int) -> str:
    return f"Too many requests; try again in {seconds} second{'s' if seconds != 1 else ''}."


def limit_headers(counts: list[Count]) -> dict[str, str]:
    """RateLimit-Policy and RateLimit for ``counts``; with Retry-After when refused."""
    headers = {"RateLimit-Policy": policy_field(counts), "RateLimit": state_field(counts)}
    refused = [c for c in counts if not c.allowed]
    if refused:
        headers["Retry-After"] = str(max(c.reset for c in refused))
        headers["Cache-Control"] = "no-store"
    return headers


def _merged(raw, ours: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The response's headers with ``ours`` added; a RateLimit field the route set
    itself (the per-email limit) gets ours in the same field line, after its own."""
    merged = list(raw)
    for name, value in ours.items():
        key = name.lower().encode()
        for i, (existing, theirs) in enumerate(merged):
            if existing.lower() == key:
                merged[i] = (key, theirs + b", " + value.encode())
                break
        else:
            merged.append((key, value.encode()))
    return merged


class TooManyRequests(ClientError):
    """A limit refused the request (raised by the routes' own checks, e.g. per email)."""

    status = 429

    def __init__(self, counts: list[Count]):
        self.headers = limit_headers(counts)
        super().__init__(message(int(self.headers["Retry-After"])))


class RateLimits:
    """Count the requests of each client address on the limited ``ROUTES``.

    ``middleware.Front`` calls ``around`` with whatever is to answer the request
    (the app, or one of its lanes), so every limited request counts, streams
    and bookings included, and a 429 carries the request id like any answer."""

    def __init__(self, settings: ProtectionSettings, counters: Counters):
        self.settings = settings
        self.counters = counters
        self.groups = {group: settings.limits_of(group) for *_, group in ROUTES}

    def _limits(self, scope: Scope):
        group = route_group(scope["method"], scope["path"])
        return self.groups[group] if group else ()

    async def around(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        limits = self._limits(scope)
        key = client_key(scope, self.settings.exempt) if limits else None
        if key is None:
            await app(scope, receive, send)
            return
        counts = await self.counters.hit(limits, key)
        headers = limit_headers(counts)
        if "Retry-After" in headers:
            refused = JSONResponse({"detail": message(int(headers["Retry-After"]))},
                                   status_code=429, headers=headers)
            await refused(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merged(message.get("headers", ()), headers)
            await send(message)

        await app(scope, receive, send_with_limits)
