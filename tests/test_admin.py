"""The rep's admin API and page over HTTP (scheduler_app/admin.py), on SQLite and
PostgreSQL: access (404 without SCHEDULER_ADMIN_TOKEN, 401 without the token),
every route and status, CSV, CORS, logging, minimum notice and the daily cap
(in process, and under 20 concurrent bookings against a real server).

The clock is Friday 2026-11-20, 10:00 in New York; startup seeds Monday 23 to
Wednesday 25 November (slots 1-16, 17-32 and 33-48, 09:00-17:00).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from receivers import Mailbox
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode
from support import Server, exchange, free_ids, made

from scheduler_app import admin as admin_module
from scheduler_app.app import create_app
from scheduler_app.db import session
from scheduler_app.errors import ConfigError
from scheduler_app.logs import RequestIdFilter
from scheduler_app.models import OutboxMessage
from scheduler_app.notify import relay
from scheduler_app.rep_calendar import CSV_COLUMNS
from scheduler_app.query_window import WINDOW_ERROR
from scheduler_app.settings import Settings
from scheduler_app.web import DEMO_CSP

TOKEN = "rep-admin-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NY = ZoneInfo("America/New_York")
PAGE_ORIGIN = "https://www.example.com"
UNAUTHORIZED = {"detail": "This needs the admin token as Authorization: Bearer."}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=NY)


@pytest.fixture
def admin_app(settings, clock):
    """``admin_app(**changes)``: a TestClient over the app with the admin token set
    (and ``changes`` to the settings); three days seeded."""
    clients = []

    def make(**changes) -> TestClient:
        values = {"admin_token": TOKEN, "seed_days": 3, **changes}
        client = TestClient(create_app(replace(settings, **values), clock))
        clients.append(client.__enter__())
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def admin(admin_app):
    return admin_app()


def admin_routes() -> list[tuple[str, str]]:
    """(method, path) of every /admin route, with its parameters filled in."""
    found = []
    for route in admin_module.router.routes + admin_module.pages.routes:
        path = getattr(route, "path", "")
        if path.startswith("/admin"):
            concrete = (path.replace("{reference}", "NOSUCH00").replace("{closure_id}", "1")
                        .replace("{slot_id}", "1"))
            found += [(method, concrete) for method in sorted(route.methods) if method != "HEAD"]
    return found


API_ROUTES = {("GET", "/admin/bookings"), ("POST", "/admin/bookings/NOSUCH00/cancel"),
              ("GET", "/admin/closures"), ("POST", "/admin/closures"),
              ("DELETE", "/admin/closures/1"), ("POST", "/admin/slots"),
              ("DELETE", "/admin/slots/1")}
PAGE_ROUTES = {("GET", path) for path in admin_module.PAGE_FILES}


book = made  # book(client, slot_id, email=..., **fields) -> the answer's booking part


# -- access --------------------------------------------------------------------------


def test_the_routes_are_the_ones_tested_here(client):
    assert set(admin_routes()) == API_ROUTES | PAGE_ROUTES


def test_without_a_token_every_admin_path_is_absent(client):
    unknown = client.get("/no/such/path")
    paths = admin_routes() + [("GET", "/admin/"), ("GET", "/admin/nothing"),
                                        ("PUT", "/admin/closures")]
    for method, path in paths:
        for headers, body in (({}, None), (AUTH, None), (AUTH, "{not json"),
                              ({"Content-Length": "99999999"}, None)):
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code == 404, (method, path, headers)
            assert response.json() == unknown.json() == {"detail": "Not Found"}
            assert "www-authenticate" not in response.headers
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/admin")]


def test_every_api_call_needs_the_admin_token(admin):
    for method, path in API_ROUTES:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
                        {"Authorization": f"Bearer {TOKEN[:-1]}"}):
            response = admin.request(method, path, headers=headers, content="{not json")
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.headers["cache-control"] == "no-store"
            assert response.json() == UNAUTHORIZED  # the same, whatever was wrong
    # The scheme is case-insensitive (RFC 9110); the token is not.
    assert admin.get("/admin/closures", headers={"Authorization": f"bearer {TOKEN}"}).json() == []
    assert admin.get("/admin/closures",
                     headers={"Authorization": f"Bearer {TOKEN.upper()}"}).status_code == 401


def test_the_page_is_served_without_the_token_under_a_strict_policy(admin):
    for path, (name, media_type) in admin_module.PAGE_FILES.items():
        response = admin.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == media_type
        assert response.headers["content-security-policy"] == DEMO_CSP
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    page = admin.get("/admin").text
    assert 'data-rep-timezone="America/New_York"' in page
    assert '<script src="/admin/admin.js" defer></script>' in page


@pytest.mark.parametrize(("value", "accepted"), [
    ("", None), ("a" * 31, False), ("a" * 32, True), ("a" * 20 + " " + "b" * 20, False),
    ("ü" * 40, False), (TOKEN, True),
])
def test_the_admin_token_setting(value, accepted):
    if accepted is False:
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"SCHEDULER_ADMIN_TOKEN": value})
        assert str(error.value).startswith("SCHEDULER_ADMIN_TOKEN must be at least 32 printable")
        assert value not in str(error.value)
        return
    settings = Settings.from_env({"SCHEDULER_ADMIN_TOKEN": value})
    assert settings.admin_token == (value or None)
    assert TOKEN not in repr(settings)


def test_the_admin_is_in_the_schema_only_with_a_token(admin):
    schema = admin.get("/openapi.json").json()
    paths = {p for p in schema["paths"] if p.startswith("/admin")}
    assert paths == {"/admin/bookings", "/admin/bookings/{reference}/cancel", "/admin/closures",
                     "/admin/closures/{closure_id}", "/admin/slots", "/admin/slots/{slot_id}"}
    assert schema["components"]["securitySchemes"]["AdminToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "SCHEDULER_ADMIN_TOKEN, as `Authorization: Bearer <token>`."}
    for path in paths:
        for operation in schema["paths"][path].values():
            assert operation["security"] == [{"AdminToken": []}]
            assert "401" in operation["responses"]


def test_no_admin_answer_is_open_to_other_origins(admin_app):
    client = admin_app(cors_origins=(PAGE_ORIGIN,))
    for method, path in API_ROUTES | PAGE_ROUTES:
        response = client.request(method, path, headers={**AUTH, "Origin": PAGE_ORIGIN})
        assert not [h for h in response.headers if h.startswith("access-control-")], path
        refused = client.options(path, headers={"Origin": PAGE_ORIGIN,
                                                "Access-Control-Request-Method": method,
                                                "Access-Control-Request-Headers": "authorization"})
        assert refused.status_code == 400
        assert refused.json()["detail"].startswith("Cross-origin request refused")
        assert not [h for h in refused.headers if h.startswith("access-control-")]
    # The widget's API is open to the page as before.
    allowed = client.options("/book", headers={"Origin": PAGE_ORIGIN,
                                               "Access-Control-Request-Method": "POST"})
    assert allowed.headers["access-control-allow-origin"] == PAGE_ORIGIN


# -- bookings -------------------------------------------------------------------------


def test_the_bookings_list_as_json(admin):
    later = book(admin, 20, "later@example.com", name="Late", notes="Hi",
                 timezone="Europe/Paris", source={"utm_source": "news"})
    sooner = book(admin, 3, "sooner@example.com")
    listed = admin.get("/admin/bookings", headers=AUTH)
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    rows = listed.json()
    assert [r["reference"] for r in rows] == [sooner["reference"], later["reference"]]
    assert rows[1] == {
        "reference": later["reference"], "status": "confirmed",
        "slot": {"id": 20, "start_time": "2026-11-24T10:30:00-05:00",
                 "end_time": "2026-11-24T11:00:00-05:00"},
        "email": "later@example.com", "name": "Late", "notes": "Hi",
        "source": {"utm_source": "news"}, "timezone": "Europe/Paris",
        "created_at": "2026-11-20T10:00:00-05:00", "cancelled_at": None, "cancel_reason": None,
        "cancelled_by": None,
    }


def test_the_bookings_list_filters_by_window_and_status(admin):
    monday = book(admin, 1, "a@example.com")
    tuesday = book(admin, 17, "b@example.com")
    admin.post(f"/admin/bookings/{monday['reference']}/cancel", headers=AUTH)

    def refs(**query):
        response = admin.get("/admin/bookings", params=query, headers=AUTH)
        assert response.status_code == 200, response.text
        return [r["reference"] for r in response.json()]

    assert refs() == [tuesday["reference"]]
    assert refs(status="cancelled") == [monday["reference"]]
    assert refs(status="all") == [monday["reference"], tuesday["reference"]]
    assert refs(status="all", to="2026-11-23") == [monday["reference"]]
    assert refs(status="all", **{"from": "2026-11-24T09:00"}) == [tuesday["reference"]]
    assert refs(**{"from": "2026-11-24T14:00:01Z"}) == []
    for query in ({"status": "booked"}, {"from": "tomorrow"}, {"format": "xml"},
                  {"from": "2026-11-24", "to": "2026-11-23"}):
        assert admin.get("/admin/bookings", params=query, headers=AUTH).status_code == 422


def test_the_bookings_as_csv(admin):
    notes = 'Call me, "maybe"\nafter 5'
    book(admin, 2, "o'neil+x@example.com", name="=1+2", notes=notes)
    book(admin, 3, "=cmd@example.com", name="@cmd", notes="-10", source={"utm_campaign": "+win"})
    by_accept = admin.get("/admin/bookings", headers={**AUTH, "Accept": "text/csv"})
    by_query = admin.get("/admin/bookings?format=csv", headers=AUTH)
    for response in (by_accept, by_query):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == \
            'attachment; filename="bookings-2026-11-20.csv"'
        assert response.headers["cache-control"] == "no-store"
    assert by_accept.content == by_query.content
    rows = list(csv.reader(io.StringIO(by_query.text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    first, second = (dict(zip(rows[0], row)) for row in rows[1:])
    assert (first["email"], first["notes"], first["name"]) == (
        "o'neil+x@example.com", notes, "'=1+2")
    assert (second["email"], second["name"], second["notes"], second["utm_campaign"]) == (
        "'=cmd@example.com", "'@cmd", "'-10", "'+win")
    # format=json wins over Accept.
    json_anyway = admin.get("/admin/bookings?format=json", headers={**AUTH, "Accept": "text/csv"})
    assert json_anyway.headers["content-type"] == "application/json"


def test_the_rep_cancels_a_booking(admin, clock):
    made = book(admin, 5)
    assert 5 not in free_ids(admin)
    response = admin.post(f"/admin/bookings/{made['reference'].lower()}/cancel", headers=AUTH,
                          json={"reason": "The rep is ill"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancelled_by"], body["cancel_reason"]) == (
        "cancelled", "rep", "The rep is ill")
    assert 5 in free_ids(admin)  # the slot is free again
    again = admin.post(f"/admin/bookings/{made['reference']}/cancel", headers=AUTH)
    assert again.status_code == 200 and again.json() == body
    token = {"Authorization": f"Bearer {made['token']}"}
    assert admin.get(f"/bookings/{made['reference']}", headers=token).json()["status"] == \
        "cancelled"
    missing = admin.post("/admin/bookings/NOSUCH00/cancel", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No booking has the reference NOSUCH00."}
    too_long = admin.post(f"/admin/bookings/{made['reference']}/cancel", headers=AUTH,
                          json={"reason": "x" * 501})
    assert too_long.status_code == 422
    started = book(admin, 6)
    clock.now = at(23, 11, 40)
    refused = admin.post(f"/admin/bookings/{started['reference']}/cancel", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json() == {"detail": "This meeting has already started and can no longer "
                                        "be cancelled."}


def test_the_lead_is_emailed_when_the_rep_cancels(admin_app, certificate, trust, clock):
    box = Mailbox(*certificate).start()
    try:
        client = admin_app(smtp_url=box.url, mail_from="bookings@example.com",
                           relay_in_serve=False)
        settings = client.app.state.settings
        made = book(client, 4, "lead@example.com")
        client.post(f"/admin/bookings/{made['reference']}/cancel", headers=AUTH,
                    json={"reason": "Double-booked"})
        with session():
            events = [(m.event, m.recipient) for m in OutboxMessage.select().order_by(
                OutboxMessage.id)]
        assert events == [("booking.created", "lead"), ("booking.cancelled", "lead")]
        assert relay.deliver_due(settings, clock) == 2
        [_, cancelled] = box.received
        assert cancelled.rcpt_tos == ["lead@example.com"]
        text = cancelled.message.get_body(("plain",)).get_content()
        assert "is cancelled" in text and made["reference"] in text
    finally:
        box.stop()


# -- closures -------------------------------------------------------------------------


def test_closing_days_and_reopening_them(admin):
    kept = book(admin, 21, "kept@example.com", name="Kept")
    response = admin.post("/admin/closures", headers=AUTH,
                          json={"from": "2026-11-24", "to": "2026-11-25", "reason": "Offsite"})
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("id", "from", "to", "reason", "removed")} == {
        "id": 1, "from": "2026-11-24", "to": "2026-11-25", "reason": "Offsite", "removed": 31}
    assert [c["reference"] for c in body["conflicts"]] == [kept["reference"]]
    assert body["message"] == ("Closed 2026-11-24 to 2026-11-25; 31 free slot(s) taken out. "
                               "1 booked meeting(s) in these days are kept: cancel them if they "
                               "cannot take place.")
    assert free_ids(admin) == list(range(1, 17))
    listed = admin.get("/admin/closures", headers=AUTH).json()
    assert listed == [{k: body[k] for k in ("id", "from", "to", "reason", "created_at",
                                            "conflicts")}]
    gone = admin.delete("/admin/closures/1", headers=AUTH)
    assert gone.status_code == 204 and gone.content == b""
    assert gone.headers["scheduler-notice"] == (
        "Reopened 2026-11-24 to 2026-11-25: the other slots of these days are seeded again by "
        "the next `scheduler-app seed` if the days are within its horizon "
        "(SCHEDULER_SEED_DAYS business days).")
    assert admin.get("/admin/closures", headers=AUTH).json() == []
    missing = admin.delete("/admin/closures/1", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Closure 1 does not exist."})
    assert admin.delete("/admin/closures/99999999999999", headers=AUTH).status_code == 404


@pytest.mark.parametrize("body", [
    {}, {"from": "2026-11-25", "to": "2026-11-24"}, {"from": "2026-11-31"},
    {"from": 20261124}, {"from": "2026-11-24T00:00"}, {"from": "24/11/2026"},
    {"from": "2026-11-24", "to": "2027-11-25"}, {"from": "2026-11-24", "reason": "x" * 501},
])
def test_a_closure_needs_a_day_range(admin, body):
    response = admin.post("/admin/closures", headers=AUTH, json=body)
    assert response.status_code == 422, body
    assert isinstance(response.json()["detail"], list)
    assert admin.get("/admin/closures", headers=AUTH).json() == []


# -- extra times ------------------------------------------------------------------------


def test_opening_extra_times_and_removing_one(admin):
    etag = admin.get("/availability").headers["etag"]
    response = admin.post("/admin/slots", headers=AUTH,
                          json={"start": "2026-11-28T10:00", "end": "2026-11-28T11:00-05:00"})
    assert response.status_code == 201
    assert response.json() == [
        {"id": 49, "start_time": "2026-11-28T10:00:00-05:00",
         "end_time": "2026-11-28T10:30:00-05:00", "is_booked": False, "booked_by_email": None},
        {"id": 50, "start_time": "2026-11-28T10:30:00-05:00",
         "end_time": "2026-11-28T11:00:00-05:00", "is_booked": False, "booked_by_email": None},
    ]
    listed = admin.get("/availability")
    assert listed.headers["etag"] != etag  # the kept list heard of the change
    assert [s["id"] for s in listed.json()][-2:] == [49, 50]
    assert admin.delete("/admin/slots/49", headers=AUTH).status_code == 204
    assert 49 not in free_ids(admin)
    missing = admin.delete("/admin/slots/49", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Slot 49 does not exist."})
    made = book(admin, 50)
    booked = admin.delete("/admin/slots/50", headers=AUTH)
    assert booked.status_code == 409
    assert booked.json() == {"detail": f"Slot 50 is booked (booking {made['reference']}); "
                                       "cancel the booking first."}
    assert admin.post("/holds", json={"slot_id": 48}).status_code == 201
    held = admin.delete("/admin/slots/48", headers=AUTH)
    assert held.status_code == 409 and "held by a visitor" in held.json()["detail"]


def test_extra_times_that_overlap_add_nothing(admin, clock):
    admin.post("/admin/closures", headers=AUTH, json={"from": "2026-11-25"})
    before = free_ids(admin)
    for span, problem in (
        (("2026-11-23T16:00", "2026-11-23T18:00"),
         "the slot at 2026-11-23 16:00 overlaps slot 15 (2026-11-23 16:00-16:30); the slot at "
         "2026-11-23 16:30 overlaps slot 16 (2026-11-23 16:30-17:00)."),
        (("2026-11-25T18:00", "2026-11-25T18:30"),
         "the slot at 2026-11-25 18:00 is on a closed day (closure 1)."),
        (("2026-11-20T08:00", "2026-11-20T09:00"), "the slot at 2026-11-20 08:00 is in the past"),
    ):
        response = admin.post("/admin/slots", headers=AUTH,
                              json={"start": span[0], "end": span[1]})
        assert response.status_code == 409, response.text
        assert response.json()["detail"].startswith("Nothing was added (America/New_York times)")
        assert problem in response.json()["detail"]
    assert free_ids(admin) == before  # 17:00-18:00 was free, and is not added either


@pytest.mark.parametrize("body", [
    {"start": "2026-11-28T10:00", "end": "2026-11-28T10:45"},  # not whole slots
    {"start": "2026-11-28T10:00", "end": "2026-11-28T10:00"},
    {"start": "2026-11-28T10:00", "end": "2026-11-28T09:00"},
    {"start": "2026-11-28T10:00", "end": "2027-11-28T10:00"},  # over 1000 slots
    {"start": "2026-11-28", "end": "2026-11-29"},
    {"start": 1764342000, "end": 1764343800},
    {"start": "tomorrow at ten", "end": "2026-11-28T11:00"},
    {"start": "2026-11-28T10:00"},
])
def test_extra_times_need_a_span_of_whole_slots(admin, body):
    response = admin.post("/admin/slots", headers=AUTH, json=body)
    assert response.status_code == 422, body
    assert isinstance(response.json()["detail"], list)


# -- minimum notice and the daily cap ---------------------------------------------------


def test_minimum_notice_hides_and_refuses_slots_too_soon(admin_app, clock):
    client = admin_app(min_notice_minutes=90)
    clock.now = at(23, 8, 0)  # Monday 08:00: 09:00 and 09:30 start within 90 minutes
    assert free_ids(client)[:2] == [3, 4]
    refused = client.post("/book", json={"slot_id": 2, "email": "lead@example.com"})
    assert refused.status_code == 409
    assert refused.json() == {"detail": "Slot 2 starts in less than 90 minutes and can no longer "
                                        "be booked."}
    assert client.post("/holds", json={"slot_id": 1}).status_code == 409
    assert client.post("/book", json={"slot_id": 3, "email": "lead@example.com"}).status_code \
        == 200
    clock.now = at(23, 8, 31)  # 10:00 comes within the notice: the kept list drops it
    assert free_ids(client)[:1] == [4]


def test_without_notice_every_future_slot_is_listed_and_bookable(admin, clock):
    clock.now = at(23, 8, 59)
    assert free_ids(admin)[:1] == [1]
    assert admin.post("/book", json={"slot_id": 1, "email": "l@example.com"}).status_code == 200


def test_a_full_day_is_not_listed_and_cannot_be_booked(admin_app):
    client = admin_app(max_bookings_per_day=2)
    book(client, 1, "a@example.com")
    book(client, 2, "b@example.com")
    assert free_ids(client) == list(range(17, 49))  # Monday is full
    refused = client.post("/book", json={"slot_id": 3, "email": "c@example.com"})
    assert refused.status_code == 409
    assert refused.json() == {"detail": "Slot 3 is on a day that is fully booked."}
    [first] = client.get("/admin/bookings", headers=AUTH).json()[:1]
    client.post(f"/admin/bookings/{first['reference']}/cancel", headers=AUTH)
    assert free_ids(client)[:3] == [1, 3, 4]  # room again


def test_twenty_concurrent_bookings_of_one_day_against_a_real_server(database_url):
    """Two workers, 20 slots on the next business day, 20 leads at once, a cap of 3."""
    server = Server(database_url, workers=2, env={
        "SCHEDULER_MAX_BOOKINGS_PER_DAY": "3", "SCHEDULER_DAY_START": "08:00",
        "SCHEDULER_DAY_END": "18:00", "SCHEDULER_RELAY": "off"}).start()
    try:
        server.wait_ready()
        status, _, slots = exchange(server.port, "GET", "/availability")
        assert status == 200 and len(slots) == 20
        barrier = threading.Barrier(20)
        answers: list = [None] * 20

        def lead(i: int) -> None:
            barrier.wait()
            answers[i] = exchange(server.port, "POST", "/book",
                                  {"slot_id": slots[i]["id"], "email": f"lead{i}@example.com"},
                                  timeout=30)

        threads = [threading.Thread(target=lead, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(a[0] for a in answers)
        assert statuses == [200] * 3 + [409] * 17, answers
        assert {a[2]["detail"] for a in answers if a[0] == 409} == {
            f"Slot {s['id']} is on a day that is fully booked." for s, a in zip(slots, answers)
            if a[0] == 409}
        assert exchange(server.port, "GET", "/availability")[2] == []
    finally:
        server.stop()


# -- logging and fuzzing ------------------------------------------------------------------


def test_each_admin_change_is_logged_with_its_request_id(admin, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    made = book(admin, 2)
    with caplog.at_level(logging.INFO, logger="scheduler_app.admin"):
        for rid, method, path, body in (
            ("rid-close", "POST", "/admin/closures", {"from": "2026-11-25"}),
            ("rid-reopen", "DELETE", "/admin/closures/1", None),
            ("rid-add", "POST", "/admin/slots", {"start": "2026-11-28T10:00",
                                                 "end": "2026-11-28T10:30"}),
            ("rid-remove", "DELETE", "/admin/slots/10", None),
            ("rid-cancel", "POST", f"/admin/bookings/{made['reference']}/cancel", None),
            ("rid-list", "GET", "/admin/bookings", None),
            ("rid-refused", "GET", "/admin/closures", "no token"),
        ):
            headers = {"X-Request-ID": rid} if body == "no token" else {**AUTH, "X-Request-ID": rid}
            admin.request(method, path, headers=headers,
                          json=body if isinstance(body, dict) else None)
    lines = {(r.request_id, r.levelname, r.getMessage()) for r in caplog.records
             if r.name == "scheduler_app.admin"}
    assert lines == {
        ("rid-close", "INFO", "admin: closed 2026-11-25 to 2026-11-25 (closure 1): 16 free "
                              "slot(s) taken out, 0 booked meeting(s) kept"),
        ("rid-reopen", "INFO", "admin: reopened closure 1 (2026-11-25 to 2026-11-25): 0 kept "
                               "slot(s) free again"),
        ("rid-add", "INFO", "admin: added 1 slot(s), 2026-11-28T15:00:00 to 2026-11-28T15:30:00"),
        ("rid-remove", "INFO", "admin: removed slot 10"),
        ("rid-cancel", "INFO", f"admin: cancelled booking {made['reference']} (slot 2)"),
        ("rid-refused", "WARNING", "admin: refused GET /admin/closures without the admin token"),
    }
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def rule_outside_the_schema(response) -> bool:
    """A 422 for what the schema cannot say: day and span checks that span fields
    (closure ranges, whole slots), impossible dates such as 02-30, and the
    window checks of ``from``/``to``."""
    if response.status_code != 422:
        return False
    detail = response.json().get("detail")
    return isinstance(detail, list) and bool(detail) and all(
        e.get("type") in (WINDOW_ERROR, "value_error") for e in detail)


def test_the_admin_api_conforms_to_its_schema(admin):
    schema = schemathesis.openapi.from_asgi("/openapi.json", admin.app)
    schema.config.generation.update(modes=list(GenerationMode))
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().path.startswith("/admin")]
    assert len(operations) == len(API_ROUTES)
    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=40, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers=AUTH)
            assert response.status_code < 500, response.text
            excluded = [positive_data_acceptance] if rule_outside_the_schema(response) else None
            case.validate_response(response, excluded_checks=excluded)

        check()

