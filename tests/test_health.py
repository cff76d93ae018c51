"""Liveness and readiness endpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

from peewee import PostgresqlDatabase

from scheduler_app.db import database


def test_health_is_ok(client):
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_counts_the_slots(client):
    client.post("/book", json={"slot_id": 2, "email": "lead@example.com"})
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "slots": {"total": 16, "booked": 1, "free": 15}}


def test_ready_free_excludes_started_slots(client, clock):
    clock.now = clock.now.replace(day=23, hour=15, minute=10)  # Monday 10:10 New York
    assert client.get("/ready").json()["slots"] == {"total": 16, "booked": 0, "free": 13}


def test_not_ready_without_the_table(client):
    with database.connection_context():
        cascade = " CASCADE" if isinstance(database.obj, PostgresqlDatabase) else ""
        database.execute_sql(f"DROP TABLE time_slots{cascade}")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"detail": "The time_slots table does not exist."}
    assert client.get("/health").status_code == 200
