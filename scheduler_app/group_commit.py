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

import contextvars
import functools
from collections.abc import Callable
from typing import TypeVar

from .db import database, session, unavailable, writing
from .errors import ClientError
from .handoff import BatchThread, settle

T = TypeVar("T")

MAX_BATCH = 64  # changes in one transaction, at most


class _Failed(Exception):
    """Raised out of the transaction to roll it all back: one change failed."""


class GroupCommit(BatchThread):
    name = "scheduler-writer"
    max_batch = MAX_BATCH

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0  # transactions committed (a test counts them)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work()`` in the writer's transaction; its result once committed."""
        context = contextvars.copy_context()  # the request's (its id on any log line)
        return await self.ask(functools.partial(context.run, work))

    def answer(self, batch: list) -> None:
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
