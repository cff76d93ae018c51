"""Live availability in one process: the versioned read path, the sweeper's change,
pruning, and the streams' event sequence (scheduler_app/live/).

The cache must never change an answer: every GET here is compared with the
list computed afresh, at the same moment, from the same rules.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from support import run_coroutine as run

from scheduler_app import availability, booking, feed
from scheduler_app.app import create_app
from scheduler_app.db import database, session
from scheduler_app.live import hub as hub_module
from scheduler_app.live import stream
from scheduler_app.live.cache import matches
from scheduler_app.live.hub import Hub
from scheduler_app.live.sweeper import Sweeper, prune
from scheduler_app.live.versions import APPLICATION_NAME, version_reader
from scheduler_app.models import Change, TimeSlot
from scheduler_app.schemas import encode_free_slots

TZ = ZoneInfo("America/New_York")
MONDAY_0910 = datetime(2026, 11, 23, 14, 10, tzinfo=UTC)  # 09:10 in New York: slot 1 started


def fresh(settings, now, start=None, end=None, limit=None) -> bytes:
    """GET /availability's body computed without any cache."""
    earliest = now + timedelta(minutes=settings.min_notice_minutes)
    rows = availability.free_slot_rows(now, start, end, limit, earliest)
    if settings.max_bookings_per_day:
        rows = booking.without_full_days(rows, settings, now)
    return encode_free_slots(rows, settings.tz)


def listed(client, **params) -> tuple[bytes, str]:
    response = client.get("/availability", params=params)
    assert response.status_code == 200
    return response.content, response.headers["etag"]


def cache_of(client):
    return client.app.state.live.cache


def test_a_kept_list_loses_the_slots_that_start_and_changes_its_etag(client, settings, clock):
    body, etag = listed(client)
    assert body == fresh(settings, clock())
    hits = cache_of(client).hits
    assert listed(client) == (body, etag)
    assert cache_of(client).hits == hits + 1  # served from memory, after the version check

    clock.now = MONDAY_0910
    later, later_etag = listed(client)
    assert later == fresh(settings, clock()) and later != body  # slot 1 has started
    assert later_etag != etag
    assert cache_of(client).hits == hits + 2  # cut from the kept body, not read again

    three, _ = listed(client, limit=3)  # under a limit the next slot must come in
    assert three == fresh(settings, clock(), limit=3)
    clock.now += timedelta(minutes=30)
    assert listed(client, limit=3)[0] == fresh(settings, clock(), limit=3)


