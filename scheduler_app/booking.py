"""Booking rules, as plain functions, and the one transaction every change goes through.

Every change to a slot or a booking (book, hold, release, cancel, reschedule,
and the rep's closures and extra slots) is a function of a ``Tx`` run by
``transaction``. It opens the write transaction, runs the change in a
savepoint, and in the same transaction writes what the change owes: the
change feed (``feed.record``) and the outbox (``notify.outbox.enqueue``), and
the Idempotency-Key's stored answer. A refused change (a ``ClientError``)
leaves nothing behind but that stored answer.

Slots are taken with guarded UPDATEs (``... WHERE NOT is_booked AND not held``):
of any number of concurrent callers exactly one changes the row. The reads
before them only pick the precise error. ``now`` is passed in, so the rules
are testable at any time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

import anyio
import peewee

from . import feed, group_commit
from .availability import SlotRow, as_datetime, not_held
from .db import database, session, sql, writing
from .errors import (
    BookingNotFound,
    BookingUnchangeable,
    ClientError,
    DayFull,
    HoldNotFound,
    SlotAlreadyBooked,
    SlotAlreadyStarted,
    SlotClosed,
    SlotHeld,
    SlotNotFound,
    SlotTooSoon,
    TooManyBookings,
)
from .feed import SlotChange
from .migrations import new_reference
from .models import MAX_SLOT_ID, Booking, Closure, TimeSlot, to_db_time
from .notify import outbox
from .notify.outbox import BookingEvent
from .settings import Settings

T = TypeVar("T")


def token_hash(token: str) -> str:
    """How a secret token is stored: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Tx:
    """One change in progress: what it did, for the feed and the outbox."""

    settings: Settings
    now: datetime  # aware
    key: IdempotencyKey | None = None
    slot_changes: list[SlotChange] = field(default_factory=list)
    events: list[BookingEvent] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def new_token(self) -> str:
        """A secret token for what this change creates (a booking's, a hold's).

        With an Idempotency-Key it is derived from the key, so that a replay
        can answer the same token without the token ever being stored.
        """
        token = self.key.token(len(self.tokens)) if self.key else new_token()
        self.tokens.append(token)
        return token

    @property
    def db_now(self) -> datetime:
        return to_db_time(self.now)

    def slot_changed(self, slot: SlotRow, state: str) -> None:
        self.slot_changes.append(SlotChange(slot.id, slot.start_time, slot.end_time, state))

    def booking_changed(self, name: str, booking_id: int) -> None:
        self.events.append(BookingEvent(name, booking_id))


class Answer:
    """What an idempotent request answered: replayed for a retry with its key."""

    def __init__(self, status: int, body: bytes, replayed: bool = False):
        self.status, self.body, self.replayed = status, body, replayed


class IdempotencyKey:
    """An ``Idempotency-Key`` of a request in ``scope`` (its method and path), with
    the fingerprint of its body. ``render`` turns the change's result into the
    answer stored for the key."""

    def __init__(self, scope: str, key: str, body: dict, render: Callable[[object], Answer]):
        self.scope, self.render = scope, render
        self._secret = key.encode()
        self.key = token_hash(key)  # stored hashed: the table cannot derive the tokens
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        self.fingerprint = hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()

    def token(self, index: int) -> str:
        """The ``index``-th token of the request: HMAC-SHA256 under the key itself."""
        mac = hmac.new(self._secret, f"token:{index}:{self.fingerprint}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def transaction(settings: Settings, now: datetime, change: Callable[[Tx], T],
                key: IdempotencyKey | None = None) -> T | Answer:
    """Run ``change(tx)`` as one transaction, with the feed and outbox rows it owes.

    With a ``key`` the result is an ``Answer``: the stored one when the key was
    seen with the same body in the last 24 hours (``replayed``), else the new
    one, stored with the change. A ``ClientError`` is stored too, then raised;
    anything else (a 5xx) rolls the key back with the change, so a retry runs again.
    """
    with writing(), session(), _write_transaction():
        outcome = _in_transaction(settings, now, change, key)
    return outcome.result()


async def transaction_async(settings: Settings, now: datetime, change: Callable[[Tx], T],
                            key: IdempotencyKey | None = None) -> T | Answer:
    """``transaction``, from the event loop, which it never blocks: on SQLite the
    change joins the process's writer thread, which commits the changes waiting
    together (``group_commit``); on PostgreSQL it runs in the thread pool."""
    if not isinstance(database.obj, peewee.SqliteDatabase):
        return await anyio.to_thread.run_sync(transaction, settings, now, change, key)
    outcome = await group_commit.writer.run(lambda: _in_transaction(settings, now, change, key))
    return outcome.result()


