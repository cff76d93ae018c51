"""The HTTP API against AC1-AC5 and the issue's rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from support import free_ids, post_book

from scheduler_app.app import create_app
from scheduler_app.models import TimeSlot


# 255 characters, otherwise well formed: one over the limit.
TOO_LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com"
assert len(TOO_LONG_EMAIL) == 255


book = post_book  # book(client, slot_id, email=...) -> the response


def rows() -> list[TimeSlot]:
    with TimeSlot._meta.database.connection_context():
        return list(TimeSlot.select().order_by(TimeSlot.id))


def test_ac1_first_run_seeds_the_next_business_day(client):
    slots = client.get("/availability").json()
    assert len(slots) == 16 == len(rows())
    # Friday 2026-11-20 -> Monday 2026-11-23, 09:00-17:00 New York time, with the offset.
    assert slots[0]["start_time"] == "2026-11-23T09:00:00-05:00"
    assert slots[-1]["end_time"] == "2026-11-23T17:00:00-05:00"
    assert rows()[0].start_time.isoformat() == "2026-11-23T14:00:00"  # stored naive UTC


def test_ac1_startup_does_not_reseed_a_table_with_rows(settings, clock):
    with TestClient(create_app(settings, clock)) as first:
        book(first, 1)
    clock.now += timedelta(days=3)  # another "today": a reseed would add other slots
    with TestClient(create_app(settings, clock)) as second:
        assert len(rows()) == 16
        assert 1 not in free_ids(second)


def test_startup_seeds_seed_days_business_days(settings, clock):
    with TestClient(create_app(replace(settings, seed_days=3), clock)) as client:
        days = {s["start_time"][:10] for s in client.get("/availability").json()}
    assert days == {"2026-11-23", "2026-11-24", "2026-11-25"}


def test_ac2_availability_lists_only_free_slots_in_order(client):
    book(client, 3)
    slots = client.get("/availability").json()
    assert [s["id"] for s in slots] == [i for i in range(1, 17) if i != 3]
    assert all(s["is_booked"] is False and s["booked_by_email"] is None for s in slots)
    assert set(slots[0]) == {"id", "start_time", "end_time", "is_booked", "booked_by_email"}
    starts = [s["start_time"] for s in slots]
    assert starts == sorted(starts)


def test_availability_hides_slots_that_have_started(client, clock):
    clock.now = clock.now.replace(day=23, hour=15, minute=10)  # Monday 10:10 New York
    slots = client.get("/availability").json()
    assert slots[0]["start_time"] == "2026-11-23T10:30:00-05:00"
    assert len(slots) == 13


def test_ac3_booking_updates_the_row_and_leaves_availability(client):
    response = book(client, 5, "Lead@Example.com")
    assert response.status_code == 200
    body = response.json()
    assert body["message"]
    assert body["slot"]["id"] == 5
    assert body["slot"]["is_booked"] is True
    assert body["slot"]["booked_by_email"] == "Lead@example.com"  # domain normalised
    assert body["slot"]["start_time"] == "2026-11-23T11:00:00-05:00"
    row = rows()[4]
    assert (row.id, row.is_booked, row.booked_by_email) == (5, True, "Lead@example.com")
    assert 5 not in free_ids(client)


def test_ac4_booking_a_booked_slot_is_a_conflict(client):
    assert book(client, 2, "first@example.com").status_code == 200
    response = book(client, 2, "second@example.com")
    assert response.status_code == 409
    assert response.json() == {"detail": "Slot 2 is already booked."}
    assert rows()[1].booked_by_email == "first@example.com"


def test_booking_a_started_slot_is_a_conflict_with_its_own_message(client, clock):
    clock.now = clock.now.replace(day=23, hour=14, minute=5)  # Monday 09:05 New York
    response = book(client, 1)
    assert response.status_code == 409
    assert "already started" in response.json()["detail"]
    assert rows()[0].is_booked is False


@pytest.mark.parametrize("slot_id", [0, -1, 17, 2**31 - 1, 2**31, 2**63, 10**40])
def test_ac5_unknown_slot_is_not_found(client, slot_id):
    response = book(client, slot_id)
    assert response.status_code == 404
    assert response.json() == {"detail": f"Slot {slot_id} does not exist."}


@pytest.mark.parametrize(
    "body",
    [
        {"email": "lead@example.com"},
        {"slot_id": 1},
        {"slot_id": "1", "email": "lead@example.com"},
        {"slot_id": 1.5, "email": "lead@example.com"},
        {"slot_id": True, "email": "lead@example.com"},
        {"slot_id": None, "email": "lead@example.com"},
        {"slot_id": 1, "email": ""},
        {"slot_id": 1, "email": "not-an-email"},
        {"slot_id": 1, "email": "two words@example.com"},
        {"slot_id": 1, "email": "Lead <lead@example.com>"},
        {"slot_id": 1, "email": TOO_LONG_EMAIL},
        {"slot_id": 1, "email": 42},
        [1, "lead@example.com"],
    ],
)
def test_invalid_bodies_are_422_and_book_nothing(client, body):
    response = client.post("/book", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert not any(r.is_booked for r in rows())


def test_malformed_json_is_422(client):
    response = client.post("/book", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "detail" in response.json()


def test_internationalised_email_and_extra_fields_are_accepted(client):
    response = client.post(
        "/book", json={"slot_id": 4, "email": "josé@exämple.de", "utm_source": "ad"}
    )
    assert response.status_code == 200
    assert rows()[3].booked_by_email == "josé@exämple.de"


def test_unknown_path_is_json(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_concurrent_http_bookings_of_one_slot_one_winner(client, run_together):
    results = run_together(20, lambda i: book(client, 7, f"lead{i}@example.com"))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 19
    winner = next(r for r in results if r.status_code == 200).json()["slot"]["booked_by_email"]
    assert rows()[6].booked_by_email == winner


def test_openapi_documents_every_status(client):
    spec = client.get("/openapi.json").json()
    book_op = spec["paths"]["/book"]["post"]
    assert {"200", "404", "409", "422"} <= set(book_op["responses"])
    assert book_op["responses"]["409"]["content"]["application/json"]["example"]["detail"]
    availability = spec["paths"]["/availability"]["get"]["responses"]["200"]
    assert availability["content"]["application/json"]["schema"]["type"] == "array"
    assert client.get("/docs").status_code == 200
