"""booking.transaction_async: the changes of the API, from the event loop.

On SQLite they go to the process's writer thread, which commits the changes
waiting together (scheduler_app/group_commit.py); on PostgreSQL to the thread
pool. Either way each change stays alone and nothing is answered before it
is committed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import invariant
import pytest
from support import run_coroutine as run

from scheduler_app import booking, group_commit
from scheduler_app.db import database
from scheduler_app.errors import SlotAlreadyBooked, SlotNotFound

FIRST = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def add_slots(settings, now, count: int) -> None:
    spans = [(FIRST + timedelta(minutes=30 * i), FIRST + timedelta(minutes=30 * (i + 1)))
             for i in range(count)]
    booking.transaction(settings, now, lambda tx: booking.add_slots(tx, spans))


def committed_emails(url: str) -> set[str]:
    """The confirmed bookings' emails, read on a connection of its own: committed rows only."""
    conn, _ = invariant.connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT email FROM bookings WHERE status = 'confirmed'")
        return {row[0] for row in cursor.fetchall()}
    finally:
        conn.close()


def test_each_change_is_answered_once_committed_and_alone(db, settings, clock):
    now = clock()
    add_slots(settings, now, 40)
    url = settings.database_url
    commits = group_commit.writer.commits

    async def book(slot_id: int, email: str):
        try:
            view = await booking.transaction_async(
                settings, now, lambda tx: booking.book(tx, slot_id, booking.Details(email)))
        except (SlotAlreadyBooked, SlotNotFound) as exc:
            return type(exc)
        # Answered: another connection must already see it.
        assert email in committed_emails(url)
        return view.slot.id

    async def burst():
        # 40 slots, each asked for twice, and 5 slots that do not exist.
        calls = [book(i, f"lead{i}@example.com") for i in range(1, 41)]
        calls += [book(i, f"other{i}@example.com") for i in range(1, 41)]
        calls += [book(1000 + i, f"none{i}@example.com") for i in range(5)]
        return await asyncio.gather(*calls)

    results = run(burst())
    # Exactly one of each pair won: which one is the writer's (or the thread
    # pool's) order, which nothing promises; the loser was refused and left alone.
    winners = set()
    for i, pair in enumerate(zip(results[:40], results[40:80]), start=1):
        assert sorted(pair, key=str) == sorted([i, SlotAlreadyBooked], key=str), (i, pair)
        winners.add(f"lead{i}@example.com" if pair[0] == i else f"other{i}@example.com")
    assert results[80:] == [SlotNotFound] * 5
    assert committed_emails(url) == winners
    if url.startswith("sqlite"):
        # Fewer transactions than changes: they were committed together.
        assert 0 < group_commit.writer.commits - commits < 85


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: no writer
def test_an_unexpected_error_fails_its_change_only(db, settings, clock):
    now = clock()
    add_slots(settings, now, 10)

    def broken(tx):
        booking.book(tx, 5, booking.Details("broken@example.com"))
        database.execute_sql("SELECT * FROM no_such_table")  # a bug, not a refusal

    async def burst():
        calls = [booking.transaction_async(
            settings, now,
            lambda tx, i=i: booking.book(tx, i, booking.Details(f"l{i}@example.com")))
            for i in (1, 2, 3, 4)]
        calls.insert(2, booking.transaction_async(settings, now, broken))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = run(burst())
    assert isinstance(results[2], Exception) and "no_such_table" in str(results[2])
    assert [r.slot.id for i, r in enumerate(results) if i != 2] == [1, 2, 3, 4]
    assert committed_emails(settings.database_url) == {f"l{i}@example.com" for i in (1, 2, 3, 4)}