@dataclass(frozen=True)
class _Outcome:
    """What a change came to: its result, or the refusal to raise once committed
    (with a key the refusal is stored, so it must commit)."""

    value: object = None
    refused: ClientError | None = None

    def result(self):
        if self.refused is not None:
            raise self.refused
        return self.value


def _in_transaction(settings: Settings, now: datetime, change: Callable[[Tx], T],
                    key: IdempotencyKey | None) -> _Outcome:
    """Inside the write transaction: the key's claim, the change in a savepoint
    with its feed and outbox rows, the key's answer."""
    from . import idempotency  # the key's table rules; imports this module's types

    if key is not None:
        stored = idempotency.claim(key, now)
        if stored is not None:
            return _Outcome(stored)
    tx = Tx(settings, now, key)
    try:
        with database.atomic():  # a savepoint: a refused change leaves nothing
            result = change(tx)
            feed.record(tx.slot_changes, now)
            outbox.enqueue(tx.events, settings, now)
    except ClientError as exc:
        if key is None:
            raise
        idempotency.store(key, Answer(exc.status, _detail(exc)), [])
        return _Outcome(refused=exc)
    if key is not None:
        result = key.render(result)
        idempotency.store(key, result, tx.tokens)
    return _Outcome(result)


@contextlib.contextmanager
def _write_transaction() -> Iterator[None]:
    if isinstance(database.obj, peewee.SqliteDatabase):
        # Take the write lock up front: a read-then-write transaction that
        # started as a reader fails with "database is locked" when another
        # process commits in between; BEGIN IMMEDIATE waits (busy timeout).
        with database.atomic("IMMEDIATE"):
            yield
    else:
        with database.atomic():
            yield


def _detail(exc: ClientError) -> bytes:
    return json.dumps({"detail": str(exc)}, separators=(",", ":")).encode()


# -- slots -------------------------------------------------------------------

# The statements of the booking path, written out: Peewee takes longer to
# compile a query (0.2-0.5 ms) than SQLite to run it, and a booking runs five.
# ``{p}`` is the driver's placeholder. Taking a slot is the guarded UPDATE: not
# booked, and not held by anyone but the bearer of the hold's token.
_READ_SLOT = (
    "SELECT id, start_time, end_time, is_booked, booked_by_email, held_until, hold_token_hash "
    "FROM time_slots WHERE id = {p}"
)
_TAKE_SLOT = (
    "UPDATE time_slots SET is_booked = {p}, booked_by_email = {p}, held_until = NULL, "
    "hold_token_hash = NULL WHERE id = {p} AND NOT is_booked "
    "AND (held_until IS NULL OR held_until <= {p} OR hold_token_hash = {p})"
)
_INSERT_BOOKING = (
    "INSERT INTO bookings (reference, slot_id, email, name, notes, status, token_hash, "
    "sequence, timezone, source, created_at, updated_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) RETURNING id"
)


# The rep's calendar keeps some slots out of sight with a hold no token opens
# (a token's hash is 64 hex digits), lasting until the slot's end: a slot on a
# closed day that a booking (cancelled since) still refers to, so that its row
# cannot be deleted, and a slot the rep removed that one refers to. See
# rep_calendar.py; reopening the day frees the closed ones.
CLOSED_MARK = "closed"
REMOVED_MARK = "removed"
# Taken exclusively (PostgreSQL) by what changes the calendar's days (closures,
# extra times, seeding), shared by what frees a slot (cancel, reschedule), so
# that no slot is freed on a day being closed without the closure seeing it.
CALENDAR_LOCK = "calendar"


@dataclass(frozen=True)
class Hold:
    slot: SlotRow
    token: str
    expires_at: datetime  # naive UTC


def _read_slot(slot_id: int) -> tuple[SlotRow, datetime | None, str | None]:
    """The slot, its hold's end and the hold's token hash; ``SlotNotFound`` if none."""
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)  # no row can have it; don't send it to the database
    row = database.execute_sql(sql(_READ_SLOT), (slot_id,)).fetchone()
    if row is None:
        raise SlotNotFound(slot_id)
    slot = SlotRow(row[0], as_datetime(row[1]), as_datetime(row[2]), bool(row[3]), row[4])
    held_until = as_datetime(row[5]) if row[5] is not None else None
    return slot, held_until, row[6]


