"""The outbox: the messages a booking change owes, written in its transaction."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ..settings import Settings


class BookingEvent(NamedTuple):
    """A change to a booking that people must hear of."""

    name: str  # booking.created | booking.rescheduled | booking.cancelled
    booking_id: int


def enqueue(events: list[BookingEvent], settings: Settings, now: datetime) -> int:
    """Write the messages ``events`` owe to the configured destinations; return how many.

    No destination is configured yet (email and webhooks come with their
    settings), so nothing is written.
    """
    return 0
