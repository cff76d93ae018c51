"""The rep's working calendar, as plain functions: closures, extra times, the
rep's cancel, and the lists the admin page, the CLI and the API show.

Every change is a function of a ``booking.Tx``, run by
``booking.transaction`` (the admin API and the command line call them alike),
so the change feed and the outbox hear of it. Days are the rep's
(``SCHEDULER_TIMEZONE``); timestamps in the tables are naive UTC.

- ``close``: a closure of whole days. In the same transaction its days' free
  slots that have not started are taken out: deleted, or, when a booking
  (cancelled since) still refers to one, kept with the state ``closed``
  (not listed, not bookable) for that booking's record. Booked slots are kept:
  they are the closure's ``conflicts``, for the rep to decide. ``reopen``
  deletes a closure and frees its kept slots; the deleted ones come back with
  the next seeding. Seeding never fills a closed day (``open_spans``).
- ``add_times``: a span cut into ``SCHEDULER_SLOT_MINUTES`` slots, all or
  nothing: a slot in the past, on a closed day or overlapping another slot is
  refused by name. ``remove_slot`` takes a free slot out (deleted, or kept
  with the state ``removed``); adding its time again opens it again.

They take ``booking.CALENDAR_LOCK`` exclusively (PostgreSQL; SQLite's BEGIN
IMMEDIATE serialises every write), so closures, extra times and seeding never
interleave, and a cancel or reschedule (which take it shared) never frees a
slot on a day being closed unseen.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import peewee

from . import booking
from .availability import SlotRow, as_datetime
from .booking import CALENDAR_LOCK, BookingView, Tx
from .db import reading, session
from .errors import (
    BookingNotFound,
    ClosureNotFound,
    ReferenceNotFound,
    SlotNotFound,
    SlotNotRemovable,
    SlotsRefused,
)
from .models import CLOSED, MAX_SLOT_ID, OPEN, REMOVED, Booking, Closure, TimeSlot, to_db_time
from .settings import Settings

# The longest closure, and the most slots one request of extra times may add.
MAX_CLOSURE_DAYS = 366
MAX_EXTRA_SLOTS = 1000
STATUSES = ("confirmed", "cancelled", "all")
# How many problems a refused request of extra times names.
NAMED_PROBLEMS = 5
# Days whose bounds every time zone can express.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)

Span = tuple[datetime, datetime]  # aware


# -- validation shared by the API and the command line ---------------------------


def check_days(first: date, last: date | None) -> date:
    """The closure's last day (``first`` when None); ``ValueError`` saying why not."""
    last = first if last is None else last
    if first < EARLIEST_DAY or last > LATEST_DAY:
        raise ValueError(f"days must be from {EARLIEST_DAY} to {LATEST_DAY}")
    if last < first:
        raise ValueError("to must be the same day as from or later")
    if (last - first).days >= MAX_CLOSURE_DAYS:
        raise ValueError(f"a closure is at most {MAX_CLOSURE_DAYS} days long")
    return last


def spans(start: datetime, end: datetime, settings: Settings) -> list[Span]:
    """``[start, end)`` (aware, or naive in the rep's zone) cut into slots of
    ``SCHEDULER_SLOT_MINUTES``; ``ValueError`` saying why it cannot be."""
    start, end = (m if m.tzinfo else m.replace(tzinfo=settings.tz) for m in (start, end))
    try:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not (datetime.combine(EARLIEST_DAY, time(), UTC) <= start
            and end <= datetime.combine(LATEST_DAY, time(), UTC)):
        raise ValueError(f"times must be from {EARLIEST_DAY} to {LATEST_DAY}")
    if end <= start:
        raise ValueError("end must be later than start")
    length = timedelta(minutes=settings.slot_minutes)
    count, rest = divmod(end - start, length)
    if rest:
        raise ValueError(f"the span must be a whole number of {settings.slot_minutes}-minute "
                         f"slots (SCHEDULER_SLOT_MINUTES); it is {_minutes(end - start)} minutes")
    if count > MAX_EXTRA_SLOTS:
        raise ValueError(f"at most {MAX_EXTRA_SLOTS} slots at once; this span has {count}")
    return [(start + i * length, start + (i + 1) * length) for i in range(count)]


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g}"


# -- reading -----------------------------------------------------------------------