def _check_takeable(tx: Tx, slot_id: int, hold_token: str | None) -> SlotRow:
    """The slot, if ``hold_token``'s holder (or anyone, when it is not held) may take it."""
    slot, held_until, hold_hash = _read_slot(slot_id)
    if hold_hash == REMOVED_MARK:
        raise SlotNotFound(slot_id)
    if slot.is_booked:
        raise SlotAlreadyBooked(slot_id)
    if slot.start_time <= tx.db_now:
        raise SlotAlreadyStarted(slot_id)
    notice = tx.settings.min_notice_minutes
    if notice and slot.start_time <= tx.db_now + timedelta(minutes=notice):
        raise SlotTooSoon(slot_id, notice)
    if hold_hash == CLOSED_MARK:
        raise SlotClosed(slot_id)
    if held_until is not None and held_until > tx.db_now and not (
        hold_token and hmac.compare_digest(token_hash(hold_token), hold_hash or "")
    ):
        raise SlotHeld(slot_id)
    return slot


def _take(tx: Tx, slot: SlotRow, email: str, hold_token: str | None) -> SlotRow:
    """Book ``slot`` with the guarded UPDATE; ``SlotAlreadyBooked`` if another won it."""
    hold_hash = token_hash(hold_token) if hold_token else None
    updated = database.execute_sql(
        sql(_TAKE_SLOT), (True, email, slot.id, tx.db_now, hold_hash)).rowcount
    if updated != 1:
        raise SlotAlreadyBooked(slot.id)
    tx.slot_changed(slot, "booked")
    return slot._replace(is_booked=True, booked_by_email=email)


def _free(tx: Tx, slot: SlotRow) -> None:
    """Free a booked slot; on a day the rep has closed, keep it closed instead
    (the caller holds ``CALENDAR_LOCK``, shared)."""
    if _closed(slot, tx.settings):
        TimeSlot.update(is_booked=False, booked_by_email=None, held_until=slot.end_time,
                        hold_token_hash=CLOSED_MARK).where(TimeSlot.id == slot.id).execute()
        tx.slot_changed(slot, "removed")
        return
    TimeSlot.update(is_booked=False, booked_by_email=None, held_until=None,
                    hold_token_hash=None).where(TimeSlot.id == slot.id).execute()
    tx.slot_changed(slot, "free")


def _closed(slot: SlotRow, settings: Settings) -> bool:
    """Whether the slot's day (the rep's) is in one of the rep's closures."""
    day = local_day(slot.start_time, settings)
    return Closure.select().where((Closure.first_day <= day) & (Closure.last_day >= day)).exists()


