"""Processes starting together, killed, and stopped: nothing duplicated, nothing lost."""

from __future__ import annotations

import http.client
import re
import signal
import threading
import time

from support import book, exchange, free_ids, reading, request

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
    """SIGTERM while eight leads book, one slot after another: the server exits 0 within its graceful timeout,
    having answered the requests it was serving at the signal; any other request is
    refused or cut, never acknowledged. Requests were in flight at the signal: the
    clients had sent requests not yet answered, and the server's own lines for some
    of them (found by the X-Request-ID the client chose) come after its
    "Received SIGTERM" line, with a 200 that the client received."""
    # 30 days, 480 slots: more than the leads book before the signal, so that they
    # are still booking when it comes.
    server = servers(database_url, workers=2, env={"SCHEDULER_SEED_DAYS": "30"}).wait_ready()
    slot_ids = free_ids(server.port)
    queue = iter(slot_ids)
    stop = threading.Event()
    lock = threading.Lock()
    in_flight = [0]
    answered = threading.Semaphore(0)
    outcomes: dict[int, int | None] = {}  # slot id -> status, None if never answered

    def lead() -> None:
        while True:
            with lock:
                slot_id = next(queue, None)
                if slot_id is None or stop.is_set():
                    return
                in_flight[0] += 1
            try:
                status = exchange(server.port, "POST", "/book",
                                  {"slot_id": slot_id, "email": f"lead{slot_id}@example.com"},
                                  {"X-Request-ID": f"sigterm-{slot_id}"}, timeout=30)[0]
            except (OSError, http.client.HTTPException):
                status = None  # refused, reset or cut: the request was not acknowledged
            with lock:
                in_flight[0] -= 1
                outcomes[slot_id] = status
            answered.release()

    threads = [threading.Thread(target=lead) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(10):  # a burst under way: ten answered, then the signal
        assert answered.acquire(timeout=60), "the bookings stalled"
    with lock:
        pending_at_signal = in_flight[0]
        answered_before = dict(outcomes)
        sent_at = time.monotonic()
        server.signal(signal.SIGTERM)
    output = server.finish(timeout=20)
    took = time.monotonic() - sent_at
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    assert server.process.returncode == 0, output
    assert took < 10, f"shutdown took {took:.1f} s"
    assert "Traceback" not in output
    assert len(set(outcomes) - set(answered_before)) > pending_at_signal, "the burst had ended"
    assert set(outcomes.values()) <= {200, None}, outcomes
    assert pending_at_signal >= 1, "no request was in flight at the signal"
    # The server's lines after the signal name requests it finished then (less any
    # answered before it, whose line may trail its answer): each one the client
    # received as a 200.
    after_signal = output[output.index("Received SIGTERM"):]
    finished_after = {int(slot) for slot in re.findall(r"request_id=sigterm-(\d+)", after_signal)}
    finished_after -= set(answered_before)
    assert finished_after, f"no request was in flight at the signal:\n{output[-3000:]}"
    assert all(outcomes[slot] == 200 for slot in finished_after), (finished_after, outcomes)
    # The database agrees: every 200 is a booking, nothing else is booked (the
    # invariant, checked after the test, says each booked slot has its one booking).
    booked = {row[0]: row[4] for row in table(database_url) if row[3]}
    acknowledged = {slot for slot, status in outcomes.items() if status == 200}
    assert set(booked) == acknowledged
    assert all(booked[slot] == f"lead{slot}@example.com" for slot in booked)