def bookings(settings: Settings, now: datetime, start: datetime | None = None,
             end: datetime | None = None, status: str = "confirmed") -> list[BookingView]:
    """The bookings whose meeting starts in ``[start, end)`` (aware; ``start`` None:
    those that have not started), with ``status`` (confirmed, cancelled or all),
    in start order."""
    condition = (TimeSlot.start_time >= to_db_time(start)) if start is not None \
        else (TimeSlot.start_time > to_db_time(now))
    if end is not None:
        condition &= TimeSlot.start_time < to_db_time(end)
    if status != "all":
        condition &= Booking.status == status
    with reading(), session():
        return _views(Booking.select(Booking, TimeSlot).join(TimeSlot).where(condition))


def _views(query: peewee.Select) -> list[BookingView]:
    rows = query.order_by(TimeSlot.start_time, Booking.id)
    return [BookingView(b, _slot_row(b.slot)) for b in rows]


def _slot_row(slot: TimeSlot) -> SlotRow:
    return SlotRow(slot.id, as_datetime(slot.start_time), as_datetime(slot.end_time),
                   bool(slot.is_booked), slot.booked_by_email)


def conflicts(first: date, last: date, settings: Settings, now: datetime) -> list[BookingView]:
    """The confirmed bookings of the rep's days ``first`` to ``last`` that have not started."""
    start, end = _days_bounds(first, last, settings)
    query = (
        Booking.select(Booking, TimeSlot).join(TimeSlot)
        .where((Booking.status == "confirmed") & (TimeSlot.start_time >= start)
               & (TimeSlot.start_time < end) & (TimeSlot.start_time > to_db_time(now)))
    )
    return _views(query)


@dataclass(frozen=True)
class ClosureView:
    """A closure, the booked meetings in its days (kept), and what closing took out."""

    closure: Closure
    conflicts: list[BookingView]
    removed: list[SlotRow] = field(default_factory=list)

    @property
    def message(self) -> str:
        """What closing did, for the rep (the API's ``message``, the CLI's line)."""
        days = _day_range(self.closure.first_day, self.closure.last_day)
        text = f"Closed {days}; {len(self.removed)} free slot(s) taken out."
        if self.conflicts:
            text += (f" {len(self.conflicts)} booked meeting(s) in these days are kept: "
                     "cancel them if they cannot take place.")
        return text


def closures(settings: Settings, now: datetime) -> list[ClosureView]:
    """Every closure, by its first day, with its conflicts."""
    with reading(), session():
        rows = list(Closure.select().order_by(Closure.first_day, Closure.id))
        return [ClosureView(c, conflicts(c.first_day, c.last_day, settings, now)) for c in rows]


def closed_days(first: date, last: date) -> set[date]:
    """The days from ``first`` to ``last`` that a closure covers."""
    days: set[date] = set()
    query = Closure.select(Closure.first_day, Closure.last_day).where(
        (Closure.first_day <= last) & (Closure.last_day >= first)).tuples()
    for low, high in query:
        day = max(low, first)
        while day <= min(high, last):
            days.add(day)
            day += timedelta(days=1)
    return days


def _covering(day: date) -> Closure | None:
    return (Closure.select().where((Closure.first_day <= day) & (Closure.last_day >= day))
            .order_by(Closure.id).first())


def _days_bounds(first: date, last: date, settings: Settings) -> tuple[datetime, datetime]:
    """Days ``first`` to ``last`` of the rep as naive UTC ``[start, end)``."""
    return booking.day_bounds(first, settings)[0], booking.day_bounds(last, settings)[1]


# -- closures ----------------------------------------------------------------------


def close(tx: Tx, first: date, last: date | None = None, reason: str | None = None) -> ClosureView:
    """Close the rep's days ``first`` to ``last`` (default: ``first`` alone): take
    their free slots out, keep their booked ones (the conflicts)."""
    last = check_days(first, last)
    booking.lock(CALENDAR_LOCK)
    closure = Closure.create(first_day=first, last_day=last, reason=reason or None,
                             created_at=tx.db_now)
    start, end = _days_bounds(first, last, tx.settings)
    referred = Booking.select(Booking.id).where(Booking.slot == TimeSlot.id)
    candidates = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time,
                        peewee.fn.EXISTS(referred).alias("referred"))
        .where(~TimeSlot.is_booked & (TimeSlot.start_time >= start) & (TimeSlot.start_time < end)
               & (TimeSlot.start_time > tx.db_now) & (TimeSlot.state == OPEN))
        .tuples()
    )
    rows = list(candidates)
    gone = [r for r in rows if not r[3]]
    kept = [r for r in rows if r[3]]
    removed = []
    for batch in _batches([r[0] for r in gone]):
        # Guarded: a slot booked meanwhile (PostgreSQL) is a conflict instead.
        query = TimeSlot.delete().where(TimeSlot.id.in_(batch) & ~TimeSlot.is_booked)
        removed += _returned(query)
    for batch in _batches([r[0] for r in kept]):
        query = (TimeSlot.update(state=CLOSED, held_until=None, hold_token_hash=None)
                 .where(TimeSlot.id.in_(batch) & ~TimeSlot.is_booked))
        removed += _returned(query)
    for slot in sorted(removed):
        tx.slot_changed(slot, "removed")
    return ClosureView(closure, conflicts(first, last, tx.settings, tx.now),
                       sorted(removed, key=lambda s: s.start_time))


