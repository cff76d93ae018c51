"""The relay: delivers the outbox, at least once, from any number of processes.

A relay claims one due message at a time with a lease: on PostgreSQL
``SELECT ... FOR UPDATE SKIP LOCKED`` then an UPDATE in one transaction, on
SQLite a guarded ``UPDATE ... WHERE id = ? AND attempts = ? AND status =
'pending' AND next_attempt_at <= now``. Claiming adds 1 to ``attempts`` and
moves ``next_attempt_at`` to the end of the lease (``lease_until``), so no
other relay takes the message while it is being sent, and a relay that dies
mid-send leaves it due again once the lease is over: sent again, never lost.
The outcome is written only where ``attempts`` is still the claim's (a fence),
so a relay that outlived its lease cannot overwrite a newer attempt.

A failure is retried after ``RETRY_SCHEDULE`` (10 s, 1 min, 5 min, 30 min,
2 h, 6 h, then every 12 h), each delay with +-20 % jitter, for up to 3 days:
after the last attempt the message is dead and logged at error level.
``SCHEDULER_RELAY_RETRY_SCALE`` multiplies the delays (0.01: a hundred times
faster, for tests and demos).

``Relay`` runs this loop in a thread of each ``serve`` worker (started and
stopped by the app's lifespan); ``scheduler-app relay`` runs it in the foreground.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import peewee

from ..db import database, session, writing
from ..errors import DatabaseUnavailable
from ..models import OutboxMessage, to_db_time
from ..settings import Settings
from . import DeliveryError, EndpointGone, PermanentError
from .outbox import DEAD, PENDING, SENT, WEBHOOK_GONE

log = logging.getLogger("scheduler_app.relay")

Clock = Callable[[], datetime]

# Seconds before each retry: the first six, then every 12 hours while the
# message is under 3 days old (counting the delays, without the jitter).
FIRST_DELAYS = (10, 60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600)
LATER_DELAY = 12 * 3600
GIVE_UP_AFTER = 3 * 24 * 3600
JITTER = 0.2


def _schedule() -> tuple[int, ...]:
    delays = list(FIRST_DELAYS)
    while sum(delays) + LATER_DELAY <= GIVE_UP_AFTER:
        delays.append(LATER_DELAY)
    return tuple(delays)


RETRY_SCHEDULE = _schedule()
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1  # the first try and one per delay: 12


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, scale: float = 1.0, rng: random.Random | None = None
                ) -> float | None:
    """Seconds to wait after the ``attempts``-th failed attempt; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    jitter = 1 + (rng or random).uniform(-JITTER, JITTER)
    return RETRY_SCHEDULE[attempts - 1] * scale * jitter


class Claim(NamedTuple):
    """A message this relay holds the lease of, as claimed (``attempts`` counts this one)."""

    id: int
    attempts: int
    channel: str
    recipient: str
    event: str
    payload: dict


def _due(db_now: datetime):
    return (OutboxMessage.status == PENDING) & (OutboxMessage.next_attempt_at <= db_now)


def claim(now: datetime, lease_seconds: float) -> Claim | None:
    """Take the lease of the message due longest ago; None when nothing is due."""
    db_now = to_db_time(now)
    until = db_now + timedelta(seconds=lease_seconds)
    order = (OutboxMessage.next_attempt_at, OutboxMessage.id)
    with writing(), session():
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            with database.atomic():
                row = (OutboxMessage.select(OutboxMessage.id).where(_due(db_now))
                       .order_by(*order).limit(1).for_update(skip_locked=True).first())
                if row is None:
                    return None
                (OutboxMessage.update(attempts=OutboxMessage.attempts + 1, lease_until=until,
                                      next_attempt_at=until)
                 .where(OutboxMessage.id == row.id).execute())
                return _claimed(OutboxMessage.get_by_id(row.id))
        candidates = (OutboxMessage.select(OutboxMessage.id, OutboxMessage.attempts)
                      .where(_due(db_now)).order_by(*order).limit(5).tuples())
        for message_id, attempts in list(candidates):
            taken = (
                OutboxMessage.update(attempts=attempts + 1, lease_until=until,
                                     next_attempt_at=until)
                .where((OutboxMessage.id == message_id) & (OutboxMessage.attempts == attempts)
                       & _due(db_now))
                .execute()
            )
            if taken == 1:
                return _claimed(OutboxMessage.get_by_id(message_id))
        return None  # taken by others meanwhile


def _claimed(message: OutboxMessage) -> Claim:
    return Claim(message.id, message.attempts, message.channel, message.recipient,
                 message.event, json.loads(message.payload))


def _fenced(held: Claim):
    return ((OutboxMessage.id == held.id) & (OutboxMessage.attempts == held.attempts)
            & (OutboxMessage.status == PENDING))


def record_sent(held: Claim, now: datetime) -> bool:
    """Mark the message sent; False if its lease was lost meanwhile."""
    with writing(), session():
        return (OutboxMessage.update(status=SENT, sent_at=to_db_time(now), lease_until=None)
                .where(_fenced(held)).execute()) == 1


def record_failure(held: Claim, error: str, now: datetime, settings: Settings,
                   permanent: bool = False) -> datetime | None:
    """Schedule the next attempt, or give up; return when it is due (None: dead)."""
    delay = None if permanent else retry_delay(held.attempts, settings.relay_retry_scale)
    db_now = to_db_time(now)
    values = {"last_error": error[:2000], "lease_until": None}
    if delay is None:
        values["status"] = DEAD
        due = None
    else:
        due = db_now + timedelta(seconds=delay)
        values["next_attempt_at"] = due
    with writing(), session():
        OutboxMessage.update(**values).where(_fenced(held)).execute()
    return due


