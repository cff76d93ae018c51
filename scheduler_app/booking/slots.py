"""The slot rules: read, check, take, free, hold, release, add, expire.

A slot is taken with a guarded UPDATE (``... WHERE NOT is_booked AND state =
'open' AND not held``): of any number of concurrent callers exactly one
changes the row. The reads before it only pick the precise error. A slot the
rep's calendar keeps out of sight (``state`` closed or removed, see
``models.py``) is never held nor booked. Each rule is a function of the
change's ``Tx`` (see ``tx.py``), which hears what it did.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from ..availability import SlotRow, as_datetime, is_open, not_held
from ..db import database, sql
from ..errors import (
    ClientError,
    HoldNotFound,
    SlotAlreadyBooked,
    SlotAlreadyStarted,
    SlotClosed,
    SlotHeld,
    SlotNotFound,
    SlotTooSoon,
)
from ..models import CLOSED, DEFAULT_CALENDAR_ID, MAX_SLOT_ID, REMOVED, TimeSlot, to_db_time
from ..tokens import token_hash
from .limits import day_closed
from .tx import Tx

# The statements of the booking path, written out: Peewee takes longer to
# compile a query (0.2-0.5 ms) than SQLite to run it, and a booking runs five.
# ``{p}`` is the driver's placeholder. Taking a slot is the guarded UPDATE: not
# booked, open, and not held by anyone but the bearer of the hold's token.
_READ_SLOT = (
    "SELECT id, start_time, end_time, is_booked, booked_by_email, held_until, hold_token_hash, "
    "state FROM time_slots WHERE id = {p}"
)
_TAKE_SLOT = (
    "UPDATE time_slots SET is_booked = {p}, booked_by_email = {p}, held_until = NULL, "
    "hold_token_hash = NULL WHERE id = {p} AND NOT is_booked AND state = 'open' "
    "AND (held_until IS NULL OR held_until <= {p} OR hold_token_hash = {p})"
)
# PostgreSQL: read and take in one round trip. ``s`` is the row as it was when
# the statement began (for the precise error when ``t`` took nothing); ``t`` is
# the guarded UPDATE above, which also refuses a slot that starts too soon.
_READ_AND_TAKE = (
    "WITH s AS (SELECT id, start_time, end_time, is_booked, booked_by_email, held_until, "
    "hold_token_hash, state FROM time_slots WHERE id = %s), "
    "t AS (UPDATE time_slots SET is_booked = TRUE, booked_by_email = %s, held_until = NULL, "
    "hold_token_hash = NULL WHERE id = %s AND NOT is_booked AND state = 'open' "
    "AND start_time > %s AND (held_until IS NULL OR held_until <= %s OR hold_token_hash = %s) "
    "RETURNING id) "
    "SELECT s.*, EXISTS (SELECT 1 FROM t) FROM s"
)


@dataclass(frozen=True)
class Hold:
    slot: SlotRow
    token: str
    expires_at: datetime  # naive UTC


def read_slot(slot_id: int) -> tuple[SlotRow, datetime | None, str | None, str]:
    """The slot, its hold's end, the hold's token hash and its state; ``SlotNotFound``
    if none."""
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)  # no row can have it; don't send it to the database
    row = database.execute_sql(sql(_READ_SLOT), (slot_id,)).fetchone()
    if row is None:
        raise SlotNotFound(slot_id)
    return _slot_of(row)


def check_takeable(tx: Tx, slot_id: int, hold_token: str | None) -> SlotRow:
    """The slot, if ``hold_token``'s holder (or anyone, when it is not held) may take it."""
    slot, held_until, hold_hash, state = read_slot(slot_id)
    _check(tx, slot, held_until, hold_hash, state, hold_token)
    return slot


def _slot_of(row: tuple) -> tuple[SlotRow, datetime | None, str | None, str]:
    slot = SlotRow(row[0], as_datetime(row[1]), as_datetime(row[2]), bool(row[3]), row[4])
    held_until = as_datetime(row[5]) if row[5] is not None else None
    return slot, held_until, row[6], row[7]


def _check(tx: Tx, slot: SlotRow, held_until: datetime | None, hold_hash: str | None,
           state: str, hold_token: str | None) -> None:
    """Raise why ``hold_token``'s holder (or anyone) may not take the slot, if so."""
    slot_id = slot.id
    if state == REMOVED:
        raise SlotNotFound(slot_id)
    if slot.is_booked:
        raise SlotAlreadyBooked(slot_id)
    if slot.start_time <= tx.db_now:
        raise SlotAlreadyStarted(slot_id)
    notice = tx.settings.min_notice_minutes
    if notice and slot.start_time <= tx.db_now + timedelta(minutes=notice):
        raise SlotTooSoon(slot_id, notice)
    if state == CLOSED:
        raise SlotClosed(slot_id)
    if held_until is not None and held_until > tx.db_now and not (
        hold_token and hmac.compare_digest(token_hash(hold_token), hold_hash or "")
    ):
        raise SlotHeld(slot_id)


def take(tx: Tx, slot: SlotRow, email: str, hold_token: str | None) -> SlotRow:
    """Book ``slot`` with the guarded UPDATE; ``SlotAlreadyBooked`` if another won it."""
    hold_hash = token_hash(hold_token) if hold_token else None
    updated = database.execute_sql(
        sql(_TAKE_SLOT), (True, email, slot.id, tx.db_now, hold_hash)).rowcount
    if updated != 1:
        raise SlotAlreadyBooked(slot.id)
    tx.slot_changed(slot, "booked")
    return slot._replace(is_booked=True, booked_by_email=email)