def _returned(query) -> list[SlotRow]:
    """The slots a DELETE or UPDATE changed (RETURNING, on both databases)."""
    rows = query.returning(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time).tuples()
    return [SlotRow(i, as_datetime(s), as_datetime(e), False, None) for i, s, e in rows.execute()]


def _batches(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for first in range(0, len(ids), size):
        yield ids[first:first + size]


@dataclass(frozen=True)
class Reopened:
    closure: Closure
    freed: list[SlotRow]  # the slots kept closed, free again

    @property
    def notice(self) -> str:
        """What reopening means for the days' other slots (the API's header, the CLI's line)."""
        days = _day_range(self.closure.first_day, self.closure.last_day)
        freed = f"{len(self.freed)} kept slot(s) are free again; " if self.freed else ""
        return (f"Reopened {days}: {freed}the other slots of these days are seeded again by "
                "the next `scheduler-app seed` if the days are within its horizon "
                "(SCHEDULER_SEED_DAYS business days).")


def _day_range(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"


def reopen(tx: Tx, closure_id: int) -> Reopened:
    """Delete closure ``closure_id``; free its days' kept slots that no other closure covers."""
    booking.lock(CALENDAR_LOCK)
    closure = Closure.get_or_none(Closure.id == closure_id) if 1 <= closure_id <= MAX_SLOT_ID \
        else None
    if closure is None:
        raise ClosureNotFound(closure_id)
    closure.delete_instance()
    start, end = _days_bounds(closure.first_day, closure.last_day, tx.settings)
    still = closed_days(closure.first_day, closure.last_day)
    marked = (
        TimeSlot.select(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time)
        .where((TimeSlot.state == CLOSED) & ~TimeSlot.is_booked
               & (TimeSlot.start_time >= start) & (TimeSlot.start_time < end)
               & (TimeSlot.start_time > tx.db_now))
        .tuples()
    )
    ids = [i for i, s, _ in marked if booking.local_day(as_datetime(s), tx.settings) not in still]
    freed = []
    for batch in _batches(ids):
        query = (TimeSlot.update(state=OPEN)
                 .where(TimeSlot.id.in_(batch) & (TimeSlot.state == CLOSED)))
        freed += _returned(query)
    freed.sort(key=lambda s: s.start_time)
    for slot in freed:
        tx.slot_changed(slot, "free")
    return Reopened(closure, freed)


# -- extra times and removing a slot ---------------------------------------------


def _when(moment: datetime, settings: Settings) -> str:
    """A naive UTC moment as the rep reads it: 2026-11-24 10:00 (America/New_York)."""
    local = moment.replace(tzinfo=UTC).astimezone(settings.tz)
    return f"{local:%Y-%m-%d %H:%M}"


def _existing(start: datetime, end: datetime) -> list[tuple]:
    """(start, end, id, state) of the slots overlapping naive UTC ``[start, end)``,
    by start time."""
    return list(
        TimeSlot.select(TimeSlot.start_time, TimeSlot.end_time, TimeSlot.id, TimeSlot.state)
        .where((TimeSlot.start_time < end) & (TimeSlot.end_time > start))
        .order_by(TimeSlot.start_time)
        .tuples()
    )


class _Overlaps:
    """Which of a set of slots overlap a span: intervals by start, with the
    running maximum of their ends (correct even if they overlap each other)."""

    def __init__(self, rows: list[tuple]):
        self.rows = [(as_datetime(s), as_datetime(e), *rest) for s, e, *rest in rows]
        self.starts = [r[0] for r in self.rows]
        self.max_end, top = [], None
        for row in self.rows:
            top = row[1] if top is None or row[1] > top else top
            self.max_end.append(top)

    def any(self, start: datetime, end: datetime) -> bool:
        i = bisect.bisect_left(self.starts, end)
        return i > 0 and self.max_end[i - 1] > start

    def first(self, start: datetime, end: datetime) -> tuple | None:
        i = bisect.bisect_left(self.starts, end)
        return next((r for r in self.rows[:i] if r[1] > start), None)


def add_times(tx: Tx, start: datetime, end: datetime) -> list[SlotRow]:
    """Add the slots of ``[start, end)`` (see ``spans``), all or none: ``SlotsRefused``
    names each one that lies in the past, on a closed day, or over another slot."""
    wanted = [(to_db_time(s), to_db_time(e)) for s, e in spans(start, end, tx.settings)]
    booking.lock(CALENDAR_LOCK)
    first_day = booking.local_day(wanted[0][0], tx.settings)
    last_day = booking.local_day(wanted[-1][0], tx.settings)
    closed = closed_days(first_day, last_day)
    rows = _existing(wanted[0][0], wanted[-1][1])
    # A slot the rep removed (kept for a cancelled booking's record) comes back
    # when the same time is added again; any other slot there is in the way.
    removed = {(as_datetime(r[0]), as_datetime(r[1])): r[2] for r in rows if r[3] == REMOVED}
    overlaps = _Overlaps([r for r in rows if r[3] != REMOVED])
    removed_starts = {s for s, _ in removed}
    problems, revive, new = [], [], []
    for s, e in wanted:
        name = f"the slot at {_when(s, tx.settings)}"
        day = booking.local_day(s, tx.settings)
        hit = overlaps.first(s, e)
        if s <= tx.db_now:
            problems.append(f"{name} is in the past")
        elif day in closed:
            problems.append(f"{name} is on a closed day (closure {_covering(day).id})")
        elif hit is not None:
            problems.append(f"{name} overlaps slot {hit[2]} ({_when(hit[0], tx.settings)}"
                            f"-{_when(hit[1], tx.settings)[-5:]})")
        elif (s, e) in removed:
            revive.append(removed[(s, e)])
        elif s in removed_starts:
            problems.append(f"{name} overlaps a removed slot with the same start")
        else:
            new.append((s.replace(tzinfo=UTC), e.replace(tzinfo=UTC)))
    if problems:
        more = len(problems) - NAMED_PROBLEMS
        listed = "; ".join(problems[:NAMED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise SlotsRefused(f"Nothing was added ({tx.settings.timezone} times): {listed}.")
    added = booking.add_slots(tx, new)
    for batch in _batches(revive):
        query = (TimeSlot.update(state=OPEN)
                 .where(TimeSlot.id.in_(batch) & (TimeSlot.state == REMOVED)))
        for slot in _returned(query):
            tx.slot_changed(slot, "added")
            added.append(slot)
    return sorted(added, key=lambda s: s.start_time)


def remove_slot(tx: Tx, slot_id: int) -> SlotRow:
    """Take a free slot out (deleted, or kept with the state ``removed`` when a
    booking refers to it). ``SlotNotRemovable`` when it is booked or held by a visitor."""
    booking.lock(CALENDAR_LOCK)
    if not 1 <= slot_id <= MAX_SLOT_ID:
        raise SlotNotFound(slot_id)
    row = TimeSlot.get_or_none(TimeSlot.id == slot_id)
    if row is None or row.state == REMOVED:
        raise SlotNotFound(slot_id)
    slot = _slot_row(row)
    if row.is_booked:
        confirmed = Booking.get_or_none((Booking.slot == slot_id) & (Booking.status == "confirmed"))
        ref = f" (booking {confirmed.reference})" if confirmed else ""
        raise SlotNotRemovable(f"Slot {slot_id} is booked{ref}; cancel the booking first.")
    if row.held_until is not None and as_datetime(row.held_until) > tx.db_now:
        raise SlotNotRemovable(f"Slot {slot_id} is held by a visitor for a few minutes; "
                               "try again when the hold has ended.")
    # Guarded as the checks above: not removed, not booked, not held (a closed
    # slot is neither).
    unchanged = ((TimeSlot.state != REMOVED) & ~TimeSlot.is_booked
                 & (TimeSlot.held_until.is_null() | (TimeSlot.held_until <= tx.db_now)))
    if Booking.select().where(Booking.slot == slot_id).exists():
        done = (TimeSlot.update(state=REMOVED, held_until=None, hold_token_hash=None)
                .where((TimeSlot.id == slot_id) & unchanged).execute())
    else:
        done = TimeSlot.delete().where((TimeSlot.id == slot_id) & unchanged).execute()
    if done != 1:
        raise SlotNotRemovable(f"Slot {slot_id} was just booked or held; reload and try again.")
    tx.slot_changed(slot._replace(is_booked=False, booked_by_email=None), "removed")
    return slot


# -- the rep's cancel, and seeding -------------------------------------------------


def cancel(tx: Tx, reference: str, reason: str | None = None) -> BookingView:
    """Cancel a booking on the lead's behalf (no token; recorded as by the rep)."""
    try:
        return booking.cancel(tx, reference, None, reason, by="rep")
    except BookingNotFound:
        raise ReferenceNotFound(reference.upper()) from None


def open_spans(tx: Tx, wanted: list[Span]) -> list[Span]:
    """Seeding's filter: the spans (aware) that are on no closed day and overlap no
    slot, such as the rep's extra times (a slot the rep removed keeps its start
    time: insert-or-ignore skips a span starting then)."""
    if not wanted:
        return []
    booking.lock(CALENDAR_LOCK)
    starts = [to_db_time(s) for s, _ in wanted]
    ends = [to_db_time(e) for _, e in wanted]
    low, high = min(starts), max(ends)
    closed = closed_days(booking.local_day(low, tx.settings), booking.local_day(high, tx.settings))
    overlaps = _Overlaps([r for r in _existing(low, high) if r[3] != REMOVED])
    return [
        (s, e) for (s, e), ds, de in zip(wanted, starts, ends)
        if booking.local_day(ds, tx.settings) not in closed and not overlaps.any(ds, de)
    ]


# -- what the lists look like: JSON rows and CSV -------------------------------------


def _iso(moment: datetime | None, settings: Settings) -> str | None:
    if moment is None:
        return None
    return as_datetime(moment).replace(tzinfo=UTC).astimezone(settings.tz).isoformat()


def slot_info(slot: SlotRow, settings: Settings) -> dict:
    """A slot's id and times (in the rep's zone, with offset)."""
    return {"id": slot.id, "start_time": _iso(slot.start_time, settings),
            "end_time": _iso(slot.end_time, settings)}


def booking_row(view: BookingView, settings: Settings) -> dict:
    """A booking as the rep's list shows it (the API's JSON, the CSV's columns)."""
    b = view.booking
    return {
        "reference": b.reference,
        "status": b.status,
        "slot": slot_info(view.slot, settings),
        "email": b.email,
        "name": b.name,
        "notes": b.notes,
        "source": json.loads(b.source) if b.source else None,
        "timezone": b.timezone,
        "created_at": _iso(b.created_at, settings),
        "cancelled_at": _iso(b.cancelled_at, settings),
        "cancel_reason": b.cancel_reason,
        "cancelled_by": b.cancelled_by,
    }


def closure_row(view: ClosureView, settings: Settings) -> dict:
    c = view.closure
    return {
        "id": c.id,
        "from": _as_date(c.first_day).isoformat(),
        "to": _as_date(c.last_day).isoformat(),
        "reason": c.reason,
        "created_at": _iso(c.created_at, settings),
        "conflicts": [booking_row(b, settings) for b in view.conflicts],
    }


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


SOURCE_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                 "referrer")
CSV_COLUMNS = ("reference", "status", "start_time", "end_time", "email", "name", "notes",
               "timezone", *SOURCE_FIELDS, "created_at", "cancelled_at", "cancel_reason",
               "cancelled_by", "slot_id")
# What a spreadsheet takes for a formula (OWASP's list: =, +, -, @, tab, CR).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell: text starting like a formula gets a ' in front, so a
    spreadsheet shows it instead of running it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(views: list[BookingView], settings: Settings) -> str:
    """The bookings as CSV with a header row (the ``csv`` module quotes commas,
    quotes and line breaks; rows end with CRLF, as RFC 4180 has them)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for view in views:
        row = booking_row(view, settings)
        source = row["source"] or {}
        cells = {**row, **{f: source.get(f) for f in SOURCE_FIELDS},
                 "start_time": row["slot"]["start_time"], "end_time": row["slot"]["end_time"],
                 "slot_id": row["slot"]["id"]}
        writer.writerow([_cell(cells[column]) for column in CSV_COLUMNS])
    return out.getvalue()