def hold(tx: Tx, slot_id: int) -> Hold:
    """Hold a free slot for ``SCHEDULER_HOLD_SECONDS``: only the token's holder may book it."""
    slot = _check_takeable(tx, slot_id, None)
    token = tx.new_token()
    expires = tx.db_now + timedelta(seconds=tx.settings.hold_seconds)
    updated = (
        TimeSlot.update(held_until=expires, hold_token_hash=token_hash(token))
        .where((TimeSlot.id == slot_id) & ~TimeSlot.is_booked & not_held(tx.now))
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
    slot, held_until, hold_hash = _read_slot_or(hold_id, HoldNotFound)
    if (held_until is None or held_until <= tx.db_now
            or not hmac.compare_digest(token_hash(hold_token), hold_hash or "")):
        raise HoldNotFound()
    TimeSlot.update(held_until=None, hold_token_hash=None).where(
        (TimeSlot.id == hold_id) & (TimeSlot.hold_token_hash == hold_hash)).execute()
    tx.slot_changed(slot, "free")


def _read_slot_or(slot_id: int, missing: type[ClientError]):
    try:
        return _read_slot(slot_id)
    except SlotNotFound:
        raise missing() from None


def add_slots(tx: Tx, spans: list[tuple[datetime, datetime]]) -> list[SlotRow]:
    """Insert the slots (aware ``(start, end)``) whose start time is not taken yet;
    return those that are new (seeding: several workers may seed at once)."""
    rows = [(to_db_time(start), to_db_time(end)) for start, end in spans]
    added = []
    for first in range(0, len(rows), 500):
        query = (
            TimeSlot.insert_many(rows[first:first + 500],
                                 fields=[TimeSlot.start_time, TimeSlot.end_time])
            .on_conflict_ignore()
            .returning(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
            .tuples()
        )
        added += [SlotRow(i, as_datetime(s), as_datetime(e), False, None) for i, s, e in query]
    for slot in added:
        tx.slot_changed(slot, "added")
    return added


# -- bookings ----------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """What a lead sends with a booking, validated by the HTTP layer."""

    email: str
    name: str | None = None
    notes: str | None = None
    timezone: str | None = None
    source: dict | None = None


@dataclass(frozen=True)
class BookingView:
    """A booking with its slot, as the API shows it; ``token`` only when just made."""

    booking: Booking
    slot: SlotRow
    token: str | None = None


def book(tx: Tx, slot_id: int, details: Details, hold_token: str | None = None) -> BookingView:
    """Book slot ``slot_id`` for the lead; return the booking with its new token.

    Raises ``SlotNotFound``, ``SlotAlreadyBooked``, ``SlotAlreadyStarted``,
    ``SlotHeld``, ``SlotTooSoon``, ``DayFull`` or ``TooManyBookings``.
    """
    slot = _check_takeable(tx, slot_id, hold_token)
    _check_email_limit(tx, details.email)
    _check_day_cap(tx, slot)
    slot = _take(tx, slot, details.email, hold_token)
    token = tx.new_token()
    fields = {
        "reference": new_reference(), "slot_id": slot.id, "email": details.email,
        "name": details.name, "notes": details.notes, "status": "confirmed",
        "token_hash": token_hash(token), "sequence": 0, "timezone": details.timezone,
        "source": json.dumps(details.source, sort_keys=True) if details.source else None,
        "created_at": tx.db_now, "updated_at": tx.db_now,
    }
    [booking_id] = database.execute_sql(sql(_INSERT_BOOKING), tuple(fields.values())).fetchone()
    booking = Booking(id=booking_id, **fields)
    tx.booking_changed("booking.created", booking.id)
    return BookingView(booking, slot, token)


def find(reference: str, token: str | None) -> BookingView:
    """The booking of ``reference`` if ``token`` is its token (``None``: the rep's
    access, no token needed); ``BookingNotFound`` for an unknown reference and a
    wrong token alike."""
    booking = Booking.get_or_none(Booking.reference == reference.upper())
    if token is not None:
        stored = booking.token_hash if booking is not None else None
        # Compare even when there is nothing to compare with, in the same time.
        if not hmac.compare_digest(token_hash(token), stored or "0" * 64) or stored is None:
            raise BookingNotFound()
    if booking is None:
        raise BookingNotFound()
    slot, _, _ = _read_slot(booking.slot_id)
    if booking.status != "confirmed":
        # Its slot is no longer this booking's: never show who booked it since.
        slot = slot._replace(is_booked=False, booked_by_email=None)
    return BookingView(booking, slot)


def get(reference: str, token: str) -> BookingView:
    """Read a booking with its token (outside any change)."""
    with session():
        return find(reference, token)


def cancel(tx: Tx, reference: str, token: str | None, reason: str | None = None,
           by: str = "lead") -> BookingView:
    """Cancel the booking and free its slot; again: the same state. ``token`` None:
    the rep's cancel. ``BookingUnchangeable`` once the meeting has started."""
    _lock(CALENDAR_LOCK, shared=True)  # before any row: see CALENDAR_LOCK
    view = find(reference, token)
    booking = view.booking
    if booking.status == "cancelled":
        return view
    if view.slot.start_time <= tx.db_now:
        raise BookingUnchangeable("This meeting has already started and can no longer be cancelled.")
    updated = (
        Booking.update(status="cancelled", cancelled_at=tx.db_now, cancel_reason=reason,
                       cancelled_by=by, sequence=Booking.sequence + 1, updated_at=tx.db_now)
        .where((Booking.id == booking.id) & (Booking.status == "confirmed")
               & (Booking.slot == booking.slot_id))
        .execute()
    )
    if updated != 1:
        # Changed since it was read (PostgreSQL: a concurrent cancel, or a
        # reschedule that moved it): cancel it as it is now, or answer it cancelled.
        return cancel(tx, reference, token, reason, by)
    _free(tx, view.slot)
    tx.booking_changed("booking.cancelled", booking.id)
    return BookingView(Booking.get_by_id(booking.id), view.slot._replace(is_booked=False,
                                                                           booked_by_email=None))


def reschedule(tx: Tx, reference: str, token: str, slot_id: int,
               hold_token: str | None = None) -> BookingView:
    """Move the booking to slot ``slot_id``: take the new slot, free the old one,
    ``sequence`` + 1, all or nothing. Same reference and token."""
    _lock(CALENDAR_LOCK, shared=True)  # before any row: see CALENDAR_LOCK
    view = find(reference, token)
    booking = view.booking
    if booking.status != "confirmed":
        raise BookingUnchangeable("This booking is cancelled; book a new time instead.")
    if view.slot.start_time <= tx.db_now:
        raise BookingUnchangeable("This meeting has already started and can no longer be moved.")
    if slot_id == view.slot.id:
        return view
    new_slot = _check_takeable(tx, slot_id, hold_token)
    _check_day_cap(tx, new_slot)
    new_slot = _take(tx, new_slot, booking.email, hold_token)
    updated = (
        Booking.update(slot=new_slot.id, sequence=Booking.sequence + 1, updated_at=tx.db_now)
        .where((Booking.id == booking.id) & (Booking.status == "confirmed")
               & (Booking.slot == view.slot.id))
        .execute()
    )
    if updated != 1:  # cancelled or moved meanwhile: undo it all (the savepoint)
        raise BookingUnchangeable("This booking changed meanwhile; reload it and try again.")
    _free(tx, view.slot)
    tx.booking_changed("booking.rescheduled", booking.id)
    return BookingView(Booking.get_by_id(booking.id), new_slot)


def _lock(key: str, shared: bool = False) -> None:
    """PostgreSQL: serialise the transactions that check the same limit (SQLite's
    BEGIN IMMEDIATE already serialises every write); ``shared`` ones only with
    those that take ``key`` exclusively."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        database.execute_sql(f"SELECT {function}(hashtext(%s))", (key,))


def _check_email_limit(tx: Tx, email: str) -> None:
    limit = tx.settings.max_upcoming_per_email
    if not limit:
        return
    _lock(f"email:{email.lower()}")
    upcoming = (
        Booking.select()
        .join(TimeSlot, on=(Booking.slot == TimeSlot.id))
        .where((peewee.fn.LOWER(Booking.email) == email.lower())
               & (Booking.status == "confirmed") & (TimeSlot.start_time > tx.db_now))
        .count()
    )
    if upcoming >= limit:
        raise TooManyBookings(limit)


def day_bounds(day: date, settings: Settings) -> tuple[datetime, datetime]:
    """The rep's ``day`` as naive UTC ``[start, end)``."""
    start = datetime.combine(day, time(), settings.tz)
    return to_db_time(start), to_db_time(datetime.combine(day + timedelta(days=1), time(),
                                                          settings.tz))


def local_day(moment: datetime, settings: Settings) -> date:
    """The rep's day of a naive UTC moment."""
    return moment.replace(tzinfo=UTC).astimezone(settings.tz).date()


def confirmed_on(day: date, settings: Settings) -> int:
    """How many confirmed bookings the rep's ``day`` has."""
    start, end = day_bounds(day, settings)
    return (
        Booking.select()
        .join(TimeSlot, on=(Booking.slot == TimeSlot.id))
        .where((Booking.status == "confirmed") & (TimeSlot.start_time >= start)
               & (TimeSlot.start_time < end))
        .count()
    )


def without_full_days(rows: list[tuple], settings: Settings, now: datetime) -> list[tuple]:
    """``availability.free_slot_rows`` without the slots of days that have
    ``SCHEDULER_MAX_BOOKINGS_PER_DAY`` confirmed bookings (the rep's days)."""
    with session():
        starts = (
            TimeSlot.select(TimeSlot.start_time)
            .join(Booking, on=(Booking.slot == TimeSlot.id))
            .where((Booking.status == "confirmed") & (TimeSlot.start_time > to_db_time(now)))
            .tuples()
        )
        per_day: dict[date, int] = {}
        for (start,) in starts:
            day = local_day(as_datetime(start), settings)
            per_day[day] = per_day.get(day, 0) + 1
    full = {day for day, count in per_day.items() if count >= settings.max_bookings_per_day}
    if not full:
        return rows
    return [row for row in rows if local_day(as_datetime(row[1]), settings) not in full]


def _check_day_cap(tx: Tx, slot: SlotRow) -> None:
    cap = tx.settings.max_bookings_per_day
    if not cap:
        return
    day = local_day(slot.start_time, tx.settings)
    _lock(f"day:{day.isoformat()}")
    if confirmed_on(day, tx.settings) >= cap:
        raise DayFull(slot.id)


# -- the spec's booking, kept for callers that need only the slot --------------


def book_slot(slot_id: int, email: str, now: datetime,
              settings: Settings | None = None) -> SlotRow:
    """Book slot ``slot_id`` for ``email``; return the booked slot (the spec's POST /book)."""
    view = transaction(settings or Settings(), now, lambda tx: book(tx, slot_id, Details(email)))
    return view.slot


# -- the sweeper's change: holds that ran out ------------------------------------


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
