"""Live availability across real processes: GET /availability/stream and the read path.

Every test runs real ``scheduler-app serve`` processes on SQLite (one file for
all of them) and on PostgreSQL, and reads the streams with a raw client
(``tests/streams.py``). Two servers of two workers each stand for two VMs
behind a load balancer; on SQLite they are four workers on one file.
"""

from __future__ import annotations

import signal
import time

import invariant
import psycopg2
import pytest
from streams import ManyStreams, Subscriber, parse_frames
from support import Server, book, exchange, free_ids, reading, request

from scheduler_app.live.watcher import APPLICATION_NAME

# The promise: every open widget hears of a change within a second.
LIVE_SECONDS = 1.0


def two_servers(servers, database_url, env=None, workers=2):
    first = servers(database_url, workers=workers, env=env).wait_ready()
    second = servers(database_url, workers=workers, env=env).wait_ready()
    return first, second


def test_a_booking_on_one_server_reaches_every_stream_of_the_other_within_a_second(
        servers, database_url):
    a, b = two_servers(servers, database_url)
    # Several streams per server, so that both of its workers serve some.
    subscribers = [Subscriber(port, reconnect=False).start() for port in (a.port, b.port) * 4]
    try:
        for subscriber in subscribers:
            subscriber.next("ping")  # the first frame: open, at the current version
        for slot_id in free_ids(a.port)[:4]:
            status, body = book(a.port, slot_id, f"lead{slot_id}@example.com")
            answered = time.monotonic()
            assert status == 200, body
            for subscriber in subscribers:
                event = subscriber.next("slot")
                assert event.data == {
                    "id": slot_id, "start_time": body["slot"]["start_time"],
                    "end_time": body["slot"]["end_time"], "state": "booked",
                }  # as /availability shows the slot, and never the email
                assert event.at - answered < LIVE_SECONDS, (event.at - answered, event.port)
    finally:
        for subscriber in subscribers:
            subscriber.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_listeners_cut_by_the_database_catch_up_and_listen_again(servers, database_url):
    server = servers(database_url, workers=2).wait_ready()
    subscriber = Subscriber(server.port, reconnect=False).start()
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    try:
        subscriber.next("ping")
        # One per worker; /health answering does not mean both watchers have connected.
        deadline = time.monotonic() + 10
        while len(listeners := _listeners(admin)) < 2:
            assert time.monotonic() < deadline, f"{len(listeners)} listener(s), not 2"
            time.sleep(0.1)
        assert len(listeners) == 2
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s AND datname = current_database()",
                        (APPLICATION_NAME,))
        # Booked while they are down or reconnecting: its NOTIFY may be lost,
        # the catch-up after the reconnect still finds it.
        first, second = free_ids(server.port)[:2]
        assert book(server.port, first, "cut@example.com")[0] == 200
        event = subscriber.next("slot", timeout=15)
        assert (event.data["id"], event.data["state"]) == (first, "booked")

        deadline = time.monotonic() + 15
        while len(again := _listeners(admin)) < 2 or again & listeners:
            assert time.monotonic() < deadline, "the watchers did not reconnect"
            time.sleep(0.1)
        assert book(server.port, second, "after@example.com")[0] == 200
        answered = time.monotonic()
        event = subscriber.next("slot")
        assert (event.data["id"], event.data["state"]) == (second, "booked")
        assert event.at - answered < LIVE_SECONDS  # heard by LISTEN, not the 30 s catch-up
    finally:
        subscriber.close()
        admin.close()


def _listeners(admin) -> set[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                    "AND datname = current_database()", (APPLICATION_NAME,))  # not other tests
        return {row[0] for row in cur.fetchall()}


def test_sigterm_sends_the_clients_to_the_other_server_with_no_gap(servers, database_url):
    a, b = two_servers(servers, database_url)
    subscriber = Subscriber([b.port, a.port]).start()  # on B; reconnects to A
    try:
        subscriber.next("ping")
        slots = free_ids(a.port)
        for slot_id in slots[:3]:
            assert book(a.port, slot_id, f"before{slot_id}@example.com")[0] == 200
        seen = subscriber.slot_events(3)
        assert {e.port for e in seen} == {b.port}

        started = time.monotonic()
        b.signal(signal.SIGTERM)
        for slot_id in slots[3:5]:  # while B stops
            assert book(a.port, slot_id, f"during{slot_id}@example.com")[0] == 200
        b.finish()
        assert b.process.returncode == 0, b.output
        assert time.monotonic() - started < 10  # the graceful timeout; streams do not hold it up
        for slot_id in slots[5:8]:  # B is gone
            assert book(a.port, slot_id, f"after{slot_id}@example.com")[0] == 200
        seen += subscriber.slot_events(5)

        versions = [e.id for e in seen]
        assert versions == list(range(versions[0], versions[0] + 8))  # every version, in order
        assert [e.data["id"] for e in seen] == slots[:8]
        on_b = [e for e in seen if e.port == b.port]
        assert seen[-1].port == a.port and seen[:len(on_b)] == on_b
        port, headers = subscriber.connections[-1]
        assert port == a.port and headers["Last-Event-ID"] == str(on_b[-1].id)
    finally:
        subscriber.close()


