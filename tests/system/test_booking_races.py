"""Races on bookings with real concurrent requests against real servers: 4 workers
on one SQLite file, 2 servers on one PostgreSQL database. And a SIGKILL during
a burst of bookings, cancels and reschedules.

The invariant (each slot booked iff exactly one confirmed booking, with its
email) is checked after each test by tests/conftest.py; the tests here check
what each race's answers promise.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import invariant
from support import Server, bearer, reading, request

from scheduler_app.models import Booking, TimeSlot

ENV = {"SCHEDULER_SEED_DAYS": "5", "SCHEDULER_MAX_UPCOMING_PER_EMAIL": "1"}  # 80 slots


def call(port: int, method: str, path: str, body: object = None, headers: dict | None = None):
    """One request on a fresh connection: (status, lower-cased headers, raw body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, None if body is None else json.dumps(body),
                     {**sent, **(headers or {})})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def start_cluster(servers, database_url: str, env: dict = ENV) -> list:
    """The service as the issue races it; returns its servers (started together)."""
    if database_url.startswith("sqlite"):
        started = [servers(database_url, workers=4, env=env)]
    else:
        started = [servers(database_url, env=env), servers(database_url, env=env)]
    return [server.wait_ready() for server in started]


def stored(database_url: str):
    """Every booking (id -> (reference, slot id, status, sequence, email)) and every
    slot (id -> (is_booked, booked_by_email, held))."""
    with reading(database_url):
        bookings = {b.id: (b.reference, b.slot_id, b.status, b.sequence, b.email)
                    for b in Booking.select()}
        slots = {s.id: (s.is_booked, s.booked_by_email, s.held_until is not None)
                 for s in TimeSlot.select()}
    return bookings, slots


def book(port: int, slot_id: int, email: str) -> dict:
    status, _, body = call(port, "POST", "/book", {"slot_id": slot_id, "email": email})
    assert status == 200, body
    return json.loads(body)["booking"]


def race_holds(ports, slot_id, run_together, database_url):
    """50 holds of one slot: exactly one 201, and the slot held by its token."""
    results = run_together(50, lambda i: call(ports[i % len(ports)], "POST", "/holds",
                                              {"slot_id": slot_id}))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 49, statuses
    assert all(b"held" in body for status, _, body in results if status == 409)
    _, slots = stored(database_url)
    assert slots[slot_id] == (False, None, True)


def race_reschedules(ports, origins, target, run_together, database_url):
    """50 bookings moved to one slot at once: exactly one wins, the others unchanged."""
    made = [book(ports[i % len(ports)], slot_id, f"move{i}@example.com")
            for i, slot_id in enumerate(origins)]
    results = run_together(50, lambda i: call(
        ports[i % len(ports)], "POST", f"/bookings/{made[i]['reference']}/reschedule",
        {"slot_id": target}, bearer(made[i]["token"])))
    statuses = [status for status, _, _ in results]
    assert sorted(statuses) == [200] + [409] * 49, statuses
    winner = statuses.index(200)
    bookings, slots = stored(database_url)
    by_reference = {b[0]: b for b in bookings.values()}
    for i, (slot_id, m) in enumerate(zip(origins, made)):
        _, now_on, status, sequence, email = by_reference[m["reference"]]
        if i == winner:
            assert (now_on, status, sequence) == (target, "confirmed", 1)
            assert slots[slot_id] == (False, None, False)  # its old slot is free
        else:
            assert (now_on, status, sequence) == (slot_id, "confirmed", 0)
            assert slots[slot_id] == (True, email, False)
    assert slots[target] == (True, f"move{winner}@example.com", False)


