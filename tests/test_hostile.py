"""Hostile input: strangers send whatever they like; each gets a 4xx with a JSON
detail, the database is unchanged, and nobody learns another lead's email."""

from __future__ import annotations

import logging

import pytest

from scheduler_app.middleware import mask_email
from scheduler_app.models import TimeSlot

JSON = {"content-type": "application/json"}
VALID = "lead@example.com"


def snapshot() -> list[tuple]:
    with TimeSlot._meta.database.connection_context():
        spec = (TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time, TimeSlot.is_booked,
                TimeSlot.booked_by_email)
        return list(TimeSlot.select(*spec).order_by(TimeSlot.id).tuples())


def body(slot_id="1", email=f'"{VALID}"') -> bytes:
    return f'{{"slot_id": {slot_id}, "email": {email}}}'.encode()


HOSTILE = {
    # ids
    "id 0": (body("0"), JSON, 404),
    "id -1": (body("-1"), JSON, 404),
    "id 2**31": (body(str(2**31)), JSON, 404),
    "id 2**63": (body(str(2**63)), JSON, 404),
    "id 1e3": (body("1e3"), JSON, 422),
    'id "7"': (body('"7"'), JSON, 422),
    "id null": (body("null"), JSON, 422),
    "id true": (body("true"), JSON, 422),
    "id []": (body("[]"), JSON, 422),
    # emails
    "email missing": (b'{"slot_id": 1}', JSON, 422),
    "email empty": (body(email='""'), JSON, 422),
    "email without @": (body(email='"lead.example.com"'), JSON, 422),
    "email 255 chars": (body(email=f'"{"a" * 64}@{"b" * 63}.{"c" * 63}.{"d" * 58}.com"'), JSON, 422),
    "email with space": (body(email='"le ad@example.com"'), JSON, 422),
    "email with NUL": (body(email='"lead\\u0000@example.com"'), JSON, 422),
    "email with newline": (body(email='"lead@example.com\\nBcc: x@evil.io"'), JSON, 422),
    "email SQL": (body(email="\"x'; DROP TABLE time_slots;--@a.io\""), JSON, 422),
    "email a number": (body(email="42"), JSON, 422),
    # bodies
    "not JSON": (b"slot_id=1&email=lead@example.com", JSON, 422),
    "JSON array": (b'[1, "lead@example.com"]', JSON, 422),
    "JSON string": (b'"book me"', JSON, 422),
    "invalid UTF-8": (b'{"slot_id": 1, "email": "\xff\xfe@example.com"}', JSON, 400),
    "text/plain": (body(), {"content-type": "text/plain"}, 422),
    "no content type": (body(), {}, 422),
    "empty body": (b"", JSON, 422),
    "1 MB body": (b'{"slot_id": 1, "email": "' + b"a" * 1_000_000 + b'"}', JSON, 413),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_request_is_refused_and_changes_nothing(client, name):
    content, headers, status = HOSTILE[name]
    before = snapshot()
    response = client.post("/book", content=content, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]
    assert snapshot() == before
    assert client.get("/health").status_code == 200


def test_a_streamed_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(64):
            yield b"x" * 1024  # no Content-Length: sent chunked

    response = client.post("/book", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert "16384 bytes" in response.json()["detail"]


def test_unknown_fields_are_ignored(client):
    response = client.post(
        "/book", json={"slot_id": 1, "email": VALID, "is_booked": False, "id": 9, "admin": True}
    )
    assert response.status_code == 200
    assert snapshot()[0][3:] == (True, VALID)


def test_an_internationalised_address_is_accepted(client):
    response = client.post("/book", json={"slot_id": 2, "email": "用户@例子.广告"})
    assert response.status_code == 200
    assert snapshot()[1][4] == "用户@例子.广告"


def test_nobody_sees_another_leads_email(client, caplog):
    caplog.set_level(logging.INFO, logger="scheduler_app.booking")
    client.post("/book", json={"slot_id": 3, "email": "first.lead@example.com"})
    second = client.post("/book", json={"slot_id": 3, "email": "second.lead@example.com"})
    assert second.status_code == 409
    assert "first.lead" not in second.text
    assert "@" not in client.get("/availability").text
    assert "first.lead" not in caplog.text and "second.lead" not in caplog.text


def test_one_log_line_per_booking_attempt(client, caplog):
    caplog.set_level(logging.INFO, logger="scheduler_app.booking")
    client.post("/book", json={"slot_id": 4, "email": "jane@example.com"})
    client.post("/book", json={"slot_id": 4, "email": "joe@example.com"})
    client.post("/book", json={"slot_id": 999, "email": "joe@example.com"})
    client.post("/book", json={"slot_id": 4, "email": "nope"})
    client.get("/availability")  # not a booking: no line
    records = [r for r in caplog.records if r.name == "scheduler_app.booking"]
    assert [(r.slot_id, r.status, r.outcome, r.email) for r in records] == [
        (4, 200, "booked", "j***@example.com"),
        (4, 409, "conflict", "j***@example.com"),
        (999, 404, "not_found", "j***@example.com"),
        (None, 422, "invalid", None),
    ]
    assert all(isinstance(r.duration_ms, float) and r.duration_ms >= 0 for r in records)
    assert records[0].getMessage().startswith("booking slot=4 outcome=booked status=200")


@pytest.mark.parametrize(
    ("email", "masked"),
    [("jane@example.com", "j***@example.com"), ("x@a.io", "x***@a.io"), ("bad", "***"), (None, None)],
)
def test_mask_email(email, masked):
    assert mask_email(email) == masked
