"""GET /availability/stream: every change of availability as a Server-Sent Event.

An ``async def`` handler and an async generator: a stream holds no thread
(a sync generator would hold one of the pool's 40 per open widget). The
events come from the process's hub, encoded once for all streams:

- ``slot``: ``id:`` its version; data ``{"id", "start_time", "end_time",
  "state"}``, times as in /availability, ``state`` one of free, booked,
  held, added, removed (never an email);
- ``resync``: the client should fetch the list again (it is further behind
  than what is kept, or the feed has a gap); data ``{"version"}``;
- ``ping``: every 15 s, data ``{"version"}``, the current version (a named
  event, since JavaScript never sees SSE comments). The first frame is a
  ping with a randomised ``retry:`` of 2-5 s, so that a restart does not
  bring every client back at the same moment.

``Last-Event-ID`` (an integer, strictly) wins over ``?since=``: the stream
starts with the events after it, from the hub or else from the table. Streams
end after about 20 minutes; the client reconnects with its Last-Event-ID and
misses nothing. Over SCHEDULER_STREAM_MAX_SUBSCRIBERS open streams in this
worker, a new one gets 503 with Retry-After. sse-starlette ends every stream
on uvicorn's shutdown, so SIGTERM does not wait for them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..availability import as_datetime
from ..db import reading, session
from ..models import Change
from .hub import Hub, slot_event, version_event

router = APIRouter(tags=["availability"])

PING_SECONDS = 15.0
LIFETIME_SECONDS = (18 * 60.0, 20 * 60.0)  # each stream ends at a random moment in this span
RETRY_MS = (2000, 5000)
MAX_REPLAY = 1000  # events read from the table for a reconnect; further behind: resync
AHEAD_WAIT_SECONDS = 2.0  # a client ahead of this worker's watcher waits this long for it
SEND_TIMEOUT_SECONDS = 30.0  # a client that reads nothing for this long is dropped
RETRY_AFTER = "5"

_VERSION = re.compile(r"[0-9]{1,18}")


def _strict_version(name: str, where: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not _VERSION.fullmatch(value):
        raise RequestValidationError([{
            "type": "int_parsing", "loc": (where, name),
            "msg": "must be a version: a whole number, digits only", "input": value,
        }])
    return int(value)


class _Stream(EventSourceResponse):
    """An event stream that gives its place back when it ends, however it ends."""

    def __init__(self, *args, release: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


STREAM_EXAMPLE = (
    'retry: 3517\nevent: ping\ndata: {"version":41}\n\n'
    'id: 42\nevent: slot\ndata: {"id":12,"start_time":"2026-11-23T09:00:00-05:00",'
    '"end_time":"2026-11-23T09:30:00-05:00","state":"booked"}\n\n'
)


async def serve_stream(request: Request) -> Response:
    """GET /availability/stream, served by ``lane`` ahead of the app's
    routing; the route below documents it in /docs (and serves it, if ever reached)."""
    start = _strict_version("Last-Event-ID", "header", request.headers.get("last-event-id"))
    if start is None:
        start = _strict_version("since", "query", request.query_params.get("since"))
    live = request.app.state.live
    hub: Hub = live.hub
    if not live.started or hub.subscribers >= live.settings.stream_max_subscribers:
        return JSONResponse({"detail": "Too many open streams; try again shortly."},
                            status_code=503, headers={"Retry-After": RETRY_AFTER})
    hub.subscribers += 1

    def release() -> None:
        hub.subscribers -= 1

    return _Stream(_events(hub, start), release=release, ping=0,
                   send_timeout=SEND_TIMEOUT_SECONDS)


async def lane(scope: Scope, receive: Receive, send: Send) -> None:
    """GET /availability/stream, straight from ``middleware.Front``.

    Everything between Front and the endpoint (FastAPI's exception and routing
    layers) would otherwise stay alive, frame by frame, for as long as each
    stream is open: 43 KB of resident memory per open stream with them, 34 KB
    without (a thousand streams, one worker). Front still gives streams their
    request id (and Cors their CORS headers) and answers a bug with a JSON 500;
    the lane's own refusals (422, 503) are JSON like every other answer.
    """
    request = Request(scope, receive)
    try:
        response = await serve_stream(request)
    except RequestValidationError as exc:
        response = await request_validation_exception_handler(request, exc)
    await response(scope, receive, send)


@router.get(
    "/availability/stream",
    summary="Follow changes of availability (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "An endless `text/event-stream` (it ends after about 20 minutes; "
                             "reconnect with `Last-Event-ID`). Events `slot`, `resync`, `ping`.",
              "content": {"text/event-stream": {"example": STREAM_EXAMPLE}}},
        422: {"description": "`Last-Event-ID` or `since` is not a whole number."},
        503: {"description": "This worker has SCHEDULER_STREAM_MAX_SUBSCRIBERS streams open; "
                             "try again after `Retry-After` seconds (or poll GET /availability).",
              "content": {"application/json": {"example": {
                  "detail": "Too many open streams; try again shortly."}}}},
    },
)
async def availability_stream(
    request: Request,
    since: Annotated[str | None, Query(
        description="The last version the client has (from a `slot` event's id or a "
                    "`ping`); the stream starts after it. `Last-Event-ID` wins.",
        pattern=r"^[0-9]{1,18}$", examples=["41"])] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID",
                                                include_in_schema=False)] = None,
) -> Response:
    """The documentation of ``serve_stream`` (``lane`` answers first)."""
    return await serve_stream(request)


async def _events(hub: Hub, since: int | None) -> AsyncIterator[bytes]:
    """The frames of one stream: a ping with ``retry:``, what came after ``since``,
    then each change as it is heard, with a ping every 15 s, for about 20 minutes."""
    now = time.monotonic()
    deadline = now + random.uniform(*LIFETIME_SECONDS)
    last = hub.version if since is None else since  # the cursor as the client connects
    yield version_event("ping", hub.version, random.randint(*RETRY_MS))
    if last > hub.version:  # ahead of this worker's watcher (it lags) or of the database
        with anyio.move_on_after(AHEAD_WAIT_SECONDS):
            while last > hub.version:
                await hub.changed.wait()
        if last > hub.version:
            last = hub.version
            yield version_event("resync", last)
    elif last < hub.floor:  # older than the hub keeps: from the table
        floor = hub.floor
        replay = None
        if floor - last <= MAX_REPLAY:
            replay = await run_in_threadpool(_replay, last, floor, hub)
        if replay is None:
            last = hub.version
            yield version_event("resync", last)
        else:
            last = floor
            if replay:
                yield replay
    next_ping = time.monotonic() + PING_SECONDS
    while True:
        chunk = hub.after(last)
        if chunk is None:  # it fell behind what the hub keeps while sending
            last = hub.version
            yield version_event("resync", last)
            continue
        if chunk:
            last = hub.version
            yield chunk
            continue
        now = time.monotonic()
        if now >= deadline:
            return
        if now >= next_ping:
            next_ping = now + PING_SECONDS
            yield version_event("ping", hub.version)
            continue
        changed = hub.changed
        with anyio.move_on_after(min(next_ping, deadline) - now):
            await changed.wait()


def _replay(last: int, upto: int, hub: Hub) -> bytes | None:
    """The events of versions ``last + 1 .. upto`` from the table, or None when
    some are not there any more."""
    with reading(), session():
        rows = list(
            Change.select(Change.v, Change.slot_id, Change.start_time, Change.end_time,
                          Change.state)
            .where((Change.v > last) & (Change.v <= upto)).order_by(Change.v).tuples()
        )
    if [row[0] for row in rows] != list(range(last + 1, upto + 1)):
        return None
    return b"".join(slot_event(v, slot_id, as_datetime(start), as_datetime(end), state, hub.tz)
                    for v, slot_id, start, end, state in rows)