def _disable_webhook(held: Claim, error: str) -> int:
    """The endpoint answered 410: this message and every pending webhook message are dead."""
    text = f"{WEBHOOK_GONE} ({error}); scheduler-app outbox retry enables it again"
    with writing(), session(), database.atomic():
        OutboxMessage.update(status=DEAD, last_error=text, lease_until=None).where(
            _fenced(held)).execute()
        return (OutboxMessage.update(status=DEAD, last_error=text, lease_until=None)
                .where((OutboxMessage.channel == "webhook") & (OutboxMessage.status == PENDING))
                .execute())


def send(held: Claim, settings: Settings) -> None:
    """Deliver the claimed message through its channel; raise on failure.

    The channels (and their libraries: smtplib and ssl, icalendar,
    standardwebhooks) are imported by the first message that needs them, so
    that a worker with nothing to send never holds them in memory.
    """
    if held.channel == "email":
        if not settings.smtp_url:
            raise DeliveryError("SCHEDULER_SMTP_URL is not set")
        from . import mail

        mail.send(mail.compose(held.id, held.recipient, held.payload, settings), settings)
    elif held.channel == "webhook":
        from . import webhooks

        webhooks.send(held.id, held.payload, settings)
    else:
        raise PermanentError(f"unknown channel {held.channel!r}")


def _describe(held: Claim) -> str:
    return (f"outbox {held.id} ({held.channel} to {held.recipient}, {held.event} "
            f"{held.payload.get('reference')})")


def deliver_one(settings: Settings, clock: Clock = utc_now) -> bool:
    """Claim one due message and deliver it; return whether there was one."""
    held = claim(clock(), settings.relay_lease_seconds)
    if held is None:
        return False
    try:
        send(held, settings)
    except EndpointGone as exc:
        others = _disable_webhook(held, str(exc))
        log.error("%s: %s; the webhook endpoint is disabled (%d more pending message(s) "
                  "given up); `scheduler-app outbox retry %d` enables it again",
                  _describe(held), exc, others, held.id)
    except Exception as exc:  # every failure of a channel is retried or given up, logged
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DeliveryError) else str(exc)
        due = record_failure(held, error, clock(), settings,
                             permanent=isinstance(exc, PermanentError))
        if due is None:
            log.error("%s is dead after %d attempt(s): %s", _describe(held), held.attempts, error)
        else:
            log.warning("%s failed (attempt %d): %s; next attempt at %s UTC", _describe(held),
                        held.attempts, error, due.isoformat(sep=" ", timespec="seconds"))
    else:
        if record_sent(held, clock()):
            log.info("%s sent (attempt %d)", _describe(held), held.attempts)
        else:
            log.warning("%s sent, but its lease had run out: it may be sent again",
                        _describe(held))
    return True


def deliver_due(settings: Settings, clock: Clock = utc_now, limit: int = 10_000) -> int:
    """Deliver every message due now, one after another; return how many were tried."""
    tried = 0
    while tried < limit and deliver_one(settings, clock):
        tried += 1
    return tried


def run(settings: Settings, stop: threading.Event, clock: Clock = utc_now) -> None:
    """Deliver until ``stop`` is set: what is due, then a look every poll interval."""
    outage = False
    while not stop.is_set():
        try:
            busy = deliver_one(settings, clock)
            if outage:
                log.info("relay: the database answers again")
                outage = False
        except DatabaseUnavailable as exc:
            if not outage:
                log.warning("relay: %s; retrying every %g s", exc, settings.relay_poll_seconds)
                outage = True
            busy = False
        except Exception:
            log.exception("relay: unexpected error; retrying")
            busy = False
        if not busy:
            stop.wait(settings.relay_poll_seconds)


class Relay:
    """The relay loop in a daemon thread, with its own database connections."""

    def __init__(self, settings: Settings, clock: Clock = utc_now):
        self.settings, self.clock = settings, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=run, args=(settings, self._stop, clock),
                                        name="scheduler-relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Ask the loop to stop and wait for it (a send in flight may take up to its
        timeout; one cut short is sent again once its lease is over)."""
        self._stop.set()
        self._thread.join(timeout)


def wanted(settings: Settings) -> bool:
    """Whether ``serve`` should run a relay: on, and something to deliver to."""
    return settings.relay_in_serve and bool(settings.smtp_url or settings.webhook_url)


def start(settings: Settings, clock: Clock = utc_now) -> Relay | None:
    """The app's relay thread, started; None when ``wanted`` says no."""
    return Relay(settings, clock).start() if wanted(settings) else None


def configuration_notes(settings: Settings) -> list[tuple[int, str]]:
    """(level, line) about what is and is not delivered, logged once at startup."""
    notes = []
    if not settings.smtp_url:
        notes.append((logging.INFO, "Email is off (SCHEDULER_SMTP_URL is not set): "
                      "no confirmation or rep notice is queued."))
    else:
        if not settings.rep_email:
            notes.append((logging.INFO, "No rep notices (SCHEDULER_REP_EMAIL is not set)."))
        if not settings.public_url:
            notes.append((logging.WARNING, "SCHEDULER_PUBLIC_URL is not set: emails and "
                          "invitations carry no link to the manage page."))
    if not settings.webhook_url:
        notes.append((logging.INFO, "Webhooks are off (SCHEDULER_WEBHOOK_URL is not set)."))
    if (settings.smtp_url or settings.webhook_url) and not settings.relay_in_serve:
        notes.append((logging.INFO, "SCHEDULER_RELAY=off: `serve` delivers nothing; "
                      "run `scheduler-app relay`."))
    return notes


def log_configuration(settings: Settings) -> None:
    for level, line in configuration_notes(settings):
        log.log(level, line)
