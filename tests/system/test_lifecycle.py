"""Processes starting together, killed, and stopped: nothing duplicated, nothing lost."""

from __future__ import annotations

import signal
import threading
import time

from support import book, reading, request

from scheduler_app.models import TimeSlot


def table(database_url: str) -> list[tuple]:
    with reading(database_url):
        return list(TimeSlot.select().order_by(TimeSlot.id).tuples())


def test_servers_starting_together_on_an_empty_database_seed_once(servers, database_url):
    started = [servers(database_url, workers=1) for _ in range(4)]
    for server in started:
        server.wait_ready()
    rows = table(database_url)
    assert len(rows) == 16
    assert len({row[1] for row in rows}) == 16


def test_workers_starting_together_seed_once(servers, database_url):
    server = servers(database_url, workers=4).wait_ready()
    assert len(table(database_url)) == 16
    assert len(request(server.port, "GET", "/availability")[1]) == 16


def test_acknowledged_bookings_survive_sigkill_and_restart_does_not_reseed(servers, database_url):
    server = servers(database_url, workers=2, env={"SCHEDULER_SEED_DAYS": "2"}).wait_ready()
    acknowledged = {}
    for slot_id in range(1, 33, 3):
        status, body = book(server.port, slot_id, f"lead{slot_id}@example.com")
        assert status == 200
        acknowledged[slot_id] = body["slot"]["booked_by_email"]
    before = table(database_url)
    server.kill_all()

    # Restarted on another day: a reseed would add slots; it must not.
    again = servers(database_url, env={"SCHEDULER_SEED_DAYS": "5"}).wait_ready()
    after = table(database_url)
    assert after == before
    assert {row[0]: row[4] for row in after if row[3]} == acknowledged
    free = request(again.port, "GET", "/availability")[1]
    assert not {s["id"] for s in free} & set(acknowledged)


def test_sigterm_during_bookings_finishes_in_flight_requests(servers, database_url):
    server = servers(database_url, workers=2, env={"SCHEDULER_SEED_DAYS": "5"}).wait_ready()
    outcomes: list[tuple[int, int | None]] = []  # (slot id, status or None if refused)
    stop = threading.Event()

    def lead(first: int) -> None:
        slot_id = first
        while not stop.is_set() and slot_id <= 80:
            try:
                status = book(server.port, slot_id, f"lead{slot_id}@example.com")[0]
            except OSError:
                status = None  # connection refused or reset: the request was not served
            outcomes.append((slot_id, status))
            slot_id += 4

    threads = [threading.Thread(target=lead, args=(i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    sent_at = time.monotonic()
    server.signal(signal.SIGTERM)
    output = server.finish(timeout=20)
    took = time.monotonic() - sent_at
    stop.set()
    for thread in threads:
        thread.join()

    assert server.process.returncode == 0, output
    assert took < 10, f"shutdown took {took:.1f} s"
    assert "Traceback" not in output
    served = {slot for slot, status in outcomes if status is not None}
    assert {status for _, status in outcomes} <= {200, None}
    assert any(status == 200 for _, status in outcomes)
    booked = {row[0] for row in table(database_url) if row[3]}
    # Every 200 is stored, and nothing is stored that was not acknowledged.
    assert booked == {slot for slot, status in outcomes if status == 200} == served
