"""SQLite's changes from the event loop: one writer thread per process, group commits.

SQLite lets one writer in at a time, so in a process the changes queue for it
anyway (``db.writing``). Sent from the loop through the thread pool, each one
paid a thread hop and a transaction of its own: BEGIN IMMEDIATE, its pages
written to the WAL, COMMIT. Here the API's changes (``booking.transaction_async``)
queue for one writer thread instead, which takes every change waiting (at most
``MAX_BATCH``), runs each in a savepoint of one write transaction and commits
them together; only then does it answer each on its loop. So nothing is
answered before it is committed, the loop never waits for the file, and under
load a transaction carries many changes.

Each change stays alone: a refusal (a ``ClientError``) rolls back its own
savepoint and is its answer, as in a transaction of its own. An unexpected
error rolls back the whole transaction: that change's caller gets the error
and the others run again (nothing of theirs was committed or answered). A
failed BEGIN or COMMIT is every waiting caller's ``DatabaseUnavailable``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from .db import database, session, unavailable, writing
from .errors import ClientError
from .handoff import settle

T = TypeVar("T")

log = logging.getLogger("scheduler_app.db")

MAX_BATCH = 64  # changes in one transaction, at most


class _Failed(Exception):
    """Raised out of the transaction to roll it all back: one change failed."""


class GroupCommit:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[Callable[[], object], asyncio.Future]] = \
            collections.deque()
        self._thread: threading.Thread | None = None
        self.commits = 0  # transactions committed (a test counts them)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work()`` in the writer's transaction; its result once committed."""
        future = asyncio.get_running_loop().create_future()
        context = contextvars.copy_context()  # the request's (its id on any log line)
        with self._lock:
            self._queue.append((functools.partial(context.run, work), future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="scheduler-writer",
                                                daemon=True)
                self._thread.start()
            self._waiting.notify()
        return await future

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._waiting.wait()
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            try:
                self._commit(batch)
            except Exception as exc:  # a bug here must not leave every later change waiting
                log.exception("The writer failed; its waiting changes get the error")
                settle((future, None, _again(exc)) for _, future in batch)

    def _commit(self, batch: list) -> None:
        while batch:
            outcomes, failed = [], None
            try:
                with writing(), session(), database.atomic("IMMEDIATE"):
                    for work, future in batch:
                        try:
                            with database.atomic():  # a savepoint: a refusal leaves nothing
                                outcomes.append((future, work(), None))
                        except ClientError as exc:
                            outcomes.append((future, None, _again(exc)))
                        except Exception as exc:
                            failed = (future, exc)
                            raise _Failed from exc
            except _Failed:
                future, exc = failed
                settle([(future, None, _again(unavailable(exc)))])
                batch = [item for item in batch if item[1] is not future]
                continue  # the others again, in a new transaction
            except Exception as exc:  # BEGIN or COMMIT (session() made it DatabaseUnavailable)
                settle((future, None, _again(unavailable(exc))) for _, future in batch)
                return
            self.commits += 1
            settle(outcomes)
            return


def _again(exc: BaseException) -> Callable[[], BaseException]:
    """The exception for a waiting caller: the same one (each is raised once)."""
    return lambda: exc


writer = GroupCommit()