def test_a_write_is_seen_by_the_next_read_and_304_only_for_the_same_list(client, settings, clock):
    _, etag = listed(client)
    again = client.get("/availability", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert client.get("/availability", headers={"If-None-Match": f'W/{etag}, "x"'}).status_code == 304

    assert client.post("/book", json={"slot_id": 2, "email": "a@example.com"}).status_code == 200
    changed = client.get("/availability", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.content == fresh(settings, clock())
    assert b'"id":2,' not in changed.content

    held = client.post("/holds", json={"slot_id": 3})
    assert held.status_code == 201
    assert b'"id":3,' not in listed(client)[0]
    clock.now += timedelta(seconds=settings.hold_seconds + 1)  # runs out: listed again, no write
    assert listed(client)[0] == fresh(settings, clock())
    assert b'"id":3,' in listed(client)[0]


def test_the_minimum_notice_and_the_daily_cap_hold_with_the_cache(settings, clock):
    settings = replace(settings, min_notice_minutes=90, max_bookings_per_day=1)
    with TestClient(create_app(settings, clock)) as client:  # seeds Monday's slots
        clock.now = MONDAY_0910
        assert listed(client)[0] == fresh(settings, clock())
        assert b'"start_time":"2026-11-23T10:30' not in listed(client)[0]  # 80 minutes away
        assert b'"start_time":"2026-11-23T11:00' in listed(client)[0]
        clock.now += timedelta(minutes=25)
        assert listed(client)[0] == fresh(settings, clock())
        assert b'"start_time":"2026-11-23T11:00' not in listed(client)[0]  # 85 minutes away

        slots = client.get("/availability").json()
        booked = client.post("/book", json={"slot_id": slots[0]["id"], "email": "a@example.com"})
        assert booked.status_code == 200
        assert listed(client)[0] == fresh(settings, clock()) == b"[]"  # Monday is full
        # The cap counts the upcoming bookings (booking.without_full_days): once
        # the booked meeting starts the rule gives another answer, and the kept
        # list follows it at that moment.
        clock.now = datetime.fromisoformat(slots[0]["start_time"]).astimezone(UTC)
        assert listed(client)[0] == fresh(settings, clock())


def test_if_none_match_is_compared_as_rfc_9110_says():
    assert matches('"1-ab"', '"1-ab"') and matches('W/"1-ab"', '"1-ab"')
    assert matches('"x", "1-ab"', '"1-ab"') and matches("*", '"1-ab"')
    assert not matches('"1-ac"', '"1-ab"') and not matches("", '"1-ab"') and not matches(None, "x")


def add_slots(settings, now, count: int) -> list:
    first = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    spans = [(first + timedelta(minutes=30 * i), first + timedelta(minutes=30 * (i + 1)))
             for i in range(count)]
    booking.transaction(settings, now, lambda tx: booking.add_slots(tx, spans))
    return availability.free_slots(now)


def test_expired_holds_become_free_changes_once(db, settings, clock):
    now = clock()
    slots = add_slots(settings, now, 3)
    for slot in slots[:2]:
        booking.transaction(settings, now, lambda tx, s=slot: booking.hold(tx, s.id))
    later = now + timedelta(seconds=settings.hold_seconds + 1)
    booking.transaction(settings, later, lambda tx: booking.hold(tx, slots[2].id))  # still live

    assert booking.transaction(settings, later, booking.expire_holds) == 2
    assert booking.transaction(settings, later, booking.expire_holds) == 0
    with session():
        last = list(Change.select().order_by(Change.v.desc()).limit(3).tuples())
        held = dict(TimeSlot.select(TimeSlot.id, TimeSlot.held_until).tuples())
    assert [(row[1], row[4]) for row in reversed(last)] == [
        (slots[2].id, "held"), (slots[0].id, "free"), (slots[1].id, "free")]
    assert held[slots[0].id] is None and held[slots[1].id] is None
    assert held[slots[2].id] is not None


def test_the_sweeper_frees_what_ran_out_and_prunes_old_rows(db, settings, clock):
    now = clock()
    slot = add_slots(settings, now, 1)[0]
    booking.transaction(settings, now, lambda tx: booking.hold(tx, slot.id))
    sweeper = Sweeper(settings, clock)
    assert sweeper.sweep() == 0  # not yet
    clock.now = now + timedelta(seconds=settings.hold_seconds)
    assert sweeper.sweep() == 1
    assert sweeper.sweep() == 0  # and it stops looking until told there may be holds
    assert not sweeper._maybe_holds.is_set()

    with session(), database.atomic():
        feed.record([feed.SlotChange(slot.id, slot.start_time, slot.end_time, "removed")],
                    now - timedelta(days=2))
        kept = Change.select().count()
    assert prune(now) == 1
    with session():
        assert Change.select().count() == kept - 1



def feed_version() -> int:
    with session():
        return database.execute_sql("SELECT v FROM feed_version WHERE id = 1").fetchone()[0]


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # SQLite's version is read on the loop, no thread
def test_one_round_trip_gives_the_version_to_every_request_waiting(db, settings, clock):
    """PostgreSQL: the reader thread reads once for all the requests that asked
    meanwhile, and a request that asks after a commit sees that commit."""
    versions = version_reader(settings.database_url)
    add_slots(settings, clock(), 2)

    async def many(count: int) -> list[int]:
        return await asyncio.gather(*(versions.current() for _ in range(count)))

    try:
        assert run(many(200)) == [feed_version()] * 200
        assert versions.reads < 200  # one read answered several requests
        booking.transaction(settings, clock(), lambda tx: booking.hold(tx, 1))
        assert run(versions.current()) == feed_version()  # asked after the commit: sees it

        # The server drops the reader's connection: replaced before anyone hears of it.
        with session():
            # This test's database only: other test runs on the server have readers too.
            cut = database.execute_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE application_name = %s AND datname = current_database()",
                                       (APPLICATION_NAME,))
            assert cut.fetchall() == [(True,)]
        booking.transaction(settings, clock(), lambda tx: booking.hold(tx, 2))
        assert run(versions.current()) == feed_version()
    finally:
        versions.close()
    assert run(versions.current()) == feed_version()  # the app started again: so is the thread
    versions.close()


# -- the event sequence of a stream, on a hub fed by hand ------------------------


async def _take(agen, count: int) -> list[bytes]:
    return [await agen.__anext__() for _ in range(count)]


def frame(hub: Hub, version: int, slot_id: int) -> bytes:
    start = datetime(2026, 11, 23, 14, 0)
    return hub_module.slot_event(version, slot_id, start, start + timedelta(minutes=30), "booked",
                                 hub.tz)


def test_a_stream_pings_then_sends_what_follows_its_cursor_then_ends(monkeypatch):
    monkeypatch.setattr(stream, "PING_SECONDS", 0.05)
    monkeypatch.setattr(stream, "LIFETIME_SECONDS", (0.4, 0.4))

    async def scenario():
        hub = Hub(TZ)
        hub.bind(asyncio.get_running_loop())
        hub.publish(10, [], resync=True)
        hub.publish(12, [frame(hub, 11, 1), frame(hub, 12, 2)])
        events = stream._events(hub, 11)
        first, replay = await _take(events, 2)
        assert first.startswith(b"retry: ") and b'event: ping\ndata: {"version":12}' in first
        assert 2000 <= int(first.split(b"\n")[0].split(b": ")[1]) <= 5000
        assert replay == frame(hub, 12, 2)  # after version 11 only
        asyncio.get_running_loop().call_later(0.01, hub.publish, 13, [frame(hub, 13, 3)])
        assert await events.__anext__() == frame(hub, 13, 3)
        rest = [chunk async for chunk in events]  # until its lifetime is over
        assert rest and set(rest) == {b'event: ping\ndata: {"version":13}\n\n'}

    run(scenario())


def test_a_stream_resyncs_when_behind_the_hub_or_ahead_of_it(monkeypatch):
    monkeypatch.setattr(stream, "AHEAD_WAIT_SECONDS", 0.05)
    monkeypatch.setattr(hub_module, "RECENT", 2)

    async def scenario():
        hub = Hub(TZ)
        hub.bind(asyncio.get_running_loop())
        hub.publish(5, [], resync=True)
        ahead = stream._events(hub, 9)  # a cursor from another database, or a lagging watcher
        assert (await _take(ahead, 2))[1] == b'event: resync\ndata: {"version":5}\n\n'

        live = stream._events(hub, None)
        await live.__anext__()
        for v in range(6, 12):  # more than the hub keeps, before the stream sends any
            hub.publish(v, [frame(hub, v, v)])
        assert hub.floor > 5
        assert await live.__anext__() == b'event: resync\ndata: {"version":11}\n\n'
        hub.publish(12, [frame(hub, 12, 12)])
        assert await live.__anext__() == frame(hub, 12, 12)
        hub.publish(20, [], resync=True)  # a gap: versions without rows
        assert await live.__anext__() == b'event: resync\ndata: {"version":20}\n\n'

    run(scenario())


@pytest.mark.parametrize("since", [None, 3])
def test_hub_after_gives_the_events_after_a_version(since):
    hub = Hub(TZ)
    hub.publish(2, [], resync=True)
    hub.publish(4, [b"3", b"4"])
    assert hub.after(1) is None and hub.after(4) == b""
    assert hub.after(since if since is not None else 2) == (b"4" if since else b"34")
