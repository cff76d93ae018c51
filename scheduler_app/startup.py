"""What serving needs before the first request, without the web framework.

``serve`` runs it once in the parent process (which then only supervises the
workers, so it need not import FastAPI), and each worker's startup runs it
again; ``init-db``, ``seed`` and ``check`` share its parts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .db import init_database, wait_for_database
from .migrations import upgrade
from .seeding import Seeder, seed_if_empty
from .settings import Settings

log = logging.getLogger("scheduler_app")


def utc_now() -> datetime:
    """The service's clock."""
    return datetime.now(UTC)


def prepare_database(settings: Settings, seeder: Seeder, now: datetime) -> int:
    """Bind the database, wait for it (up to SCHEDULER_DB_WAIT_SECONDS), bring the
    schema up to date as ``init-db`` does, and seed the table if empty (AC1).
    Return the number of slots added."""
    init_database(settings.database_url)
    wait_for_database(settings.db_wait_seconds)
    for change in upgrade():
        log.info(change)
    added = seed_if_empty(seeder, now, settings.seed_days, settings=settings)
    if added:
        log.info("Seeded %d slots with the %s seeder", added, seeder.name)
    return added
