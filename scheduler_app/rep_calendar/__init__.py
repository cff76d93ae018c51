"""The rep's working calendar, as plain functions: closures, extra times, the
rep's cancel, and the lists the admin page, the CLI and the API show.

Every change is a function of a ``booking.Tx``, run by
``booking.transaction`` (the admin API and the command line call them alike),
so the change feed and the outbox hear of it. Days are the rep's
(``SCHEDULER_TIMEZONE``); timestamps in the tables are naive UTC. Callers use
this package's names (``rep_calendar.close(tx, ...)``); each rule lives in one
module:

    closures.py  closed days: ``close`` (free slots taken out, booked ones kept
                 as the closure's ``conflicts``), ``reopen``, ``closures``,
                 ``check_days``, ``closed_days``
    times.py     extra times (``spans``, ``add_times``, all or nothing),
                 ``remove_slot``, and seeding's filter ``open_spans`` (never a
                 closed day, never over another slot)
    bookings.py  the bookings list (``bookings``, ``booking_row``, ``to_csv``)
                 and the rep's ``cancel``
    _common.py   what they share (the days every zone can express, changed rows)

A slot the calendar keeps out of sight for a cancelled booking's record has
the ``state`` closed or removed (``models.py``). The changes take
``booking.CALENDAR_LOCK`` exclusively (PostgreSQL; SQLite's BEGIN IMMEDIATE
serialises every write), so closures, extra times and seeding never
interleave, and a cancel or reschedule (which take it shared) never frees a
slot on a day being closed unseen.
"""

from __future__ import annotations

from ._common import EARLIEST_DAY, LATEST_DAY, Span
from .bookings import (
    CSV_COLUMNS,
    SOURCE_FIELDS,
    STATUSES,
    booking_row,
    bookings,
    cancel,
    slot_info,
    to_csv,
)
from .closures import (
    MAX_CLOSURE_DAYS,
    ClosureView,
    Reopened,
    check_days,
    close,
    closed_days,
    closure_row,
    closures,
    conflicts,
    reopen,
)
from .times import MAX_EXTRA_SLOTS, NAMED_PROBLEMS, add_times, open_spans, remove_slot, spans

__all__ = [
    "CSV_COLUMNS", "EARLIEST_DAY", "LATEST_DAY", "MAX_CLOSURE_DAYS", "MAX_EXTRA_SLOTS",
    "NAMED_PROBLEMS", "SOURCE_FIELDS", "STATUSES", "ClosureView", "Reopened", "Span",
    "add_times", "booking_row", "bookings", "cancel", "check_days", "close", "closed_days",
    "closure_row", "closures", "conflicts", "open_spans", "remove_slot", "reopen", "slot_info",
    "spans", "to_csv",
]
