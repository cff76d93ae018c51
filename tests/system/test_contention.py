"""Never double-book: many leads, one slot, several worker processes or servers."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import book, reading, request

from scheduler_app.models import TimeSlot

FIVE_DAYS = {"SCHEDULER_SEED_DAYS": "5"}  # 80 slots


def booked_rows(database_url: str) -> dict[int, str]:
    with reading(database_url):
        query = TimeSlot.select(TimeSlot.id, TimeSlot.booked_by_email).where(
            TimeSlot.is_booked == True  # noqa: E712
        )
        return dict(query.tuples())


def race_for_one_slot(ports: list[int], slot_id: int, count: int = 50, run_together=None):
    results = run_together(
        count, lambda i: (f"lead{i}@example.com", book(ports[i % len(ports)], slot_id, f"lead{i}@example.com"))
    )
    return [(email, status, body) for email, (status, body) in results]


def spread_bookings(ports: list[int], slot_ids: list[int], count: int = 200):
    rng = random.Random(103)
    plan = [(rng.choice(slot_ids), f"spread{i}@example.com") for i in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        statuses = list(
            pool.map(lambda i: book(ports[i % len(ports)], *plan[i])[0], range(count))
        )
    return plan, statuses


def assert_never_double_booked(database_url, ports, run_together):
    status, free = request(ports[0], "GET", "/availability")
    assert status == 200
    slot_ids = [s["id"] for s in free]
    assert len(slot_ids) == 80

    # 50 leads, one slot, released together.
    results = race_for_one_slot(ports, slot_ids[0], 50, run_together)
    statuses = sorted(status for _, status, _ in results)
    assert statuses == [200] + [409] * 49, statuses
    winner = next(email for email, status, _ in results if status == 200)
    assert booked_rows(database_url) == {slot_ids[0]: winner}

    # 200 bookings spread over all slots.
    plan, statuses = spread_bookings(ports, slot_ids, 200)
    assert set(statuses) <= {200, 409}
    rows = booked_rows(database_url)
    winners = {plan[i][0]: plan[i][1] for i, s in enumerate(statuses) if s == 200}
    assert len(winners) == statuses.count(200)  # no slot got two 200s
    assert len(rows) == 1 + statuses.count(200)
    assert {k: v for k, v in rows.items() if k != slot_ids[0]} == winners


def test_four_workers_never_double_book(servers, database_url, run_together):
    server = servers(database_url, workers=4, env=FIVE_DAYS).wait_ready()
    assert_never_double_booked(database_url, [server.port], run_together)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_servers_on_one_database_never_double_book(servers, database_url, run_together):
    """Two VMs behind a load balancer: two serve processes, requests alternating."""
    first = servers(database_url, env=FIVE_DAYS).wait_ready()
    second = servers(database_url, env=FIVE_DAYS).wait_ready()
    assert_never_double_booked(database_url, [first.port, second.port], run_together)
