"""What the rep's calendar modules share: the days every zone can express, and
the rows a change returns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from ..availability import SlotRow, as_datetime
from ..models import TimeSlot
from ..settings import Settings

# Days whose bounds every time zone can express.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)

Span = tuple[datetime, datetime]  # aware


def slot_row(slot: TimeSlot) -> SlotRow:
    """A row of ``time_slots`` as a ``SlotRow``."""
    return SlotRow(slot.id, as_datetime(slot.start_time), as_datetime(slot.end_time),
                   bool(slot.is_booked), slot.booked_by_email)


def returned(query) -> list[SlotRow]:
    """The slots a DELETE or UPDATE changed (RETURNING, on both databases)."""
    rows = query.returning(TimeSlot.id, TimeSlot.start_time, TimeSlot.end_time).tuples()
    return [SlotRow(i, as_datetime(s), as_datetime(e), False, None) for i, s, e in rows.execute()]


def batches(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    """``ids`` in lists of ``size``, for ``IN (...)`` clauses."""
    for first in range(0, len(ids), size):
        yield ids[first:first + size]


def iso(moment: datetime | None, settings: Settings) -> str | None:
    """A naive UTC moment in the rep's zone, ISO 8601 with its offset."""
    if moment is None:
        return None
    return as_datetime(moment).replace(tzinfo=UTC).astimezone(settings.tz).isoformat()


def day_range(first: date, last: date) -> str:
    """``2026-11-24``, or ``2026-11-24 to 2026-11-25``."""
    return first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