@pytest.mark.postgres
def test_holds_that_run_out_are_heard_as_free(postgres_url, tmp_path):
    """A hold runs out by itself (no write); the sweeper makes it a ``free``
    change. The shortest hold is 30 s, so both databases wait at once."""
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    urls = [f"sqlite:///{tmp_path / 'scheduler.db'}", postgres_url]
    started = [Server(url, env={"SCHEDULER_HOLD_SECONDS": "30"}).start() for url in urls]
    subscribers = []
    try:
        held = []
        for server in started:
            server.wait_ready()
            subscriber = Subscriber(server.port, reconnect=False).start()
            subscribers.append(subscriber)
            subscriber.next("ping")
            slot_id = free_ids(server.port)[0]
            status, body = request(server.port, "POST", "/holds", {"slot_id": slot_id})
            assert status == 201, body
            event = subscriber.next("slot")
            assert (event.data["id"], event.data["state"]) == (slot_id, "held")
            assert slot_id not in free_ids(server.port)
            held.append((slot_id, event.id))
        for server, subscriber, (slot_id, version) in zip(started, subscribers, held):
            event = subscriber.next("slot", timeout=45)
            assert (event.id, event.data["id"], event.data["state"]) == (version + 1, slot_id,
                                                                          "free")
            assert slot_id in free_ids(server.port)
    finally:
        for subscriber in subscribers:
            subscriber.close()
        for server in started:
            server.stop()
    for url in urls:
        invariant.check(url)


def test_the_stream_parses_its_cursor_strictly_and_replays_from_the_table(servers, database_url):
    server = servers(database_url).wait_ready()
    slots = free_ids(server.port)
    for slot_id in slots[:2]:
        assert book(server.port, slot_id, f"lead{slot_id}@example.com")[0] == 200
    for bad in ("12abc", "-1", "1.0", "0x10"):
        status, _, body = exchange(server.port, "GET", "/availability/stream",
                                   headers={"Last-Event-ID": bad})
        assert status == 422 and body["detail"][0]["loc"] == ["header", "Last-Event-ID"], body
        status, _, body = exchange(server.port, "GET", f"/availability/stream?since={bad}")
        assert status == 422 and body["detail"][0]["loc"] == ["query", "since"], body

    # A restarted server keeps nothing in memory: the table replays the versions.
    server.stop()
    server = servers(database_url).wait_ready()
    subscriber = Subscriber(server.port, since=0, headers={"Last-Event-ID": "16"},
                            reconnect=False).start()  # Last-Event-ID wins over since
    try:
        first = subscriber.next("ping")
        assert 2000 <= first.retry <= 5000
        assert first.data == {"version": 18}  # 16 seeded slots added, then two bookings
        replayed = subscriber.slot_events(2)
        assert [(e.id, e.data["id"], e.data["state"]) for e in replayed] == [
            (17, slots[0], "booked"), (18, slots[1], "booked")]
    finally:
        subscriber.close()


def test_a_client_further_behind_than_is_kept_is_told_to_resync(servers, database_url):
    server = servers(database_url).wait_ready()
    _delete_changes(database_url, upto=5)  # as the sweeper's pruning does after a day
    subscriber = Subscriber(server.port, since=2, reconnect=False).start()
    try:
        assert subscriber.next("ping").data == {"version": 16}
        assert subscriber.next("resync").data == {"version": 16}
        slot_id = free_ids(server.port)[0]
        assert book(server.port, slot_id, "lead@example.com")[0] == 200
        assert subscriber.next("slot").id == 17  # and it goes on from there
    finally:
        subscriber.close()


def _delete_changes(database_url: str, upto: int) -> None:
    from scheduler_app.models import Change

    with reading(database_url):
        Change.delete().where(Change.v <= upto).execute()


