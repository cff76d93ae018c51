"""Answers computed in a thread of our own, handed to the event loops that wait for them.

A request on the loop waits on an ``asyncio.Future``; the thread that does the
work (``live.versions``' reader, ``group_commit``'s writer) settles many such
futures at once. ``settle`` makes one ``call_soon_threadsafe`` per loop (one
wake-up of each loop however many requests wait on it), and skips a future
whose request has gone (cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

# A future, and what it gets: a value, or an exception made for it alone (an
# exception raised in several requests at once would collect their tracebacks).
Outcome = tuple[asyncio.Future, object, Callable[[], BaseException] | None]


def settle(outcomes: Iterable[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_resolve, waiting)


def _resolve(outcomes: list[Outcome]) -> None:
    for future, value, error in outcomes:
        if future.done():  # cancelled: its client went away
            continue
        if error is not None:
            future.set_exception(error())
        else:
            future.set_result(value)
