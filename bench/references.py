"""The reference servers: the ceilings of the HTTP layer and of the framework.

Both answer ``GET /availability`` with the JSON that the service returned for
the same slots (read once, from the file named by ``BENCH_PAYLOAD``, and held
in memory), ``POST /book`` with a constant 200 and ``GET /health`` like the
service. ``bare`` is a plain ASGI callable: no framework, bytes out. ``fastapi``
is what the framework does at the least for the same endpoints: the slots go
through a response model (validated and serialised, as FastAPI does for a
typed return value), the booking body through a request model, both
``async def`` so that nothing waits for the thread pool. ``fastapi_sync`` is
the ceiling of the service's own design, sync ``def`` handlers run in the
thread pool: the same routes as plain ``def`` functions that return the held
bytes (no response model: the least such a handler can do).

Served by ``python -m bench.references bare|fastapi|fastapi_sync --port P --workers N``,
with the service's own uvicorn configuration (``scheduler_app.server``).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime

from fastapi import FastAPI, Response
from pydantic import BaseModel

from scheduler_app.server import make_config, serve

PAYLOAD = open(os.environ["BENCH_PAYLOAD"], "rb").read() if "BENCH_PAYLOAD" in os.environ else b"[]"
BOOKED = (
    b'{"message":"Slot 1 is booked for lead1@example.com.","slot":{"id":1,'
    b'"start_time":"2026-11-23T09:00:00-05:00","end_time":"2026-11-23T09:30:00-05:00",'
    b'"is_booked":true,"booked_by_email":"lead1@example.com"}}'
)
HEALTH = b'{"status":"ok"}'
JSON = "application/json"


def _start(status: int, body: bytes) -> dict:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())],
    }


async def bare(scope, receive, send) -> None:
    """The HTTP layer's ceiling: route on method and path, answer held bytes."""
    if scope["type"] != "http":  # lifespan: accept startup and shutdown
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    route = (scope["method"], scope["path"])
    body, status = {
        ("GET", "/availability"): (PAYLOAD, 200),
        ("POST", "/book"): (BOOKED, 200),
        ("GET", "/health"): (HEALTH, 200),
    }.get(route, (b'{"detail":"Not Found"}', 404))
    await send(_start(status, body))
    await send({"type": "http.response.body", "body": body})


class Slot(BaseModel):
    id: int
    start_time: datetime
    end_time: datetime
    is_booked: bool
    booked_by_email: str | None


class Booking(BaseModel):
    slot_id: int
    email: str


SLOTS = json.loads(PAYLOAD)
fastapi = FastAPI()


@fastapi.get("/availability")
async def availability() -> list[Slot]:
    return SLOTS


@fastapi.post("/book")
async def book(body: Booking) -> Response:
    return Response(BOOKED, media_type=JSON)


@fastapi.get("/health")
async def health() -> Response:
    return Response(HEALTH, media_type=JSON)


fastapi_sync = FastAPI()


@fastapi_sync.get("/availability")
def availability_sync() -> Response:
    return Response(PAYLOAD, media_type=JSON)


@fastapi_sync.post("/book")
def book_sync(body: Booking) -> Response:
    return Response(BOOKED, media_type=JSON)


@fastapi_sync.get("/health")
def health_sync() -> Response:
    return Response(HEALTH, media_type=JSON)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.references")
    parser.add_argument("app", choices=["bare", "fastapi", "fastapi_sync"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    config = make_config("127.0.0.1", args.port, args.workers)
    config.app = f"bench.references:{args.app}"  # the service's uvicorn settings, another app
    serve(config)


if __name__ == "__main__":
    main()
