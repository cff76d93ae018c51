"""The ``scheduler-app`` command: serve | seed | init-db | check | relay | outbox, and
the rep's bookings | cancel | close | closures | reopen | add-slots, on the same
code as the app."""

from __future__ import annotations

import argparse
import logging.config
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit, urlunsplit

from seeders import SeederLoadError, UnknownSeederError

from . import __version__, booking, rep_calendar
from .db import close_database, init_database, session, wait_for_database
from .errors import ClientError, ConfigError, DatabaseUnavailable, SchemaError
from .logs import log_config
from .migrations import LATEST, upgrade
from .models import TimeSlot
from .notify import outbox, relay
from .protect.settings import log_configuration as log_protection
from .seeding import build_seeder, seed_days
from .server import MAX_DEFAULT_WORKERS, default_workers, make_config, serve
from .settings import PORTS, SEED_DAYS, WORKERS, Settings, whole_number
from .startup import prepare_database, utc_now

PROG = "scheduler-app"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Meeting-slot booking service. Configured by environment variables "
        "(DATABASE_URL, SCHEDULER_*); see the README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument(
        "--host", help="address to bind (default: SCHEDULER_HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, help="port (default: SCHEDULER_PORT, else 8000)"
    )
    serve.add_argument(
        "--workers", type=_workers,
        help="worker processes (default: SCHEDULER_WORKERS, else one per core, at most "
        f"{MAX_DEFAULT_WORKERS})",
    )
    serve.add_argument(
        "--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on)",
    )
    serve.add_argument(
        "--forwarded-allow-ips", metavar="IPS",
        help="comma-separated proxy addresses or networks (or *) whose forwarded headers "
        "are trusted (default: SCHEDULER_FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)",
    )
    serve.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=True,
        help="log one line per request (default: on)",
    )
    serve.add_argument(
        "--graceful-timeout", type=_non_negative, default=10, metavar="SECONDS",
        help="on SIGTERM, wait this long for requests in flight, then cancel them "
        "(default %(default)s)",
    )

    seed = commands.add_parser("seed", help="add the slots of the next N business days")
    seed.add_argument(
        "--days", type=_days, help="business days ahead (default: SCHEDULER_SEED_DAYS, 1)"
    )

    commands.add_parser(
        "init-db", help="create the schema, or apply the migrations it lacks"
    )
    commands.add_parser("check", help="validate the configuration and the database connection")

    commands.add_parser("relay", help="deliver the outbox (emails, webhooks) until stopped")
    outbox_cmd = commands.add_parser("outbox", help="list the pending and dead messages")
    outbox_actions = outbox_cmd.add_subparsers(dest="action", metavar="ACTION")
    retry = outbox_actions.add_parser("retry", help="requeue messages: due now, schedule anew")
    retry.add_argument("ids", nargs="*", type=_whole_number(1), metavar="ID",
                       help="the messages' ids (from `scheduler-app outbox`)")
    retry.add_argument("--dead", action="store_true", help="every dead message")
    _rep_commands(commands)
    return parser


def _rep_commands(commands) -> None:
    """The rep's side, as the admin API has it (README, "For the rep")."""
    zone = "in SCHEDULER_TIMEZONE"
    listing = commands.add_parser(
        "bookings", help="list the bookings (default: the upcoming confirmed ones)",
        description="List the bookings whose meeting starts in a window, in start order.")
    listing.add_argument("--from", dest="since", type=_moment, metavar="WHEN",
                         help=f"from this date or datetime ({zone} without an offset); "
                         "default: now")
    listing.add_argument("--to", dest="until", type=_moment, metavar="WHEN",
                         help="before this datetime; a date includes that whole day")
    listing.add_argument("--status", choices=rep_calendar.STATUSES, default="confirmed",
                         help="confirmed (default), cancelled or all")
    listing.add_argument("--csv", action="store_true",
                         help="write CSV (as GET /admin/bookings?format=csv) instead of a table")

    cancel = commands.add_parser("cancel", help="cancel a booking on the lead's behalf")
    cancel.add_argument("reference", metavar="REFERENCE", help="the booking's reference")
    cancel.add_argument("--reason", type=_reason, help="why (the lead is told when "
                        "notifications are configured)")

    close = commands.add_parser(
        "close", help="close days: their free slots are taken out, booked ones kept",
        description=f"Close the days FROM to TO ({zone}): their free slots are taken out and "
        "seeding leaves them empty; booked meetings in them are kept and listed.")
    close.add_argument("first", metavar="FROM", type=_day, help="the first day, YYYY-MM-DD")
    close.add_argument("last", metavar="TO", type=_day, nargs="?",
                       help="the last day (default: FROM)")
    close.add_argument("--reason", type=_reason, help="a note for the rep's list")

    commands.add_parser("closures", help="list the closed days")
    reopen = commands.add_parser("reopen", help="delete a closure: its days can be seeded again")
    reopen.add_argument("closure_id", metavar="ID", type=_whole_number(1),
                        help="the closure's id (from `scheduler-app closures`)")

    add = commands.add_parser(
        "add-slots", help="open extra times from START to END",
        description="Add the slots of START to END, cut into SCHEDULER_SLOT_MINUTES; "
        f"datetimes {zone} without an offset. All or nothing: a slot in the past, on a "
        "closed day or over another slot is refused.")
    add.add_argument("start", metavar="START", type=_moment, help="e.g. 2026-11-28T10:00")
    add.add_argument("end", metavar="END", type=_moment, help="e.g. 2026-11-28T12:00")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date as YYYY-MM-DD (got {value!r})") from None


