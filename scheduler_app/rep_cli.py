"""The rep's commands: bookings | cancel | close | closures | reopen | add-slots,
as the admin API has them (README, "For the rep"), on the same code as the app."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time, timedelta

from . import booking, rep_calendar
from .db import init_database
from .migrations import upgrade
from .settings import Settings
from .startup import utc_now


def add_commands(commands, whole_number) -> None:
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
    reopen.add_argument("closure_id", metavar="ID", type=whole_number(1),
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


class Usage(Exception):
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
        raise Usage("bookings: --to must be later than --from")
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
        raise Usage(f"close: {exc}") from None
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
        raise Usage(f"add-slots: {exc}") from None
    added = _run(settings, lambda tx: rep_calendar.add_times(tx, start, end))
    print(f"Added {len(added)} slot(s) ({settings.timezone}):")
    for slot in added:
        print(f"  {slot.id:>6}  {_span(slot, settings)}")
    return 0


COMMANDS = {"bookings": _bookings, "cancel": _cancel, "close": _close, "closures": _closures,
            "reopen": _reopen, "add-slots": _add_slots}