def race_cancel_and_reschedule(ports, origins, targets, run_together, database_url):
    """Each of 10 bookings cancelled and moved at the same moment: the cancel always
    wins in the end (200 cancelled), the move either happened first or is a 409."""
    made = [book(ports[i % len(ports)], slot_id, f"both{i}@example.com")
            for i, slot_id in enumerate(origins)]

    def act(i: int):
        m = made[i // 2]
        port = ports[i % len(ports)]
        if i % 2 == 0:
            return call(port, "POST", f"/bookings/{m['reference']}/cancel", None,
                        bearer(m["token"]))
        return call(port, "POST", f"/bookings/{m['reference']}/reschedule",
                    {"slot_id": targets[i // 2]}, bearer(m["token"]))

    results = run_together(2 * len(made), act)
    bookings, slots = stored(database_url)
    by_reference = {b[0]: b for b in bookings.values()}
    for n, m in enumerate(made):
        (cancel_status, _, cancel_body), (move_status, _, move_body) = results[2 * n:2 * n + 2]
        assert cancel_status == 200, cancel_body
        assert json.loads(cancel_body)["status"] == "cancelled"
        assert move_status in (200, 409), move_body
        _, slot_id, status, sequence, _ = by_reference[m["reference"]]
        assert status == "cancelled"
        moved = move_status == 200
        assert (slot_id, sequence) == ((targets[n], 2) if moved else (origins[n], 1))
        assert json.loads(cancel_body)["slot"]["id"] == slot_id
        assert slots[origins[n]] == (False, None, False)
        assert slots[targets[n]] == (False, None, False)


def race_one_idempotency_key(ports, slot_id, run_together, database_url):
    """20 identical bookings with one Idempotency-Key: one booking, 20 equal answers."""
    headers = {"Idempotency-Key": "same-click-20"}
    results = run_together(20, lambda i: call(
        ports[i % len(ports)], "POST", "/book", {"slot_id": slot_id, "email": "once@example.com"},
        headers))
    assert {(status, body) for status, _, body in results} == {(results[0][0], results[0][2])}
    assert results[0][0] == 200
    replayed = [h.get("idempotent-replayed") for _, h, _ in results]
    assert replayed.count("true") == 19 and replayed.count(None) == 1
    bookings, _ = stored(database_url)
    assert [b[1] for b in bookings.values() if b[4] == "once@example.com"] == [slot_id]
    token = json.loads(results[0][2])["booking"]["token"]
    reference = json.loads(results[0][2])["booking"]["reference"]
    assert call(ports[-1], "GET", f"/bookings/{reference}", None, bearer(token))[0] == 200


def race_the_email_limit(ports, slot_ids, run_together, database_url):
    """SCHEDULER_MAX_UPCOMING_PER_EMAIL=1: 20 slots booked at once by one lead
    (in several spellings of the email): exactly one 200."""
    spellings = ["limit@example.com", "Limit@example.com", "LIMIT@EXAMPLE.COM"]
    results = run_together(20, lambda i: call(
        ports[i % len(ports)], "POST", "/book",
        {"slot_id": slot_ids[i], "email": spellings[i % 3]}))
    statuses = [status for status, _, _ in results]
    assert sorted(statuses) == [200] + [409] * 19, statuses
    assert all(b"reschedule" in body for status, _, body in results if status == 409)
    bookings, _ = stored(database_url)
    assert len([b for b in bookings.values() if b[4].lower() == "limit@example.com"]) == 1


def test_the_races_of_bookings(servers, database_url, run_together):
    ports = [server.port for server in start_cluster(servers, database_url)]
    status, free = request(ports[0], "GET", "/availability")
    assert status == 200
    ids = [slot["id"] for slot in free]
    assert len(ids) == 80
    race_holds(ports, ids[0], run_together, database_url)
    race_reschedules(ports, ids[1:51], ids[51], run_together, database_url)
    race_cancel_and_reschedule(ports, ids[52:62], ids[62:72], run_together, database_url)
    race_one_idempotency_key(ports, ids[72], run_together, database_url)
    # The slots left free, and those the races freed, for the per-email limit.
    _, slots = stored(database_url)
    open_slots = [i for i in ids if slots[i] == (False, None, False)]
    assert len(open_slots) >= 20
    race_the_email_limit(ports, open_slots[:20], run_together, database_url)


def test_sigkill_during_a_burst_keeps_every_acknowledged_change(servers, database_url):
    env = {"SCHEDULER_SEED_DAYS": "5"}
    cluster = start_cluster(servers, database_url, env)
    ports = [server.port for server in cluster]
    ids = [slot["id"] for slot in request(ports[0], "GET", "/availability")[1]]
    made = [book(ports[i % len(ports)], slot_id, f"kept{i}@example.com")
            for i, slot_id in enumerate(ids[:20])]
    # Cancel the first ten, move the next ten, book forty new ones: no two touch a slot.
    plan = ([("cancel", made[i], None) for i in range(10)]
            + [("reschedule", made[10 + i], ids[20 + i]) for i in range(10)]
            + [("book", None, ids[30 + i]) for i in range(40)])
    random.Random(11).shuffle(plan)
    acknowledged = threading.Semaphore(0)

    def act(n: int):
        what, m, slot_id = plan[n]
        port = ports[n % len(ports)]
        try:
            if what == "cancel":
                answer = call(port, "POST", f"/bookings/{m['reference']}/cancel", None,
                              bearer(m["token"]))
            elif what == "reschedule":
                answer = call(port, "POST", f"/bookings/{m['reference']}/reschedule",
                              {"slot_id": slot_id}, bearer(m["token"]))
            else:
                answer = call(port, "POST", "/book",
                              {"slot_id": slot_id, "email": f"burst{n}@example.com"})
        except (OSError, http.client.HTTPException):
            return None  # the server died with the request in flight (or its answer cut): no answer
        acknowledged.release()
        return answer

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(act, n) for n in range(len(plan))]
        for _ in range(20):  # SIGKILL once 20 of the 60 changes were answered
            assert acknowledged.acquire(timeout=60), "the burst stalled"
        for server in cluster:
            server.kill_all()
        answers = [future.result() for future in futures]
    unanswered = answers.count(None)
    assert unanswered >= 1, "every request was answered before the kill: no burst was cut"
    assert {status for status, _, _ in filter(None, answers)} == {200}

    restarted = servers(database_url, env=env).wait_ready()
    for (what, m, slot_id), answer in zip(plan, answers):
        if answer is None:
            continue
        body = json.loads(answer[2])
        if what == "book":
            m = body["booking"]
        status, _, shown = call(restarted.port, "GET", f"/bookings/{m['reference']}", None,
                                bearer(m["token"]))
        assert status == 200, (what, shown)
        shown = json.loads(shown)
        if what == "cancel":
            assert shown["status"] == "cancelled"
        elif what == "reschedule":
            assert (shown["status"], shown["slot"]["id"]) == ("confirmed", slot_id)
        else:
            assert (shown["status"], shown["slot"]["id"]) == ("confirmed", slot_id)
    assert invariant.check(database_url)
    # Still serving after the restart: the slots of unanswered bookings are either way.
    assert request(restarted.port, "GET", "/availability")[0] == 200


def test_the_manage_url_honours_proxy_headers(database_url):
    """Behind a TLS proxy (``serve --proxy-headers``), the link says https and the
    proxy's host; with ``--no-proxy-headers`` the forwarded scheme is not believed."""
    trusting = Server(database_url)
    trusting.args += ["--proxy-headers"]
    plain = Server(database_url)
    plain.args += ["--no-proxy-headers"]  # proxy headers are on by default
    try:
        trusting.start().wait_ready()
        plain.start().wait_ready()
        forwarded = {"Host": "book.example.com", "X-Forwarded-Proto": "https",
                     "X-Forwarded-For": "203.0.113.7"}
        links = []
        for server, slot_id in ((trusting, 1), (plain, 2)):
            status, _, body = call(server.port, "POST", "/book",
                                   {"slot_id": slot_id, "email": "lead@example.com"}, forwarded)
            assert status == 200, body
            links.append(json.loads(body)["booking"])
        assert links[0]["manage_url"].startswith(
            f"https://book.example.com/manage/{links[0]['reference']}#token=")
        assert links[1]["manage_url"].startswith(
            f"http://book.example.com/manage/{links[1]['reference']}#token=")
    finally:
        trusting.stop()
        plain.stop()
