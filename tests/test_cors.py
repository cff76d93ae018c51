"""CORS: only the configured origins may call the API from a browser, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from scheduler_app.app import create_app

PAGE = "https://www.example.com"
FOREIGN = "https://evil.example.net"


@pytest.fixture
def cors_client(settings, clock):
    """``cors_client(*origins)``: a TestClient over the app with SCHEDULER_CORS_ORIGINS set."""
    clients = []

    def make(*origins: str) -> TestClient:
        client = TestClient(create_app(replace(settings, cors_origins=origins), clock))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def preflight(client, origin, method="POST", headers="content-type"):
    return client.options(
        "/book",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def book(client, origin, slot_id=1):
    return client.post(
        "/book", json={"slot_id": slot_id, "email": "lead@example.com"}, headers={"Origin": origin}
    )


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def test_an_allowed_origin_may_list_and_book(cors_client):
    client = cors_client(PAGE, "http://127.0.0.1:8080")
    listed = client.get("/availability", headers={"Origin": PAGE})
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == PAGE
    assert "Origin" in listed.headers["vary"]

    allowed = preflight(client, PAGE)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == PAGE
    assert set(allowed.headers["access-control-allow-methods"].split(", ")) == {
        "GET", "POST", "DELETE", "OPTIONS"}
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers

    booked = book(client, PAGE)
    assert booked.status_code == 200
    assert booked.headers["access-control-allow-origin"] == PAGE
    assert "access-control-allow-credentials" not in booked.headers


def test_errors_carry_the_headers_too_so_the_page_can_read_them(cors_client):
    client = cors_client(PAGE)
    book(client, PAGE, slot_id=1)
    for response in (
        book(client, PAGE, slot_id=1),  # 409
        book(client, PAGE, slot_id=999),  # 404
        client.post("/book", json={"slot_id": 2, "email": "nope"}, headers={"Origin": PAGE}),  # 422
        client.post("/book", content=b"x" * 20_000, headers={"Origin": PAGE}),  # 413
    ):
        assert response.status_code in {404, 409, 413, 422}
        assert response.headers["access-control-allow-origin"] == PAGE
        assert "detail" in response.json()


def test_a_foreign_origin_gets_no_cors_headers(cors_client):
    client = cors_client(PAGE)
    listed = client.get("/availability", headers={"Origin": FOREIGN})
    assert listed.status_code == 200  # the browser, not the server, withholds it from the page
    assert cors_headers(listed) == {}

    refused = preflight(client, FOREIGN)
    assert refused.status_code == 400
    assert cors_headers(refused) == {}
    assert refused.json() == {"detail": "Cross-origin request refused: origin not allowed."}

    # An origin differing only in scheme or port is another origin.
    for near in ("http://www.example.com", "https://www.example.com:8443"):
        assert cors_headers(client.get("/availability", headers={"Origin": near})) == {}


def test_only_the_widgets_methods_and_headers_are_allowed(cors_client):
    client = cors_client(PAGE)
    for method in ("PUT", "PATCH"):
        assert preflight(client, PAGE, method=method).json()["detail"] == (
            "Cross-origin request refused: method not allowed."
        )
    refused = preflight(client, PAGE, headers="content-type, x-api-key")
    assert refused.status_code == 400
    assert cors_headers(refused) == {}
    # What the widget sends: a Bearer token (holds, Add to calendar), an
    # Idempotency-Key (booking), DELETE (giving a hold back).
    allowed = preflight(client, PAGE, method="DELETE", headers="authorization")
    assert allowed.status_code == 200
    allowed = preflight(client, PAGE, headers="content-type, authorization, idempotency-key")
    assert allowed.status_code == 200
    assert {"authorization", "idempotency-key"} <= {
        h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
    assert "access-control-allow-credentials" not in allowed.headers


def test_a_page_holds_books_with_a_key_and_releases_across_origins(cors_client):
    client = cors_client(PAGE)
    origin = {"Origin": PAGE}
    held = client.post("/holds", json={"slot_id": 1}, headers=origin)
    assert held.status_code == 201
    assert held.headers["access-control-allow-origin"] == PAGE
    hold = held.json()
    released = client.delete(f"/holds/{hold['hold_id']}",
                             headers={**origin, "Authorization": f"Bearer {hold['hold_token']}"})
    assert released.status_code == 204
    assert released.headers["access-control-allow-origin"] == PAGE
    booked = client.post("/book", json={"slot_id": 1, "email": "lead@example.com"},
                         headers={**origin, "Idempotency-Key": "k-1"})
    assert booked.status_code == 200
    assert booked.headers["access-control-allow-origin"] == PAGE
    booking = booked.json()["booking"]
    shown = client.get(f"/bookings/{booking['reference']}",
                       headers={**origin, "Authorization": f"Bearer {booking['token']}"})
    assert shown.status_code == 200
    assert shown.headers["access-control-allow-origin"] == PAGE


def test_a_star_allows_any_origin_without_credentials(cors_client):
    client = cors_client("*")
    listed = client.get("/availability", headers={"Origin": FOREIGN})
    assert listed.headers["access-control-allow-origin"] == "*"
    allowed = preflight(client, FOREIGN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "*"
    booked = book(client, FOREIGN)
    assert booked.status_code == 200
    assert booked.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in booked.headers


def test_without_configured_origins_there_are_no_cors_headers_at_all(client):
    listed = client.get("/availability", headers={"Origin": PAGE})
    assert listed.status_code == 200
    assert cors_headers(listed) == {}
    options = preflight(client, PAGE)
    assert cors_headers(options) == {}
    assert options.status_code == 405
    booked = book(client, PAGE)
    assert booked.status_code == 200
    assert cors_headers(booked) == {}


def test_an_unexpected_error_is_a_json_500_the_page_can_read(settings, clock):
    """A bug, not a refusal: the answer is still JSON with the request id and the
    CORS headers (so the widget can say the service failed), and the exception
    still reaches the server, which logs its traceback."""
    app = create_app(replace(settings, cors_origins=(PAGE,)), clock)
    now = clock.now
    with TestClient(app, raise_server_exceptions=False) as client:
        clock.now = None  # a clock gone wrong: an error no handler expects
        response = client.get("/availability", headers={"Origin": PAGE, "X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers["x-request-id"] == "bug-1"

    clock.now = now
    with TestClient(app) as client:  # raises what reached the server
        clock.now = None
        with pytest.raises(TypeError):
            client.get("/availability")
