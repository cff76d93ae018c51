"""Log lines (text or JSON) and the X-Request-ID that ties a request's lines together."""

from __future__ import annotations

import json
import logging
import re

import pytest
from support import Server, exchange

from scheduler_app.logs import JsonFormatter, RequestIdFilter, TextFormatter, request_id

GENERATED = re.compile(r"[0-9a-f]{32}")


def _record(**extra) -> logging.LogRecord:
    record = logging.LogRecord("scheduler_app.booking", logging.INFO, __file__, 1,
                               "booking slot=%s", (4,), None)
    record.__dict__.update(extra)
    RequestIdFilter().filter(record)
    return record


def test_json_lines_carry_the_request_id_and_the_booking_fields():
    token = request_id.set("req-1")
    try:
        line = JsonFormatter().format(_record(slot_id=4, outcome="booked"))
    finally:
        request_id.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.pop("time").endswith("+00:00")
    assert entry == {"level": "INFO", "logger": "scheduler_app.booking",
                     "message": "booking slot=4", "request_id": "req-1",
                     "slot_id": 4, "outcome": "booked"}


def test_text_lines_end_with_the_request_id_when_there_is_one():
    assert TextFormatter().format(_record()).endswith(" INFO scheduler_app.booking: booking slot=4")
    token = request_id.set("req-2")
    try:
        assert TextFormatter().format(_record()).endswith("booking slot=4 request_id=req-2")
    finally:
        request_id.reset(token)


@pytest.mark.parametrize(("sent", "kept"), [
    ("3f2a9c0e-5b1d-4e8f-9a7b-1c2d3e4f5a6b", True),
    ("nginx.0af3:c1/x+y=", True),
    ("x" * 128, True),
    ("x" * 129, False),
    ("two words", False),
    ('quote"d', False),
    ("", False),
])
def test_a_sane_request_id_is_kept_and_any_other_replaced(client, sent, kept):
    response = client.get("/health", headers={"X-Request-ID": sent})
    returned = response.headers["x-request-id"]
    assert returned == sent if kept else GENERATED.fullmatch(returned)


def test_every_response_gets_a_request_id_even_a_refused_one(client):
    ids = {
        client.get("/availability").headers["x-request-id"],
        client.post("/book", json={"slot_id": 1}).headers["x-request-id"],  # 422
        client.post("/book", content=b"x" * 20_000,
                    headers={"Content-Type": "application/json"}).headers["x-request-id"],  # 413
        client.get("/nowhere").headers["x-request-id"],  # 404
    }
    assert len(ids) == 4 and all(GENERATED.fullmatch(i) for i in ids)


def _served(tmp_path, log_format: str | None, workers: int = 2) -> tuple[Server, dict, dict]:
    env = {"SCHEDULER_LOG_FORMAT": log_format} if log_format else {}
    server = Server(f"sqlite:///{tmp_path / 'x.db'}", workers=workers, env=env).start()
    try:
        server.wait_ready()
        status, headers, _ = exchange(server.port, "POST", "/book",
                                      {"slot_id": 3, "email": "lead@example.com"},
                                      headers={"X-Request-ID": "lead-42"})
        assert status == 200 and headers["x-request-id"] == "lead-42"
        _, generated, _ = exchange(server.port, "GET", "/ready")
    finally:
        server.stop()
    return server, headers, generated


def test_json_logs_are_one_object_per_line_with_the_request_id(tmp_path):
    server, _, ready = _served(tmp_path, "json")
    entries = [json.loads(line) for line in server.output.splitlines()]  # every line parses
    assert {"time", "level", "logger", "message", "request_id"} <= set(entries[0])
    [booking] = [e for e in entries if e["logger"] == "scheduler_app.booking"]
    assert booking["request_id"] == "lead-42"
    assert (booking["slot_id"], booking["outcome"], booking["email"]) == (3, "booked", "l***@example.com")
    # The booking's own line stands for uvicorn's access line of the same request.
    assert not [e for e in entries if e["logger"] == "uvicorn.access" and e["path"] == "/book"]
    assert (booking["request_id"], booking["status"]) == ("lead-42", 200)
    [ready_line] = [e for e in entries if e["logger"] == "uvicorn.access" and e["path"] == "/ready"]
    assert ready_line["request_id"] == ready["x-request-id"]
    assert any(e["logger"] == "uvicorn.error" and e["request_id"] is None for e in entries)


def test_text_logs_stay_human_readable_with_the_request_id(tmp_path):
    server, _, _ = _served(tmp_path, None, workers=1)
    [booking] = [line for line in server.output.splitlines() if "scheduler_app.booking" in line]
    assert re.search(
        r"INFO scheduler_app\.booking: booking slot=3 outcome=booked status=200 "
        r"duration_ms=[\d.]+ email=l\*\*\*@example\.com request_id=lead-42$", booking
    ), booking
    assert not server.output.lstrip().startswith("{")


def test_a_served_booking_logs_one_line_not_two(tmp_path):
    server, _, ready = _served(tmp_path, None, workers=1)
    lines = server.output.splitlines()
    assert len([line for line in lines if line.endswith("request_id=lead-42")]) == 1
    assert not [line for line in lines if '"POST /book ' in line]
    # Every other request keeps uvicorn's access line.
    assert [line for line in lines if '"GET /ready ' in line
            and line.endswith(f"request_id={ready['x-request-id']}")]
