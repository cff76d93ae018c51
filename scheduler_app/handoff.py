"""Answers computed in a thread of our own, handed to the event loops that wait for them.

A request on the loop waits on an ``asyncio.Future``; the thread that does the
work (a ``BatchThread``: ``live.versions``' reader, ``group_commit``'s writer)
settles many such futures at once. ``settle`` makes one
``call_soon_threadsafe`` per loop (one wake-up of each loop however many
requests wait on it), and skips a future whose request has gone (cancelled).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger("scheduler_app")

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


class BatchThread:
    """A thread of our own that answers the requests waiting on it, all it can take at once.

    ``ask(item)``, on a loop, queues ``item`` and waits for its answer. The
    thread (started by the first request) takes every item waiting, at most
    ``max_batch``, and hands the ``(item, future)`` pairs to ``answer``, which
    must ``settle`` them. ``close`` stops it: a request meanwhile gets
    ``refused()``; the next request after it starts the thread again.
    """

    name = "scheduler-batch"
    max_batch: int | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[object, asyncio.Future]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def ask(self, item: object) -> object:
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise self.refused()
            self._queue.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
            self._asked.notify()
        return await future

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._asked.notify()
            thread = self._thread
        if thread is not None:
            thread.join(10)
        with self._lock:
            self._closed, self._thread = False, None

    def answer(self, batch: list[tuple[object, asyncio.Future]]) -> None:
        raise NotImplementedError

    def refused(self) -> BaseException:
        return RuntimeError(f"{self.name} is stopping")

    def stopped(self) -> None:
        """In the thread, as it ends: let go of what it holds."""

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._asked.wait()
                closed = self._closed
                take = len(self._queue) if closed or self.max_batch is None \
                    else min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
            if closed:
                settle((future, None, self.refused) for _, future in batch)
                self.stopped()
                return
            try:
                self.answer(batch)
            except Exception as exc:  # a bug here must not leave every later request waiting
                log.exception("%s failed; the requests waiting on it get the error", self.name)
                settle((future, None, lambda exc=exc: exc) for _, future in batch)
