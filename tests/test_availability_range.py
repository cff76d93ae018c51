"""GET /availability?from=&to=&limit=, and the index behind the availability query."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import peewee
import pytest
from fastapi.testclient import TestClient
from support import FRIDAY

from scheduler_app import availability
from scheduler_app.app import create_app
from scheduler_app.db import database, session
from scheduler_app.models import FREE_SLOTS_INDEX as INDEX
from scheduler_app.models import TimeSlot
from scheduler_app.query_window import MAX_LIMIT, MAX_RANGE_DAYS, window
from scheduler_app.schemas import encode, slot_dict


# Seeded from Friday 2026-11-20 (New York): Mon 23, Tue 24, Wed 25, (Thanksgiving),
# Fri 27, Mon 30 November, then 1-4 and 7 December; 16 slots a day.
DAYS = ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27", "2026-11-30",
        "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-07"]


@pytest.fixture
def client(settings, clock):
    with TestClient(create_app(replace(settings, seed_days=len(DAYS)), clock)) as test_client:
        yield test_client


def starts(client, params: dict | None = None) -> list[str]:
    response = client.get("/availability", params=params)
    assert response.status_code == 200, response.text
    return [s["start_time"] for s in response.json()]


def test_without_parameters_every_free_slot_is_listed(client):
    listed = starts(client)
    assert len(listed) == 16 * len(DAYS)
    assert listed == sorted(listed)
    assert {s[:10] for s in listed} == set(DAYS)


def test_from_and_to_dates_select_whole_days_in_the_reps_time_zone(client):
    week = starts(client, {"from": "2026-11-30", "to": "2026-12-04"})
    assert {s[:10] for s in week} == {"2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03",
                                      "2026-12-04"}
    assert week[0] == "2026-11-30T09:00:00-05:00"
    assert week[-1] == "2026-12-04T16:30:00-05:00"
    assert starts(client, {"from": "2026-11-24", "to": "2026-11-24"}) == [
        s for s in starts(client) if s.startswith("2026-11-24")
    ]


def test_datetimes_are_local_without_an_offset_and_to_is_exclusive(client):
    # 10:00 to 11:00 New York, written three ways.
    for since, until in [
        ("2026-11-23T10:00", "2026-11-23T11:00"),
        ("2026-11-23T10:00:00-05:00", "2026-11-23T11:00:00-05:00"),
        ("2026-11-23T15:00:00Z", "2026-11-23T16:00:00+00:00"),
    ]:
        assert starts(client, {"from": since, "to": until}) == [
            "2026-11-23T10:00:00-05:00",
            "2026-11-23T10:30:00-05:00",
        ]


def test_only_one_bound(client):
    assert starts(client, {"from": "2026-12-07"})[0] == "2026-12-07T09:00:00-05:00"
    assert len(starts(client, {"from": "2026-12-07"})) == 16
    assert starts(client, {"to": "2026-11-23T09:30"}) == ["2026-11-23T09:00:00-05:00"]


def test_limit_keeps_the_earliest(client):
    assert starts(client, {"limit": 3}) == starts(client)[:3]
    assert starts(client, {"from": "2026-11-25", "limit": 1}) == ["2026-11-25T09:00:00-05:00"]
    assert len(starts(client, {"limit": MAX_LIMIT})) == 16 * len(DAYS)


def test_the_window_still_hides_booked_and_started_slots(client, clock):
    in_window = client.get("/availability", params={"from": "2026-11-24", "to": "2026-11-24"})
    booked = in_window.json()[2]["id"]
    assert client.post("/book", json={"slot_id": booked, "email": "a@example.com"}).status_code == 200
    clock.now = datetime(2026, 11, 24, 15, 10, tzinfo=UTC)  # Tuesday 10:10 New York
    listed = starts(client, {"from": "2026-11-23", "to": "2026-11-24"})
    # Monday is over; on Tuesday 09:00-10:00 have started and 10:00 is booked.
    assert listed[0] == "2026-11-24T10:30:00-05:00"
    assert len(listed) == 13


@pytest.mark.parametrize(
    "params, field",
    [
        ({"from": "tomorrow"}, "from"),
        ({"from": "1700000000"}, "from"),  # a Unix time is not ISO 8601
        ({"from": "2026-13-01"}, "from"),
        ({"to": "2026-11-23T25:00"}, "to"),
        ({"to": ""}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "to"),
        ({"from": "2026-11-23T10:00", "to": "2026-11-23T10:00"}, "to"),
        ({"from": "2026-01-01", "to": "2027-01-03"}, "to"),  # over MAX_RANGE_DAYS
        ({"to": "9999-12-31"}, "to"),  # its end of day is past year 9999
        ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
    ],
)
def test_nonsense_is_422_with_a_detail_naming_the_parameter(client, params, field):
    response = client.get("/availability", params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [error["loc"] for error in detail] == [["query", field]]
    assert all(error["msg"] for error in detail)


def test_a_range_of_exactly_the_maximum_is_accepted(client):
    since = datetime(2026, 11, 23, 9, tzinfo=UTC)
    until = since + timedelta(days=MAX_RANGE_DAYS)
    assert len(starts(client, {"from": since.isoformat(), "to": until.isoformat()})) == 16 * len(DAYS)
    over = until + timedelta(seconds=1)
    response = client.get("/availability", params={"from": since.isoformat(), "to": over.isoformat()})
    assert response.status_code == 422


# The plan of the availability query ----------------------------------------------------

NOW = FRIDAY  # tests/support.py's fixed instant


def fill(rows: int, free: int) -> None:
    """``rows`` slots, 30 minutes apart: the first half before NOW, then booked
    future ones, and the last ``free`` free."""
    first = (NOW - timedelta(minutes=30 * (rows // 2))).replace(tzinfo=None)
    data = []
    for i in range(rows):
        start = first + timedelta(minutes=30 * i)
        booked = rows // 2 <= i < rows - free
        data.append((start, start + timedelta(minutes=30), booked,
                     "x@example.com" if booked else None))
    fields = [TimeSlot.start_time, TimeSlot.end_time, TimeSlot.is_booked, TimeSlot.booked_by_email]
    with session(), database.atomic():
        for chunk in range(0, rows, 5000):
            TimeSlot.insert_many(data[chunk:chunk + 5000], fields=fields).execute()
        # Each booked slot has its confirmed booking, as the service keeps them.
        database.execute_sql(
            "INSERT INTO bookings (reference, slot_id, email, status, sequence, created_at, "
            "updated_at) SELECT 'R' || id, id, booked_by_email, 'confirmed', 0, start_time, "
            "start_time FROM time_slots WHERE is_booked")


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def explain(query) -> str:
    """The plan of ``query``: PostgreSQL's EXPLAIN after ANALYZE, or SQLite's query plan."""
    sql, params = query.sql()
    with session():
        if is_postgres():
            database.execute_sql("ANALYZE time_slots")
            rows = database.execute_sql(f"EXPLAIN {sql}", params).fetchall()
        else:
            rows = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return "\n".join(" ".join(str(column) for column in row) for row in rows)


def test_the_availability_query_walks_the_index_on_100000_rows(db):
    fill(100_000, free=1_000)
    plan = explain(availability.free_slots_query(NOW))
    print(plan)
    assert INDEX in plan
    if is_postgres():
        assert "Index Scan" in plan and "Seq Scan" not in plan and "Sort" not in plan
    else:
        assert "SEARCH" in plan and "TEMP B-TREE" not in plan  # no scan, no sort
    assert len(availability.free_slots(NOW)) == 1_000
    window = availability.free_slots_query(NOW, NOW + timedelta(days=1000), None, 10)
    assert INDEX in explain(window)


def test_the_first_slots_walk_the_index_before_the_table_has_statistics(db):
    """Just after the migration that added ``state``, or a table just filled,
    PostgreSQL has no statistics of the column: the query must still walk the
    index rather than scan and sort the table (``availability.is_open``)."""
    if is_postgres():
        with session():
            database.execute_sql("ALTER TABLE time_slots SET (autovacuum_enabled = false)")
    fill(100_000, free=1_000)
    sql, params = availability.free_slots_query(NOW, limit=16).sql()
    with session():
        if is_postgres():
            assert database.execute_sql(
                "SELECT COUNT(*) FROM pg_stats WHERE tablename = 'time_slots'").fetchone() == (0,)
        plan = "\n".join(" ".join(map(str, row)) for row in database.execute_sql(
            f"{'EXPLAIN' if is_postgres() else 'EXPLAIN QUERY PLAN'} {sql}", params).fetchall())
    print(plan)
    assert INDEX in plan
    assert "Seq Scan" not in plan and "Sort" not in plan and "TEMP B-TREE" not in plan
    assert len(availability.free_slots(NOW, limit=16)) == 16


def test_the_body_is_the_generic_encoding_byte_for_byte(client, settings, clock):
    # GET /availability memoises each slot's JSON; it must stay what slot_dict
    # and encode give for the same slots.
    client.post("/book", json={"slot_id": 7, "email": "a@example.com"})
    for since, limit in [(None, None), (date(2026, 11, 24), 5)]:
        params = {"from": since.isoformat(), "limit": limit} if since else {}
        body = client.get("/availability", params=params).content
        start, end = window(since, None, settings.tz)
        slots = availability.free_slots(clock(), start, end, limit)
        assert body == encode([slot_dict(slot, settings.tz) for slot in slots])
        assert b'"is_booked":false,"booked_by_email":null' in body