def _moment(value: str) -> date | datetime:
    try:
        return date.fromisoformat(value) if len(value) <= 10 else datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO 8601 date (2026-11-23) or datetime (2026-11-23T09:00) "
            f"(got {value!r})") from None


def _reason(value: str) -> str:
    if len(value) > 500:
        raise argparse.ArgumentTypeError("must be at most 500 characters")
    return value


def _whole_number(low: int, high: int | None = None):
    def parse(value: str) -> int:
        try:
            return whole_number(value, low, high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_non_negative = _whole_number(0)
_port = _whole_number(*PORTS)
_workers = _whole_number(*WORKERS)
_days = _whole_number(*SEED_DAYS)


def redact(url: str) -> str:
    """The URL with its password hidden, fit for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Flags override the environment (SCHEDULER_HOST/PORT/WORKERS).
    config = make_config(
        args.host or settings.host,
        args.port or settings.port,
        args.workers or settings.workers or default_workers(),
        log_format=settings.log_format,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips or settings.protection.forwarded_allow_ips,
        graceful_timeout=args.graceful_timeout,
    )
    # Wait for the database and seed it here, once, so that an unreachable
    # database ends the command with one line instead of failing every worker.
    prepare_database(settings, build_seeder(settings), utc_now())
    relay.log_configuration(settings)  # once, not once per worker
    log_protection(settings.protection, config.workers)
    close_database()
    serve(config)
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    upgrade()
    days = args.days or settings.seed_days
    added = seed_days(seeder, utc_now(), days, settings=settings)
    print(f"Added {added} slot(s) for the next {days} business day(s).")
    return 0


def _init_db(settings: Settings, args: argparse.Namespace) -> int:
    init_database(settings.database_url)
    changes = upgrade()
    for change in changes:
        print(change)
    if not changes:
        print(f"The schema is up to date (version {LATEST}).")
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    upgrade()
    with session():
        total = TimeSlot.select().count()
    print(
        f"OK: configuration valid (seeder {seeder.name}, time zone {settings.timezone}); "
        f"database {redact(settings.database_url)} reachable, {total} slot(s)."
    )
    return 0


def _relay(settings: Settings, args: argparse.Namespace) -> int:
    logging.config.dictConfig(log_config(settings.log_format))
    init_database(settings.database_url)
    wait_for_database(settings.db_wait_seconds)
    upgrade()
    relay.log_configuration(settings)
    stop = threading.Event()

    def finish(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    relay.log.info("relay: delivering the outbox (SIGTERM or Ctrl-C stops)")
    relay.run(settings, stop)
    close_database()
    return 0


def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    init_database(settings.database_url)
    upgrade()
    with session():
        if args.action == "retry":
            if not args.ids and not args.dead:
                print(f"{PROG} outbox retry: give message ids, or --dead", file=sys.stderr)
                return 2
            done = outbox.requeue(None if args.dead else args.ids, utc_now())
            missing = sorted(set(args.ids) - set(done))
            if done:
                print(f"Requeued {len(done)} message(s): {', '.join(map(str, done))}.")
            if missing:
                print(f"Not pending or dead (sent, or no such message): "
                      f"{', '.join(map(str, missing))}.", file=sys.stderr)
                return 1
            return 0
        rows, counts = outbox.unsent(), outbox.counts()
    print(f"{counts['pending']} pending, {counts['dead']} dead, {counts['sent']} sent.")
    if rows:
        print(f"{'ID':>6}  {'STATUS':7}  {'TO':7}  {'EVENT':19}  {'BOOKING':8}  "
              f"{'TRIES':>5}  {'NEXT ATTEMPT (UTC)':19}  LAST ERROR")
    for row in rows:
        when = "-" if row.status == "dead" else f"{row.next_attempt_at:%Y-%m-%d %H:%M:%S}"
        to = row.recipient if row.channel == "email" else "webhook"
        error = (row.last_error or "").splitlines()[0][:100] if row.last_error else ""
        print(f"{row.id:>6}  {row.status:7}  {to:7}  {row.event:19}  {row.reference:8}  "
              f"{row.attempts:>5}  {when:19}  {error}")
    return 0


# -- the rep's side ------------------------------------------------------------------


class _Usage(Exception):
    """A request the command line cannot make (exit status 2)."""


def _open(settings: Settings) -> None:
    init_database(settings.database_url)
    upgrade()


def _aware(value: date | datetime, settings: Settings, end_of_day: bool = False) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=settings.tz)
    day = value + timedelta(days=1) if end_of_day else value
    return datetime.combine(day, time(), settings.tz)


def _local(moment: datetime, settings: Settings) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(settings.tz)


def _span(slot, settings: Settings) -> str:
    start, end = _local(slot.start_time, settings), _local(slot.end_time, settings)
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"


def _one_line(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _print_bookings(views, settings: Settings, indent: str = "") -> None:
    print(f"{indent}{'WHEN':22}  {'REFERENCE':9}  {'STATUS':9}  {'EMAIL':30}  {'NAME':20}  "
          "SOURCE / NOTES")
    for view in views:
        b = view.booking
        row = rep_calendar.booking_row(view, settings)
        source = row["source"] or {}
        origin = source.get("utm_source") or source.get("referrer") or ""
        extra = "; ".join(x for x in (origin, _one_line(b.notes, 60)) if x)
        print(f"{indent}{_span(view.slot, settings):22}  {b.reference:9}  {b.status:9}  "
              f"{_one_line(b.email, 30):30}  {_one_line(b.name, 20):20}  {extra}".rstrip())


def _bookings(settings: Settings, args: argparse.Namespace) -> int:
    start = _aware(args.since, settings) if args.since is not None else None
    end = _aware(args.until, settings, end_of_day=True) if args.until is not None else None
    if start is not None and end is not None and end <= start:
        raise _Usage("bookings: --to must be later than --from")
    _open(settings)
    views = rep_calendar.bookings(settings, utc_now(), start, end, args.status)
    if args.csv:
        sys.stdout.write(rep_calendar.to_csv(views, settings))
        return 0
    since = "now" if start is None else f"{start.astimezone(settings.tz):%Y-%m-%d %H:%M}"
    until = "" if end is None else f" to {end.astimezone(settings.tz):%Y-%m-%d %H:%M}"
    print(f"{len(views)} {args.status} booking(s) from {since}{until} ({settings.timezone}).")
    if views:
        _print_bookings(views, settings)
    return 0


def _run(settings: Settings, change):
    _open(settings)
    return booking.transaction(settings, utc_now(), change)


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    view = _run(settings, lambda tx: rep_calendar.cancel(tx, args.reference, args.reason))
    print(f"Booking {view.booking.reference} ({_span(view.slot, settings)} "
          f"{settings.timezone}, {view.booking.email}) is cancelled.")
    return 0


def _close(settings: Settings, args: argparse.Namespace) -> int:
    try:
        rep_calendar.check_days(args.first, args.last)
    except ValueError as exc:
        raise _Usage(f"close: {exc}") from None
    view = _run(settings, lambda tx: rep_calendar.close(tx, args.first, args.last, args.reason))
    print(f"{view.message} (closure {view.closure.id})")
    if view.conflicts:
        print(f"Kept, booked in these days ({settings.timezone}):")
        _print_bookings(view.conflicts, settings, indent="  ")
    return 0


def _closures(settings: Settings, args: argparse.Namespace) -> int:
    _open(settings)
    views = rep_calendar.closures(settings, utc_now())
    print(f"{len(views)} closure(s).")
    if views:
        print(f"{'ID':>6}  {'FROM':10}  {'TO':10}  {'BOOKED':>6}  REASON")
    for view in views:
        row = rep_calendar.closure_row(view, settings)
        print(f"{row['id']:>6}  {row['from']:10}  {row['to']:10}  {len(view.conflicts):>6}  "
              f"{_one_line(row['reason'], 60)}".rstrip())
    return 0


def _reopen(settings: Settings, args: argparse.Namespace) -> int:
    done = _run(settings, lambda tx: rep_calendar.reopen(tx, args.closure_id))
    print(done.notice)
    return 0


def _add_slots(settings: Settings, args: argparse.Namespace) -> int:
    start = _aware(args.start, settings)
    end = _aware(args.end, settings, end_of_day=True)
    try:
        rep_calendar.spans(start, end, settings)
    except ValueError as exc:
        raise _Usage(f"add-slots: {exc}") from None
    added = _run(settings, lambda tx: rep_calendar.add_times(tx, start, end))
    print(f"Added {len(added)} slot(s) ({settings.timezone}):")
    for slot in added:
        print(f"  {slot.id:>6}  {_span(slot, settings)}")
    return 0


COMMANDS = {"serve": _serve, "seed": _seed, "init-db": _init_db, "check": _check,
            "relay": _relay, "outbox": _outbox, "bookings": _bookings, "cancel": _cancel,
            "close": _close, "closures": _closures, "reopen": _reopen, "add-slots": _add_slots}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](settings, args)
    except (ConfigError, UnknownSeederError, SeederLoadError) as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except _Usage as exc:
        print(f"{PROG} {exc}", file=sys.stderr)
        return 2
    except (DatabaseUnavailable, SchemaError, ClientError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
