"""Booking rules, as plain functions, and the one transaction every change goes through.

Callers use this package's names (``booking.transaction(settings, now,
lambda tx: booking.book(tx, ...))``); each rule lives in one module:

    tx.py        the door: ``Tx`` (a change in progress), ``transaction`` and
                 ``transaction_async``, which write the change with its feed
                 and outbox rows and its Idempotency-Key's answer, all or nothing
    slots.py     the slot rules: read, check (takeable?), take (the guarded
                 UPDATE), free, ``hold``, ``release``, ``add_slots``, ``expire_holds``
    bookings.py  the booking rules: ``book``, ``find``, ``get``, ``cancel``,
                 ``reschedule``, ``book_slot``; ``Details`` and ``BookingView``
    limits.py    the limits: per email, the daily cap (and ``without_full_days``
                 for availability), the rep's days (``local_day``, ``day_bounds``),
                 the advisory locks (``lock``, ``CALENDAR_LOCK``)

The Idempotency-Key's types (``IdempotencyKey``, ``Answer``, re-exported here)
and its table rules live in ``idempotency.py``, which the door imports; the
tokens in ``tokens.py``; the rep's calendar (closures, extra times) in
``rep_calendar``, the free-slot read path in ``availability.py``.

Slots are taken with guarded UPDATEs (``... WHERE NOT is_booked AND state =
'open' AND not held``): of any number of concurrent callers exactly one changes
the row. The reads before them only pick the precise error. ``now`` is passed
in, so the rules are testable at any time. A slot's ``state`` (open, closed,
removed: ``models.py``) is the rep's calendar's, never a hold.
"""

from __future__ import annotations

from ..idempotency import Answer, IdempotencyKey
from ..tokens import new_token, token_hash
from .bookings import BookingView, Details, book, book_slot, cancel, find, get, reschedule
from .limits import (
    CALENDAR_LOCK,
    confirmed_on,
    day_bounds,
    day_closed,
    local_day,
    lock,
    without_full_days,
)
from .slots import Hold, add_slots, expire_holds, hold, release
from .tx import Tx, transaction, transaction_async

__all__ = [
    "CALENDAR_LOCK", "Answer", "BookingView", "Details",
    "Hold", "IdempotencyKey", "Tx", "add_slots", "book", "book_slot", "cancel",
    "confirmed_on", "day_bounds", "day_closed", "expire_holds", "find", "get", "hold",
    "local_day", "lock", "new_token", "release", "reschedule", "token_hash", "transaction",
    "transaction_async", "without_full_days",
]