def test_over_the_limit_a_stream_gets_503_and_the_allowed_origin_gets_cors(servers, database_url):
    origin = "https://www.example.com"
    server = servers(database_url, env={"SCHEDULER_STREAM_MAX_SUBSCRIBERS": "2",
                                        "SCHEDULER_CORS_ORIGINS": origin}).wait_ready()
    held = [Subscriber(server.port, reconnect=False).start() for _ in range(2)]
    try:
        status, headers, body = exchange(server.port, "GET", "/availability/stream",
                                         headers={"Origin": origin})
        assert status == 503 and headers["retry-after"] == "5", body
        assert body == {"detail": "Too many open streams; try again shortly."}
        assert headers["access-control-allow-origin"] == origin  # the page can read why
        assert request(server.port, "GET", "/availability")[0] == 200  # the rest still serves

        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the server notices the closed stream
            subscriber = Subscriber(server.port, headers={"Origin": origin}, reconnect=False)
            subscriber.start(wait=False)
            subscriber._opened.wait(2)
            if subscriber.statuses and subscriber.statuses[0] == 200:
                break
            subscriber.close()
            assert time.monotonic() < deadline
        held.append(subscriber)
        assert subscriber.next("ping").data["version"] == 16
    finally:
        for subscriber in held:
            subscriber.close()


def test_sigterm_with_a_thousand_streams_open_exits_within_the_graceful_timeout(
        servers, database_url):
    server = servers(database_url, workers=2).wait_ready()
    streams = ManyStreams(server.port, 1000).open()
    try:
        assert streams.opened() == 1000, streams.status[:20]
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        server.finish(timeout=30)
        elapsed = time.monotonic() - started
        assert server.process.returncode == 0, server.output[-2000:]
        assert elapsed < 10, elapsed  # --graceful-timeout's default
        deadline = time.monotonic() + 10
        while any(s == 200 for s in streams.status) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(streams.status) == {-1}  # each stream ended, none was cut
    finally:
        streams.close()


def test_read_your_writes_across_servers_in_500_rounds(servers, database_url):
    """Book, hold or cancel on one server, then at once GET on the other (a new
    connection each time, so any of its workers): never a stale list."""
    a, b = two_servers(servers, database_url, env={"SCHEDULER_SEED_DAYS": "25"})
    free = free_ids(a.port)
    assert len(free) == 400
    tokens: list[tuple[str, str, int]] = []  # (reference, token, slot) booked, not yet cancelled
    stale = []
    for round_no in range(500):
        write, read = (a.port, b.port) if round_no % 2 else (b.port, a.port)
        kind = ("book", "hold", "cancel")[round_no % 3]
        if kind == "cancel":
            reference, token, slot_id = tokens.pop(0)
            status, _, body = exchange(write, "POST", f"/bookings/{reference}/cancel", {},
                                       headers={"Authorization": f"Bearer {token}"})
            assert status == 200, body
            free.append(slot_id)
            expect_listed = True
        else:
            slot_id = free.pop(0)
            if kind == "book":
                status, body = book(write, slot_id, f"round{round_no}@example.com")
                assert status == 200, body
                tokens.append((body["booking"]["reference"], body["booking"]["token"], slot_id))
            else:
                status, body = request(write, "POST", "/holds", {"slot_id": slot_id})
                assert status == 201, body
            expect_listed = False
        if (slot_id in free_ids(read)) != expect_listed:
            stale.append((round_no, kind, slot_id))
    assert stale == []


def test_an_unchanged_list_is_not_sent_again(servers, database_url):
    a, b = two_servers(servers, database_url, workers=1)
    status, headers, first = exchange(a.port, "GET", "/availability")
    etag = headers["etag"]
    assert headers["cache-control"] == "no-cache"
    # The same list on the other server has the same tag: 304 there too.
    status, headers, body = exchange(b.port, "GET", "/availability",
                                     headers={"If-None-Match": etag})
    assert (status, headers["etag"], body) == (304, etag, "")
    assert book(a.port, first[0]["id"], "lead@example.com")[0] == 200
    status, headers, body = exchange(b.port, "GET", "/availability",
                                     headers={"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag and body == first[1:]


def test_parse_frames_reads_what_the_server_writes():
    frames = parse_frames('retry: 2500\nevent: ping\ndata: {"version":3}\n\n'
                          'id: 4\nevent: slot\ndata: {"id":1}\n\n')
    assert [(f.name, f.id, f.retry, f.data) for f in frames] == [
        ("ping", None, 2500, {"version": 3}), ("slot", 4, None, {"id": 1})]
