"""Bookings a lead can manage, over HTTP, on SQLite and PostgreSQL: the booking's
reference and token, details, cancel, reschedule, holds, Idempotency-Key, the
per-email limit, the OpenAPI document and a database outage.

The seeded slots are Monday 2026-11-23, 09:00-17:00 New York (slot n starts at
14:00 UTC plus 30 minutes times n - 1); the clock starts on Friday 2026-11-20.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from support import TcpProxy, bearer, free_ids, made, post_book

from scheduler_app.app import create_app
from scheduler_app.db import database, session
from scheduler_app.migrations import CROCKFORD
from scheduler_app.models import Booking, IdempotencyKey, TimeSlot

MONDAY_1410 = datetime(2026, 11, 23, 14, 10, tzinfo=UTC)  # slot 1 has started
HELD = "is held by another visitor"
REUSED = "This Idempotency-Key was used for another request"


book = post_book  # book(client, slot_id=1, email=..., headers=None, **fields) -> the response


def details(client, made_booking: dict):
    return client.get(f"/bookings/{made_booking['reference']}",
                      headers=bearer(made_booking["token"]))


def cancel(client, made_booking: dict, **body):
    return client.post(f"/bookings/{made_booking['reference']}/cancel",
                       headers=bearer(made_booking["token"]), json=body or None)


def reschedule(client, made_booking: dict, slot_id: int, headers=None, **body):
    return client.post(f"/bookings/{made_booking['reference']}/reschedule",
                       headers={**bearer(made_booking["token"]), **(headers or {})},
                       json={"slot_id": slot_id, **body})


def hold(client, slot_id: int, headers=None):
    return client.post("/holds", json={"slot_id": slot_id}, headers=headers or {})


def stored_booking(reference: str) -> Booking:
    with session():
        return Booking.get(Booking.reference == reference)


def stored_slot(slot_id: int) -> TimeSlot:
    with session():
        return TimeSlot.get_by_id(slot_id)


def snapshot() -> tuple[list[tuple], list[tuple], int]:
    """Every slot and booking as stored, and the number of feed changes."""
    with session():
        slots = list(TimeSlot.select().order_by(TimeSlot.id).tuples())
        bookings = list(Booking.select().order_by(Booking.id).tuples())
        changes = database.execute_sql("SELECT COUNT(*) FROM changes").fetchone()[0]
    return slots, bookings, changes


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- POST /book ----------------------------------------------------------------


def test_book_answers_the_booking_with_its_reference_token_and_manage_link(client):
    response = book(client, 3, "Lead@Example.com")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["slot"] == {"id": 3, "start_time": "2026-11-23T10:00:00-05:00",
                            "end_time": "2026-11-23T10:30:00-05:00", "is_booked": True,
                            "booked_by_email": "Lead@example.com"}
    made_booking = body["booking"]
    assert set(made_booking) == {"reference", "status", "token", "manage_url"}
    reference, token = made_booking["reference"], made_booking["token"]
    assert len(reference) == 8 and set(reference) <= set(CROCKFORD)
    assert made_booking["status"] == "confirmed"
    assert len(token) >= 32
    assert made_booking["manage_url"] == f"http://testserver/manage/{reference}#token={token}"

    row = stored_booking(reference)
    assert (row.slot_id, row.email, row.status, row.sequence) == (3, "Lead@example.com",
                                                                  "confirmed", 0)
    assert row.token_hash == sha256(token)  # the token itself is not stored
    assert token not in {str(value) for value in row.__data__.values()}
    assert row.created_at == datetime(2026, 11, 20, 15, 0) == row.updated_at
    assert (row.cancelled_at, row.cancel_reason, row.name, row.notes, row.timezone) == (
        None, None, None, None, None)


def test_references_and_tokens_differ_from_booking_to_booking(client):
    made_bookings = [made(client, slot_id, f"lead{slot_id}@example.com") for slot_id in range(1, 9)]
    assert len({b["reference"] for b in made_bookings}) == 8
    assert len({b["token"] for b in made_bookings}) == 8


def test_the_manage_url_uses_scheduler_public_url_when_set(settings, clock):
    configured = replace(settings, public_url="https://book.example.com/leads")
    with TestClient(create_app(configured, clock)) as client:
        made_booking = made(client)
    reference, token = made_booking["reference"], made_booking["token"]
    assert made_booking["manage_url"] == (
        f"https://book.example.com/leads/manage/{reference}#token={token}")


def test_the_manage_url_uses_the_requests_own_scheme_and_host_otherwise(settings, clock):
    app = create_app(settings, clock)
    with TestClient(app, base_url="https://leads.example.org:8443") as client:
        made_booking = made(client)
    assert made_booking["manage_url"].startswith(
        f"https://leads.example.org:8443/manage/{made_booking['reference']}#token=")


def test_book_keeps_the_optional_name_notes_and_time_zone(client):
    made_booking = made(client, 2, name="Jane Lead", notes="About the enterprise plan",
                        timezone="Europe/Paris", unknown_field="ignored")
    row = stored_booking(made_booking["reference"])
    assert (row.name, row.notes, row.timezone) == ("Jane Lead", "About the enterprise plan",
                                                   "Europe/Paris")
    shown = details(client, made_booking).json()
    assert (shown["name"], shown["notes"]) == ("Jane Lead", "About the enterprise plan")


@pytest.mark.parametrize("fields, field", [
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"timezone": 5}, "timezone"),
    ({"name": "n" * 201}, "name"),
    ({"notes": "n" * 2001}, "notes"),
    ({"hold_token": ""}, "hold_token"),
])
def test_bad_optional_fields_are_422_and_book_nothing(client, fields, field):
    before = snapshot()
    response = book(client, 1, **fields)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert snapshot() == before


NON_FINITE = ("NaN", "Infinity", "-Infinity")  # JSON has none, Python's json reads them


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "k-nan"}],
                         ids=["book-lane", "with-key"])
def test_a_non_finite_slot_id_is_422_with_a_json_detail(client, literal, headers):
    """POST /book's own lane (no key) and FastAPI's route (a key) alike: never a 500."""
    before = snapshot()
    response = client.post("/book", headers={"Content-Type": "application/json", **headers},
                           content=f'{{"slot_id": {literal}, "email": "a@example.com"}}')
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "slot_id"]
    assert error["input"] == str(float(literal))  # written as a string: "nan", "inf", "-inf"
    assert snapshot() == before


@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_number_is_422_on_the_other_json_routes(client, literal):
    made_booking = made(client, 2)
    before = snapshot()
    response = client.post("/holds", headers={"Content-Type": "application/json"},
                           content=f'{{"slot_id": {literal}}}')
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "slot_id"]]
    response = client.post(f"/bookings/{made_booking['reference']}/reschedule",
                           headers={**bearer(made_booking["token"]),
                                    "Content-Type": "application/json"},
                           content=f'{{"slot_id": {literal}}}')
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "slot_id"]
    assert snapshot() == before


def test_the_longest_name_and_notes_are_accepted(client):
    made_booking = made(client, 1, name="n" * 200, notes="n" * 2000)
    row = stored_booking(made_booking["reference"])
    assert (len(row.name), len(row.notes)) == (200, 2000)


# -- GET /bookings/{reference} -----------------------------------------------------


def test_details_need_the_token_and_show_the_booking(client):
    made_booking = made(client, 4, name="Jane")
    response = details(client, made_booking)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "reference": made_booking["reference"],
        "status": "confirmed",
        "slot": {"id": 4, "start_time": "2026-11-23T10:30:00-05:00",
                 "end_time": "2026-11-23T11:00:00-05:00", "is_booked": True,
                 "booked_by_email": "lead@example.com"},
        "email": "lead@example.com",
        "name": "Jane",
        "notes": None,
        "created_at": "2026-11-20T10:00:00-05:00",
        "cancelled_at": None,
    }


def test_details_without_a_bearer_token_are_401(client):
    made_booking = made(client)
    path = f"/bookings/{made_booking['reference']}"
    for headers in ({}, {"Authorization": f"Basic {made_booking['token']}"},
                    {"Authorization": "Bearer"}, {"Authorization": ""}):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["detail"]
    # A token in the query string is not a token.
    response = client.get(path, params={"token": made_booking["token"]})
    assert response.status_code == 401


def test_an_unknown_reference_and_a_wrong_token_get_the_same_404(client):
    made_booking = made(client)
    other = made(client, 2, "other@example.com")
    wrong_token = client.get(f"/bookings/{made_booking['reference']}", headers=bearer("x" * 43))
    others_token = client.get(f"/bookings/{made_booking['reference']}",
                              headers=bearer(other["token"]))
    unknown = client.get("/bookings/ZZZZZZZZ", headers=bearer(made_booking["token"]))
    odd = client.get("/bookings/not-a-reference-at-all", headers=bearer(made_booking["token"]))
    answers = {(r.status_code, r.text) for r in (wrong_token, others_token, unknown, odd)}
    assert answers == {(404, '{"detail":"No booking has this reference and token."}')}
    assert {r.headers["cache-control"] for r in (wrong_token, unknown)} == {"no-store"}


def test_reading_a_booking_changes_nothing(client):
    made_booking = made(client)
    before = snapshot()
    for _ in range(3):
        assert details(client, made_booking).status_code == 200
    client.get("/bookings/ZZZZZZZZ", headers=bearer("nope"))
    assert snapshot() == before


def test_the_reference_is_read_in_any_case(client):
    made_booking = made(client)
    lower = client.get(f"/bookings/{made_booking['reference'].lower()}",
                       headers=bearer(made_booking["token"]))
    assert lower.status_code == 200
    assert lower.json()["reference"] == made_booking["reference"]


# -- POST /bookings/{reference}/cancel -------------------------------------------------


def test_cancel_frees_the_slot_in_the_same_transaction(client):
    made_booking = made(client, 5)
    assert 5 not in free_ids(client)
    response = cancel(client, made_booking, reason="Found another time")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] == "2026-11-20T10:00:00-05:00"
    assert body["slot"]["id"] == 5
    assert (body["slot"]["is_booked"], body["slot"]["booked_by_email"]) == (False, None)

    slot = stored_slot(5)
    assert (slot.is_booked, slot.booked_by_email) == (False, None)
    row = stored_booking(made_booking["reference"])
    assert (row.status, row.sequence, row.cancel_reason, row.cancelled_by) == (
        "cancelled", 1, "Found another time", "lead")
    assert 5 in free_ids(client)
    assert details(client, made_booking).json()["status"] == "cancelled"  # the token still reads it
    assert book(client, 5, "next@example.com").status_code == 200  # and someone else can book it


def test_cancelling_again_is_200_with_the_same_state(client, clock):
    made_booking = made(client, 5)
    first = cancel(client, made_booking)
    before = snapshot()
    clock.now += timedelta(hours=1)
    again = cancel(client, made_booking, reason="twice")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert snapshot() == before  # sequence, cancelled_at and reason unchanged


def test_a_cancelled_booking_never_shows_who_booked_its_slot_next(client):
    made_booking = made(client, 5, "first@example.com")
    first = cancel(client, made_booking)
    made(client, 5, "next@example.com")
    shown = details(client, made_booking)
    assert shown.status_code == 200
    assert "next@example.com" not in shown.text
    assert shown.json()["slot"] == first.json()["slot"]
    again = cancel(client, made_booking)
    assert again.json() == first.json()  # the same state, still
    assert "next@example.com" not in again.text


def test_cancel_without_a_body_and_with_an_empty_one(client):
    first, second = made(client, 1), made(client, 2, "b@example.com")
    response = client.post(f"/bookings/{first['reference']}/cancel", headers=bearer(first["token"]))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    response = client.post(f"/bookings/{second['reference']}/cancel",
                           headers=bearer(second["token"]), json={})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_a_reason_over_500_characters_is_422(client):
    made_booking = made(client)
    before = snapshot()
    response = cancel(client, made_booking, reason="r" * 501)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]
    assert snapshot() == before
    assert cancel(client, made_booking, reason="r" * 500).status_code == 200


def test_a_meeting_that_has_started_cannot_be_cancelled(client, clock):
    made_booking = made(client, 1)
    clock.now = MONDAY_1410
    before = snapshot()
    response = cancel(client, made_booking)
    assert response.status_code == 409
    assert "already started" in response.json()["detail"]
    assert snapshot() == before
    assert stored_booking(made_booking["reference"]).status == "confirmed"


def test_cancel_needs_the_token(client):
    made_booking = made(client)
    path = f"/bookings/{made_booking['reference']}/cancel"
    assert client.post(path).status_code == 401
    assert client.post(path).headers["www-authenticate"] == "Bearer"
    wrong = client.post(path, headers=bearer("wrong"))
    unknown = client.post("/bookings/ZZZZZZZZ/cancel", headers=bearer(made_booking["token"]))
    assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
    assert wrong.status_code == 404
    assert stored_booking(made_booking["reference"]).status == "confirmed"


# -- POST /bookings/{reference}/reschedule ----------------------------------------------


def test_reschedule_moves_the_booking_and_frees_the_old_slot(client):
    made_booking = made(client, 2, name="Jane")
    response = reschedule(client, made_booking, 9)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["reference"] == made_booking["reference"]
    assert body["status"] == "confirmed"
    assert body["slot"]["id"] == 9 and body["slot"]["booked_by_email"] == "lead@example.com"
    row = stored_booking(made_booking["reference"])
    assert (row.slot_id, row.sequence, row.token_hash) == (9, 1, sha256(made_booking["token"]))
    old, new = stored_slot(2), stored_slot(9)
    assert (old.is_booked, old.booked_by_email) == (False, None)
    assert (new.is_booked, new.booked_by_email) == (True, "lead@example.com")
    assert 2 in free_ids(client) and 9 not in free_ids(client)
    assert details(client, made_booking).json()["slot"]["id"] == 9  # same token

    assert reschedule(client, made_booking, 10).status_code == 200
    assert stored_booking(made_booking["reference"]).sequence == 2


@pytest.mark.parametrize("case", ["booked", "held", "started", "unknown", "too big"])
def test_reschedule_to_a_slot_that_cannot_be_taken_changes_nothing(client, clock, case):
    made_booking = made(client, 5)
    target = {"booked": 6, "held": 7, "started": 1, "unknown": 999, "too big": 2**40}[case]
    if case == "booked":
        made(client, 6, "other@example.com")
    if case == "held":
        assert hold(client, 7).status_code == 201
    if case == "started":
        clock.now = MONDAY_1410
    before = snapshot()
    response = reschedule(client, made_booking, target)
    expected = {"booked": (409, "already booked"), "held": (409, HELD),
                "started": (409, "already started"), "unknown": (404, "does not exist"),
                "too big": (404, "does not exist")}[case]
    assert response.status_code == expected[0]
    assert expected[1] in response.json()["detail"]
    assert snapshot() == before


def test_reschedule_to_a_held_slot_with_its_hold_token(client):
    made_booking = made(client, 5)
    held = hold(client, 7).json()
    other_hold = hold(client, 8).json()
    wrong = reschedule(client, made_booking, 7, hold_token=other_hold["hold_token"])
    assert wrong.status_code == 409 and HELD in wrong.json()["detail"]
    response = reschedule(client, made_booking, 7, hold_token=held["hold_token"])
    assert response.status_code == 200
    slot = stored_slot(7)
    assert (slot.is_booked, slot.held_until, slot.hold_token_hash) == (True, None, None)


def test_a_cancelled_booking_cannot_be_rescheduled(client):
    made_booking = made(client, 5)
    cancel(client, made_booking)
    before = snapshot()
    response = reschedule(client, made_booking, 6)
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]
    assert snapshot() == before


def test_a_meeting_that_has_started_cannot_be_rescheduled(client, clock):
    made_booking = made(client, 1)
    clock.now = MONDAY_1410
    before = snapshot()
    response = reschedule(client, made_booking, 6)
    assert response.status_code == 409
    assert "already started" in response.json()["detail"]
    assert snapshot() == before


def test_reschedule_needs_the_token(client):
    made_booking = made(client, 5)
    path = f"/bookings/{made_booking['reference']}/reschedule"
    missing = client.post(path, json={"slot_id": 6})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post(path, json={"slot_id": 6}, headers=bearer("wrong"))
    unknown = client.post("/bookings/ZZZZZZZZ/reschedule", json={"slot_id": 6},
                          headers=bearer(made_booking["token"]))
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert stored_booking(made_booking["reference"]).slot_id == 5


@pytest.mark.parametrize("body", [{}, {"slot_id": "6"}, {"slot_id": 6.0}, {"slot_id": None}])
def test_reschedule_with_a_bad_body_is_422(client, body):
    made_booking = made(client, 5)
    response = client.post(f"/bookings/{made_booking['reference']}/reschedule", json=body,
                           headers=bearer(made_booking["token"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "slot_id"]


def test_reschedule_to_its_own_slot_changes_nothing(client):
    made_booking = made(client, 5)
    before = snapshot()
    response = reschedule(client, made_booking, 5)
    assert response.status_code == 200 and response.json()["slot"]["id"] == 5
    assert snapshot() == before


# -- holds -----------------------------------------------------------------------------


def test_a_hold_takes_the_slot_out_of_availability(client):
    response = hold(client, 3)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"hold_id", "hold_token", "slot", "expires_at"}
    assert body["hold_id"] == 3
    assert body["slot"]["id"] == 3 and body["slot"]["is_booked"] is False
    assert body["expires_at"] == "2026-11-20T10:05:00-05:00"  # SCHEDULER_HOLD_SECONDS=300
    slot = stored_slot(3)
    assert slot.held_until == datetime(2026, 11, 20, 15, 5)
    assert slot.hold_token_hash == sha256(body["hold_token"])
    assert (slot.is_booked, slot.booked_by_email) == (False, None)
    assert 3 not in free_ids(client)


def test_the_hold_lasts_scheduler_hold_seconds(settings, clock):
    with TestClient(create_app(replace(settings, hold_seconds=60), clock)) as client:
        body = hold(client, 3).json()
        assert body["expires_at"] == "2026-11-20T10:01:00-05:00"
        clock.now += timedelta(seconds=59)
        assert 3 not in free_ids(client)
        clock.now += timedelta(seconds=1)
        assert 3 in free_ids(client)


def test_a_held_slot_is_booked_only_with_its_hold_token(client):
    held = hold(client, 3).json()
    other = hold(client, 4).json()
    for fields in ({}, {"hold_token": other["hold_token"]}, {"hold_token": "made-up"}):
        response = book(client, 3, "someone@example.com", **fields)
        assert response.status_code == 409, fields
        assert HELD in response.json()["detail"]
    assert stored_slot(3).is_booked is False
    response = book(client, 3, "holder@example.com", hold_token=held["hold_token"])
    assert response.status_code == 200
    slot = stored_slot(3)
    assert (slot.is_booked, slot.booked_by_email, slot.held_until, slot.hold_token_hash) == (
        True, "holder@example.com", None, None)
    # The hold is spent: its token cannot release the booked slot.
    released = client.delete("/holds/3", headers=bearer(held["hold_token"]))
    assert released.status_code == 404


def test_a_hold_expires_by_itself(client, clock):
    held = hold(client, 3).json()
    clock.now += timedelta(seconds=299)
    assert 3 not in free_ids(client)
    assert book(client, 3, "early@example.com").status_code == 409
    clock.now += timedelta(seconds=1)  # held_until reached: no background job needed
    assert 3 in free_ids(client)
    slot = stored_slot(3)
    assert slot.held_until is not None  # still in the row, but no longer live
    assert client.delete("/holds/3", headers=bearer(held["hold_token"])).status_code == 404
    again = hold(client, 3)
    assert again.status_code == 201  # it can be held again
    clock.now += timedelta(seconds=300)
    assert book(client, 3, "later@example.com").status_code == 200  # or booked without a token


def test_holding_a_booked_held_or_started_slot_is_409(client, clock):
    made(client, 2)
    assert hold(client, 3).status_code == 201
    before = snapshot()
    booked = hold(client, 2)
    assert booked.status_code == 409 and "already booked" in booked.json()["detail"]
    held = hold(client, 3)
    assert held.status_code == 409 and HELD in held.json()["detail"]
    clock.now = MONDAY_1410
    started = hold(client, 1)
    assert started.status_code == 409 and "already started" in started.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("body, status", [
    ({"slot_id": 999}, 404), ({"slot_id": 0}, 404), ({"slot_id": 2**63}, 404),
    ({"slot_id": "1"}, 422), ({}, 422), ({"slot_id": True}, 422),
])
def test_holding_an_unknown_slot_or_a_bad_body(client, body, status):
    before = snapshot()
    response = client.post("/holds", json=body)
    assert response.status_code == status
    assert response.json()["detail"]
    assert snapshot() == before


def test_releasing_a_hold_frees_the_slot(client):
    held = hold(client, 3).json()
    response = client.delete(f"/holds/{held['hold_id']}", headers=bearer(held["hold_token"]))
    assert response.status_code == 204
    assert response.content == b""
    slot = stored_slot(3)
    assert (slot.held_until, slot.hold_token_hash) == (None, None)
    assert 3 in free_ids(client)
    again = client.delete(f"/holds/{held['hold_id']}", headers=bearer(held["hold_token"]))
    assert again.status_code == 404


def test_releasing_needs_the_hold_token(client):
    held = hold(client, 3).json()
    other = hold(client, 4).json()
    before = snapshot()
    missing = client.delete("/holds/3")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    answers = [
        client.delete("/holds/3", headers=bearer(other["hold_token"])),  # another hold's token
        client.delete("/holds/3", headers=bearer("made-up")),
        client.delete("/holds/999", headers=bearer(held["hold_token"])),
        client.delete("/holds/5", headers=bearer(held["hold_token"])),  # a slot with no hold
        client.delete(f"/holds/{2**63}", headers=bearer(held["hold_token"])),
    ]
    assert {(r.status_code, r.text) for r in answers} == {
        (404, '{"detail":"No live hold has this id and token."}')}
    assert snapshot() == before
    assert 3 not in free_ids(client)


# -- Idempotency-Key ---------------------------------------------------------------------


def key(value: str) -> dict:
    return {"Idempotency-Key": value}


def test_a_retried_booking_gets_the_first_answer_and_the_same_token(client):
    first = book(client, 3, headers=key("k-1"), name="Jane")
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    retry = book(client, 3, headers=key("k-1"), name="Jane")
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["cache-control"] == "no-store"
    assert retry.content == first.content
    with session():
        assert Booking.select().count() == 1
    made_booking = retry.json()["booking"]
    assert made_booking["token"] == first.json()["booking"]["token"]
    assert details(client, made_booking).status_code == 200  # the replayed token works
    assert cancel(client, made_booking).status_code == 200


def test_the_stored_answer_holds_no_token(client):
    first = book(client, 3, headers=key("k-1")).json()
    with session():
        stored = bytes(IdempotencyKey.get().body)
        keys = [row.key for row in IdempotencyKey.select()]
    assert first["booking"]["token"].encode() not in stored
    assert keys == [sha256("k-1")]  # the key itself is stored hashed too


def test_a_stored_409_is_replayed_even_once_the_slot_is_free(client):
    taken = made(client, 3, "first@example.com")
    refused = book(client, 3, "second@example.com", headers=key("k-409"))
    assert refused.status_code == 409
    cancel(client, taken)  # slot 3 is free now...
    retry = book(client, 3, "second@example.com", headers=key("k-409"))
    assert retry.status_code == 409  # ...but the retry gets the first answer
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == refused.json()
    assert stored_slot(3).is_booked is False
    assert book(client, 3, "second@example.com", headers=key("k-new")).status_code == 200


def test_the_same_key_with_another_body_is_422(client):
    assert book(client, 3, headers=key("k-1")).status_code == 200
    before = snapshot()
    for fields in ({"slot_id": 4}, {"email": "other@example.com"}, {"name": "Someone"}):
        body = {"slot_id": 3, "email": "lead@example.com", **fields}
        response = client.post("/book", json=body, headers=key("k-1"))
        assert response.status_code == 422, fields
        assert response.json()["detail"].startswith(REUSED)
    assert snapshot() == before


def test_keys_belong_to_their_endpoint(client):
    held = hold(client, 3, headers=key("shared")).json()
    booked = book(client, 3, headers=key("shared"), hold_token=held["hold_token"])
    assert booked.status_code == 200 and "idempotent-replayed" not in booked.headers


def test_a_quoted_key_is_the_same_key(client):
    first = book(client, 3, headers=key('"k-quoted"'))
    retry = book(client, 3, headers=key("k-quoted"))
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content


@pytest.mark.parametrize("value", ["", '""', '"', "x" * 256, "tab\there", "caf\u00e9"])
def test_a_malformed_key_is_422_with_the_standard_body(client, value):
    before = snapshot()
    response = client.post("/book", json={"slot_id": 3, "email": "lead@example.com"},
                           headers=[("Idempotency-Key", value.encode("utf-8"))])
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert snapshot() == before


def test_the_longest_key_and_a_quoted_one_are_accepted(client):
    assert book(client, 3, headers=key("x" * 255)).status_code == 200
    assert book(client, 4, headers=key('"' + "y" * 255 + '"')).status_code == 200
    assert book(client, 5, headers=key("with space and !~")).status_code == 200


def test_keys_are_kept_24_hours_then_purged(client, clock):
    first = book(client, 3, headers=key("k-day"))
    clock.now += timedelta(hours=23, minutes=59)
    assert book(client, 3, headers=key("k-day")).headers["idempotent-replayed"] == "true"
    clock.now = datetime(2026, 11, 21, 15, 0, 1, tzinfo=UTC)  # just over 24 h after
    late = book(client, 3, headers=key("k-day"))
    assert "idempotent-replayed" not in late.headers
    assert late.status_code == 409  # processed again: the slot is booked (by the first)
    assert first.status_code == 200
    with session():
        rows = list(IdempotencyKey.select().tuples())
    assert len(rows) == 1 and rows[0][-1] == datetime(2026, 11, 21, 15, 0, 1)  # the old one purged


def test_expired_keys_of_other_requests_are_purged(client, clock):
    book(client, 3, headers=key("old-1"))
    hold(client, 4, headers=key("old-2"))
    clock.now += timedelta(hours=25)
    hold(client, 5, headers=key("new"))
    with session():
        assert IdempotencyKey.select().count() == 1


def test_a_retried_hold_gets_the_same_hold_token(client):
    first = hold(client, 3, headers=key("h-1"))
    retry = hold(client, 3, headers=key("h-1"))
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    token = retry.json()["hold_token"]
    assert client.delete("/holds/3", headers=bearer(token)).status_code == 204


def test_a_retried_reschedule_moves_once(client):
    made_booking = made(client, 3)
    first = reschedule(client, made_booking, 4, headers=key("r-1"))
    retry = reschedule(client, made_booking, 4, headers=key("r-1"))
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert stored_booking(made_booking["reference"]).sequence == 1
    other = reschedule(client, made_booking, 5, headers=key("r-1"))
    assert other.status_code == 422 and other.json()["detail"].startswith(REUSED)


def test_a_retried_reschedule_needs_the_bookings_token(client):
    """The stored answer shows the booking: a retry without its token must not read it."""
    made_booking = made(client, 3, name="Jane")
    assert reschedule(client, made_booking, 4, headers=key("r-1")).status_code == 200
    stranger = client.post(f"/bookings/{made_booking['reference']}/reschedule",
                           json={"slot_id": 4}, headers={**bearer("guess"), **key("r-1")})
    assert stranger.status_code == 422  # another token: another request, never the replay
    assert stranger.json()["detail"].startswith(REUSED)
    assert "Jane" not in stranger.text and "lead@example.com" not in stranger.text
    fresh = client.post(f"/bookings/{made_booking['reference']}/reschedule",
                        json={"slot_id": 5}, headers={**bearer("guess"), **key("r-2")})
    assert fresh.status_code == 404


# -- SCHEDULER_MAX_UPCOMING_PER_EMAIL ---------------------------------------------------------


@pytest.fixture
def limited(settings, clock):
    with TestClient(create_app(replace(settings, max_upcoming_per_email=1), clock)) as client:
        yield client


def test_one_upcoming_booking_per_email_and_a_hint_to_reschedule(limited):
    made_booking = made(limited, 3, "Lead@Example.com")
    for email in ("Lead@Example.com", "lead@example.com", "LEAD@EXAMPLE.COM"):
        response = book(limited, 6, email)
        assert response.status_code == 409, email
        detail = response.json()["detail"]
        assert "reschedule" in detail
        # It does not tell when the booked meeting is.
        for revealing in ("2026", "10:00", "15:00", "Monday", "slot 3", "Slot 3", "3 "):
            assert revealing not in detail
    assert stored_slot(6).is_booked is False
    assert book(limited, 6, "another@example.com").status_code == 200
    assert reschedule(limited, made_booking, 7).status_code == 200  # moving is not booking


def test_the_limit_counts_only_upcoming_confirmed_bookings(limited, clock):
    first = made(limited, 3)
    cancel(limited, first)
    second = made(limited, 1)  # after a cancel, the lead may book again
    assert book(limited, 5).status_code == 409
    clock.now = MONDAY_1410  # the meeting of slot 1 has started: no longer upcoming
    assert book(limited, 5).status_code == 200
    assert second["reference"]


def test_no_limit_by_default(client):
    for slot_id in range(1, 6):
        assert book(client, slot_id).status_code == 200


def test_a_higher_limit(settings, clock):
    with TestClient(create_app(replace(settings, max_upcoming_per_email=2), clock)) as client:
        assert [book(client, i).status_code for i in (1, 2, 3)] == [200, 200, 409]
        assert "2 upcoming meetings" in book(client, 4).json()["detail"]


# -- /docs ---------------------------------------------------------------------------------


ENDPOINTS = {
    ("post", "/book"): {"200", "404", "409", "422", "503"},
    ("get", "/bookings/{reference}"): {"200", "401", "404", "503"},
    ("post", "/bookings/{reference}/cancel"): {"200", "401", "404", "409", "422", "503"},
    ("post", "/bookings/{reference}/reschedule"): {"200", "401", "404", "409", "422", "503"},
    ("post", "/holds"): {"201", "404", "409", "422", "503"},
    ("delete", "/holds/{hold_id}"): {"204", "401", "404", "503"},
}


def test_every_new_endpoint_is_documented_with_its_statuses_and_examples(client):
    spec = client.get("/openapi.json").json()
    for (method, path), statuses in ENDPOINTS.items():
        operation = spec["paths"][path][method]
        assert operation["summary"]
        assert statuses <= set(operation["responses"]), (method, path)
        for status, response in operation["responses"].items():
            assert response["description"]
            if status == "204":
                assert "content" not in response
                continue
            content = response["content"]["application/json"]
            if status == "422":  # FastAPI's standard body (and the reused key's)
                assert "HTTPValidationError" in str(content["schema"]), (method, path)
                continue
            assert "example" in content or "examples" in content, (method, path, status)
    book_op = spec["paths"]["/book"]["post"]
    assert [p["name"] for p in book_op["parameters"]] == ["Idempotency-Key"]
    assert "Idempotency-Key" in [p["name"] for p in
                                 spec["paths"]["/holds"]["post"]["parameters"]]
    assert "Idempotency-Key" in [p["name"] for p in
                                 spec["paths"]["/bookings/{reference}/reschedule"]["post"]
                                 ["parameters"]]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/bookings/{reference}"]["get"]["security"] == [{"HTTPBearer": []}]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# -- the database down ------------------------------------------------------------------------


class Outage:
    """The app's database made unreachable, then back: PostgreSQL through a TCP
    proxy that is cut; SQLite by moving its files away for a directory."""

    def __init__(self, settings, tmp_path):
        self.settings, self.tmp_path, self.proxy = settings, tmp_path, None
        if not settings.database_url.startswith("sqlite"):
            parts = urlsplit(settings.database_url)
            self.proxy = TcpProxy(parts.port or 5432).start()
            host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
            url = urlunsplit(parts._replace(netloc=f"{host}:{self.proxy.port}"))
            self.settings = replace(settings, database_url=url)
        self.path = settings.database_url.removeprefix("sqlite:///")

    def cut(self) -> None:
        if self.proxy:
            self.proxy.cut()
            return
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.rename(self.path + suffix, self.path + suffix + ".away")
        os.mkdir(self.path)  # "unable to open database file"
        database.obj.close_all()  # the pool's open connections would still reach the file

    def restore(self) -> None:
        if self.proxy:
            self.proxy.restore()
            return
        shutil.rmtree(self.path)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix + ".away"):
                os.rename(self.path + suffix + ".away", self.path + suffix)


@pytest.fixture
def outage(settings, clock, tmp_path):
    down = Outage(settings, tmp_path)
    with TestClient(create_app(down.settings, clock)) as client:
        down.client = client
        try:
            yield down
        finally:
            if down.proxy is None and os.path.isdir(down.path):
                down.restore()  # the test failed while the database was away
    if down.proxy:
        down.proxy.cut()


def test_the_database_down_is_503_everywhere_and_nothing_is_stored(outage):
    client = outage.client
    made_booking = made(client, 2)
    held = hold(client, 4).json()
    before = snapshot()
    outage.cut()
    calls = {
        "book": lambda: book(client, 3, headers=key("k-down")),
        "hold": lambda: hold(client, 5, headers=key("h-down")),
        "release": lambda: client.delete("/holds/4", headers=bearer(held["hold_token"])),
        "details": lambda: details(client, made_booking),
        "cancel": lambda: cancel(client, made_booking),
        "reschedule": lambda: reschedule(client, made_booking, 6, headers=key("r-down")),
        "availability": lambda: client.get("/availability"),
    }
    for name, call in calls.items():
        response = call()
        assert response.status_code == 503, (name, response.text)
        assert response.json()["detail"], name
        assert response.headers["retry-after"] == "5", name
    outage.restore()
    assert snapshot() == before
    # A 503 is not stored: the retry with the same key runs.
    retry = book(client, 3, headers=key("k-down"))
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    assert reschedule(client, made_booking, 6, headers=key("r-down")).status_code == 200
    assert details(client, made_booking).json()["slot"]["id"] == 6