def check_and_take(tx: Tx, slot_id: int, email: str, hold_token: str | None) -> SlotRow:
    """``check_takeable`` then ``take``, the same refusals in the same order; on
    PostgreSQL in one round trip (``_READ_AND_TAKE``): when it took nothing, the
    row as it was read says why, and a slot that looked takeable was won by another."""
    if not isinstance(database.obj, peewee.PostgresqlDatabase):
        return take(tx, check_takeable(tx, slot_id, hold_token), email, hold_token)
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)
    notice = timedelta(minutes=tx.settings.min_notice_minutes or 0)
    hold_hash = token_hash(hold_token) if hold_token else None
    row = database.execute_sql(_READ_AND_TAKE, (
        slot_id, email, slot_id, tx.db_now + notice, tx.db_now, hold_hash)).fetchone()
    if row is None:
        raise SlotNotFound(slot_id)
    slot, held_until, stored_hash, state = _slot_of(row)
    if not row[8]:
        _check(tx, slot, held_until, stored_hash, state, hold_token)
        raise SlotAlreadyBooked(slot_id)
    tx.slot_changed(slot, "booked")
    return slot._replace(is_booked=True, booked_by_email=email)


def free(tx: Tx, slot: SlotRow) -> None:
    """Free a booked slot; on a day the rep has closed, keep it closed instead
    (the caller holds ``CALENDAR_LOCK``, shared)."""
    if day_closed(slot, tx.settings):
        TimeSlot.update(is_booked=False, booked_by_email=None, held_until=None,
                        hold_token_hash=None, state=CLOSED).where(TimeSlot.id == slot.id).execute()
        tx.slot_changed(slot, "removed")
        return
    TimeSlot.update(is_booked=False, booked_by_email=None, held_until=None,
                    hold_token_hash=None).where(TimeSlot.id == slot.id).execute()
    tx.slot_changed(slot, "free")


def hold(tx: Tx, slot_id: int) -> Hold:
    """Hold a free slot for ``SCHEDULER_HOLD_SECONDS``: only the token's holder may book it."""
    slot = check_takeable(tx, slot_id, None)
    token = tx.new_token()
    expires = tx.db_now + timedelta(seconds=tx.settings.hold_seconds)
    updated = (
        TimeSlot.update(held_until=expires, hold_token_hash=token_hash(token))
        .where((TimeSlot.id == slot_id) & ~TimeSlot.is_booked & is_open() & not_held(tx.now))
        .execute()
    )
    if updated != 1:
        raise SlotHeld(slot_id)
    tx.slot_changed(slot, "held")
    return Hold(slot, token, expires)


def release(tx: Tx, hold_id: int, hold_token: str) -> None:
    """Let go of a live hold (``hold_id`` is its slot's id); ``HoldNotFound`` otherwise."""
    if not 1 <= hold_id <= MAX_SLOT_ID:
        raise HoldNotFound()
    slot, held_until, hold_hash, _ = _read_slot_or(hold_id, HoldNotFound)
    if (held_until is None or held_until <= tx.db_now
            or not hmac.compare_digest(token_hash(hold_token), hold_hash or "")):
        raise HoldNotFound()
    TimeSlot.update(held_until=None, hold_token_hash=None).where(
        (TimeSlot.id == hold_id) & (TimeSlot.hold_token_hash == hold_hash)).execute()
    tx.slot_changed(slot, "free")


def _read_slot_or(slot_id: int, missing: type[ClientError]):
    try:
        return read_slot(slot_id)
    except SlotNotFound:
        raise missing() from None


def add_slots(tx: Tx, spans: list[tuple[datetime, datetime]],
              calendar_id: int = DEFAULT_CALENDAR_ID) -> list[SlotRow]:
    """Insert the calendar's slots (aware ``(start, end)``) whose start time it has
    not yet (unique (calendar_id, start_time)); return those that are new
    (seeding: several workers may seed at once)."""
    rows = [(to_db_time(start), to_db_time(end), calendar_id) for start, end in spans]
    added = []
    for first in range(0, len(rows), 500):
        query = (
            TimeSlot.insert_many(rows[first:first + 500],
                                 fields=[TimeSlot.start_time, TimeSlot.end_time,
                                         TimeSlot.calendar_id])
            .on_conflict_ignore()
            .returning(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
            .tuples()
        )
        added += [SlotRow(i, as_datetime(s), as_datetime(e), False, None) for i, s, e in query]
    for slot in added:
        tx.slot_changed(slot, "added")
    return added


def expire_holds(tx: Tx) -> int:
    """Clear the holds that have run out and record each as a ``free`` change, so
    that live widgets hear of them (a hold expires by itself for every query
    already; this only tells the feed). Return how many became free.

    One sweeper at a time: on PostgreSQL the one that does not get the advisory
    lock does nothing (SQLite's BEGIN IMMEDIATE serialises them, and the guarded
    UPDATE leaves the later ones nothing to do).
    """
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        cursor = database.execute_sql("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                      ("scheduler:expire_holds",))
        if not cursor.fetchone()[0]:
            return 0
    expired = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time,
                        TimeSlot.hold_token_hash)
        .where(TimeSlot.held_until.is_null(False) & (TimeSlot.held_until <= tx.db_now)
               & ~TimeSlot.is_booked)
        .tuples()
    )
    freed = 0
    for row in list(expired):
        slot = SlotRow(row[0], as_datetime(row[1]), as_datetime(row[2]), False, None)
        updated = (
            TimeSlot.update(held_until=None, hold_token_hash=None)
            .where((TimeSlot.id == slot.id) & ~TimeSlot.is_booked
                   & (TimeSlot.held_until <= tx.db_now) & (TimeSlot.hold_token_hash == row[3]))
            .execute()
        )
        if updated == 1 and slot.start_time > tx.db_now:  # a started slot is listed nowhere
            tx.slot_changed(slot, "free")
            freed += 1
    return freed
