"""GET /health (liveness) and GET /ready (readiness), for load balancers and systemd."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import health
from .errors import DatabaseUnavailable
from .route_docs import JSON, error_doc

router = APIRouter()


@router.get(
    "/health",
    summary="Liveness: the process answers",
    tags=["health"],
    responses={200: {"content": {JSON: {"example": {"status": "ok"}}}}},
)
def liveness() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: the database answers and the table exists",
    tags=["health"],
    responses={
        200: {
            "content": {
                JSON: {"example": {"status": "ready", "slots": {"total": 16, "booked": 1, "free": 15}}}
            }
        },
        503: error_doc("Not ready; the detail says why.", "The time_slots table does not exist."),
    },
)
def readiness(request: Request) -> JSONResponse:
    try:
        counts = health.slot_counts(request.app.state.clock())
    except DatabaseUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "slots": counts,
                         **request.app.state.protection.readiness()})  # "degraded": no Redis
