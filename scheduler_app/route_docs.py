"""What the API's documentation (``/docs``, ``/openapi.json``) shows of the
answers: the error bodies and the examples, shared by the routers."""

from __future__ import annotations

from .schemas import SLOT_EXAMPLE, ErrorOut

JSON = "application/json"


def error_doc(description: str, example: str) -> dict:
    return {
        "model": ErrorOut,
        "description": description,
        "content": {JSON: {"example": {"detail": example}}},
    }


BOOKING_EXAMPLE = {
    "reference": "7K3QX9M2",
    "status": "confirmed",
    "slot": {**SLOT_EXAMPLE, "is_booked": True, "booked_by_email": "lead@example.com"},
    "email": "lead@example.com",
    "name": "Jane Lead",
    "notes": "About the enterprise plan",
    "created_at": "2026-11-20T10:00:00-05:00",
    "cancelled_at": None,
}
IDEMPOTENCY_REUSED = {
    "description": "Bad input (FastAPI's standard body), or an Idempotency-Key used before "
    "for another request (`detail`: This Idempotency-Key was used for another request; ...).",
    "content": {JSON: {
        "schema": {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"},
                             {"$ref": "#/components/schemas/ErrorOut"}]},
        "examples": {
            "bad input": {"value": {"detail": [{
                "type": "missing", "loc": ["body", "slot_id"], "msg": "Field required",
                "input": {}}]}},
            "key reused": {"value": {"detail": "This Idempotency-Key was used for another "
                                     "request; send a new key for a new request."}},
        },
    }},
}
UNAVAILABLE = error_doc("The database is unavailable.", "The database is unavailable: ...")
UNAUTHORIZED = error_doc("No `Authorization: Bearer` token.",
                      "This needs an Authorization: Bearer token.")
UNKNOWN_BOOKING = error_doc("No booking has this reference and token (the same answer for both).",
                         "No booking has this reference and token.")
