"""Extra times and removing a slot; seeding's filter of the spans it may add.

``add_times`` cuts a span into ``SCHEDULER_SLOT_MINUTES`` slots, all or nothing:
a slot in the past, on a closed day or overlapping another slot is refused by
name. ``remove_slot`` takes a free slot out (deleted, or kept with the state
``removed`` when a booking refers to it); adding its time again opens it again.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, time, timedelta

from .. import booking
from ..availability import SlotRow, as_datetime
from ..booking import CALENDAR_LOCK, Tx
from ..errors import SlotNotFound, SlotNotRemovable, SlotsRefused
from ..models import DEFAULT_CALENDAR_ID, MAX_SLOT_ID, OPEN, REMOVED, Booking, TimeSlot, to_db_time
from ..settings import Settings
from ._common import EARLIEST_DAY, LATEST_DAY, Span, batches, returned, slot_row
from .closures import closed_days, covering

# The most slots one request of extra times may add, and how many problems a
# refused one names.
MAX_EXTRA_SLOTS = 1000
NAMED_PROBLEMS = 5


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


def _when(moment: datetime, settings: Settings) -> str:
    """A naive UTC moment as the rep reads it: 2026-11-24 10:00 (America/New_York)."""
    local = moment.replace(tzinfo=UTC).astimezone(settings.tz)
    return f"{local:%Y-%m-%d %H:%M}"


def _existing(start: datetime, end: datetime, calendar_id: int | None = None) -> list[tuple]:
    """(start, end, id, state) of the slots overlapping naive UTC ``[start, end)``,
    by start time (of one calendar, or of all: ``None``)."""
    where = (TimeSlot.start_time < end) & (TimeSlot.end_time > start)
    if calendar_id is not None:
        where &= TimeSlot.calendar_id == calendar_id
    return list(
        TimeSlot.select(TimeSlot.start_time, TimeSlot.end_time, TimeSlot.id, TimeSlot.state)
        .where(where)
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
            problems.append(f"{name} is on a closed day (closure {covering(day).id})")
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
    for batch in batches(revive):
        query = (TimeSlot.update(state=OPEN)
                 .where(TimeSlot.id.in_(batch) & (TimeSlot.state == REMOVED)))
        for slot in returned(query):
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
    slot = slot_row(row)
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


def open_spans(tx: Tx, wanted: list[Span],
               calendar_id: int = DEFAULT_CALENDAR_ID) -> list[Span]:
    """Seeding's filter: the spans (aware) of the calendar that are on none of its
    closed days (its own closures and those of every calendar; days in
    ``tx.settings``' zone) and overlap none of its slots, such as the rep's extra
    times (a slot the rep removed keeps its start time: insert-or-ignore skips a
    span starting then)."""
    if not wanted:
        return []
    booking.lock(CALENDAR_LOCK)
    starts = [to_db_time(s) for s, _ in wanted]
    ends = [to_db_time(e) for _, e in wanted]
    low, high = min(starts), max(ends)
    closed = closed_days(booking.local_day(low, tx.settings),
                         booking.local_day(high, tx.settings), calendar_id)
    overlaps = _Overlaps([r for r in _existing(low, high, calendar_id) if r[3] != REMOVED])
    return [
        (s, e) for (s, e), ds, de in zip(wanted, starts, ends)
        if booking.local_day(ds, tx.settings) not in closed and not overlaps.any(ds, de)
    ]
