"""The rep's commands (bookings, cancel, close, closures, reopen, add-slots) run
as a user runs them: real processes on SQLite and PostgreSQL, their clock set
by faketime (Debian's package) to Friday 2026-11-20 15:00 UTC, 10:00 in New
York, so that ``seed`` fills Monday 23, Tuesday 24 and Wednesday 25 November.
"""

from __future__ import annotations

import csv
import io
import glob
import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from support import FRIDAY, SCRIPT, free_port, unavailable

from scheduler_app import booking
from scheduler_app.booking import Details
from scheduler_app.db import close_database, init_database, session
from scheduler_app.models import Booking, TimeSlot
from scheduler_app.settings import Settings

NOW = FRIDAY  # tests/support.py's fixed instant
NY = ZoneInfo("America/New_York")
TUESDAY = date(2026, 11, 24)
COMMANDS = ("bookings", "cancel", "close", "closures", "reopen", "add-slots")


@pytest.fixture(scope="module")
def faketime() -> dict[str, str]:
    """The environment that runs a program at the fake time: libfaketime preloaded
    directly. (Its ``faketime`` wrapper keeps a semaphore in /dev/shm named after its
    pid, which a killed run leaves behind: a later wrapper with that pid then fails
    with "sem_open: File exists".)"""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        unavailable("libfaketime is missing (Debian package faketime)", "the CLI clock tests")
    return {"LD_PRELOAD": found[0], "FAKETIME": "@2026-11-20 15:00:00",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def cli(faketime, database_url):
    """``cli(*args)``: ``scheduler-app ARGS`` at the fake time, on the test's database."""
    env = {**os.environ, "DATABASE_URL": database_url, "SCHEDULER_TIMEZONE": "America/New_York",
           "TZ": "UTC", **faketime}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SCRIPT, *args],
            env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False)

    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess, status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[-1]


@pytest.fixture
def seeded(cli, database_url):
    """Three business days seeded by the CLI; returns a way into the database."""
    assert ok(cli("seed", "--days", "3")).strip() == \
        "Added 48 slot(s) for the next 3 business day(s)."
    return Database(database_url)


class Database:
    """The test's own look into the CLI's database, and bookings made as the widget does."""

    def __init__(self, url: str):
        self.url = url
        self.settings = Settings(database_url=url, timezone="America/New_York")

    def __enter__(self):
        init_database(self.url)
        return self

    def __exit__(self, *exc):
        close_database()

    def book(self, slot_id: int, email: str, **kw) -> booking.BookingView:
        with self:
            return booking.transaction(self.settings, NOW, lambda tx: booking.book(
                tx, slot_id, Details(email, **kw)))

    def slots_on(self, day: date) -> int:
        start = datetime(day.year, day.month, day.day, tzinfo=NY).astimezone(UTC)
        with self, session():
            return TimeSlot.select().where(
                (TimeSlot.start_time >= start.replace(tzinfo=None))
                & (TimeSlot.start_time < (start + timedelta(days=1)).replace(tzinfo=None))).count()

    def booking(self, reference: str) -> Booking:
        with self, session():
            return Booking.get(Booking.reference == reference)


def test_the_fake_clock_is_friday_morning_in_new_york(cli):
    assert ok(cli("bookings")) == "0 confirmed booking(s) from now (America/New_York).\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    result = subprocess.run([SCRIPT, command, "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: scheduler-app {command} ")


def test_a_closed_tuesday_gets_no_slots_from_seed_until_it_is_reopened(cli, database_url):
    assert TUESDAY.weekday() == 1 and TUESDAY not in holidays.US(years=2026)
    db = Database(database_url)
    closed = ok(cli("close", "2026-11-24", "--reason", "Dentist"))
    assert closed == "Closed 2026-11-24; 0 free slot(s) taken out. (closure 1)\n"
    assert ok(cli("seed", "--days", "3")) == "Added 32 slot(s) for the next 3 business day(s).\n"
    assert [db.slots_on(TUESDAY + timedelta(days=d)) for d in (-1, 0, 1)] == [16, 0, 16]
    listed = ok(cli("closures")).splitlines()
    assert listed[0] == "1 closure(s)."
    assert listed[2].split() == ["1", "2026-11-24", "2026-11-24", "0", "Dentist"]
    assert ok(cli("reopen", "1")) == (
        "Reopened 2026-11-24: the other slots of these days are seeded again by the next "
        "`scheduler-app seed` if the days are within its horizon (SCHEDULER_SEED_DAYS business "
        "days).\n")
    assert ok(cli("closures")) == "0 closure(s).\n"
    assert ok(cli("seed", "--days", "3")) == "Added 16 slot(s) for the next 3 business day(s).\n"
    assert db.slots_on(TUESDAY) == 16


def test_closing_a_day_with_a_booking_keeps_it_and_says_so(cli, seeded):
    view = seeded.book(20, "kept@example.com", name="Kept Lead")
    out = ok(cli("close", "2026-11-24", "2026-11-25")).splitlines()
    assert out[0] == ("Closed 2026-11-24 to 2026-11-25; 31 free slot(s) taken out. 1 booked "
                      "meeting(s) in these days are kept: cancel them if they cannot take place. "
                      "(closure 1)")
    assert out[1] == "Kept, booked in these days (America/New_York):"
    assert out[3].split()[:5] == ["2026-11-24", "10:30-11:00", view.booking.reference,
                                  "confirmed", "kept@example.com"]
    assert seeded.slots_on(TUESDAY) == 1


def test_the_bookings_list_as_a_table_and_as_csv(cli, seeded):
    first = seeded.book(2, "first@example.com", name="First", notes="=cmd|' /C calc'!A0",
                        source={"utm_source": "newsletter"})
    second = seeded.book(18, "second@example.com", notes='Two, "quoted"\nlines')
    table = ok(cli("bookings")).splitlines()
    assert table[0] == "2 confirmed booking(s) from now (America/New_York)."
    assert table[1].split()[:6] == ["WHEN", "REFERENCE", "STATUS", "EMAIL", "NAME", "SOURCE"]
    assert table[2].split()[:6] == ["2026-11-23", "09:30-10:00", first.booking.reference,
                                    "confirmed", "first@example.com", "First"]
    assert "newsletter; =cmd|' /C calc'!A0" in table[2]
    assert table[3].endswith('Two, "quoted" lines')  # one line in the table
    rows = list(csv.DictReader(io.StringIO(ok(cli("bookings", "--csv")), newline="")))
    assert [r["reference"] for r in rows] == [first.booking.reference, second.booking.reference]
    assert rows[0]["notes"] == "'=cmd|' /C calc'!A0"  # defused for spreadsheets
    assert rows[1]["notes"] == 'Two, "quoted"\nlines'  # quoted, and back as it was
    tuesday = ok(cli("bookings", "--from", "2026-11-24", "--to", "2026-11-24")).splitlines()
    assert tuesday[0] == ("1 confirmed booking(s) from 2026-11-24 00:00 to 2026-11-25 00:00 "
                          "(America/New_York).")
    assert ok(cli("bookings", "--status", "cancelled")).startswith("0 cancelled booking(s)")


def test_the_rep_cancels_a_booking(cli, seeded):
    view = seeded.book(5, "lead@example.com")
    reference = view.booking.reference
    out = ok(cli("cancel", reference.lower(), "--reason", "Off sick"))
    assert out == (f"Booking {reference} (2026-11-23 11:00-11:30 America/New_York, "
                   "lead@example.com) is cancelled.\n")
    stored = seeded.booking(reference)
    assert (stored.status, stored.cancelled_by, stored.cancel_reason) == (
        "cancelled", "rep", "Off sick")
    assert ok(cli("bookings", "--status", "cancelled")).startswith("1 cancelled booking(s)")
    assert one_line_error(cli("cancel", "NOSUCH00"), 1) == \
        "scheduler-app: No booking has the reference NOSUCH00."


def test_extra_times_from_the_command_line(cli, seeded):
    out = ok(cli("add-slots", "2026-11-28T10:00", "2026-11-28T11:00")).splitlines()
    assert out[0] == "Added 2 slot(s) (America/New_York):"
    assert [line.split()[1:] for line in out[1:]] == [["2026-11-28", "10:00-10:30"],
                                                      ["2026-11-28", "10:30-11:00"]]
    again = one_line_error(cli("add-slots", "2026-11-28T10:30", "2026-11-28T11:30"), 1)
    assert again.startswith("scheduler-app: Nothing was added (America/New_York times): the slot "
                            "at 2026-11-28 10:30 overlaps slot ")
    assert one_line_error(cli("add-slots", "2026-11-28T12:00", "2026-11-28T12:45"), 2) == (
        "scheduler-app add-slots: the span must be a whole number of 30-minute slots "
        "(SCHEDULER_SLOT_MINUTES); it is 45 minutes")
    assert one_line_error(cli("add-slots", "noon", "2026-11-28T12:45"), 2).endswith(
        "argument START: must be an ISO 8601 date (2026-11-23) or datetime (2026-11-23T09:00) "
        "(got 'noon')")
    past = one_line_error(cli("add-slots", "2026-11-20T08:00", "2026-11-20T08:30"), 1)
    assert past.endswith("the slot at 2026-11-20 08:00 is in the past.")


@pytest.mark.parametrize(("args", "status", "message"), [
    (("close", "2026-11-25", "2026-11-24"),
     2, "scheduler-app close: to must be the same day as from or later"),
    (("close", "2026-13-01"), 2, "argument FROM: must be a date as YYYY-MM-DD (got '2026-13-01')"),
    (("reopen", "7"), 1, "scheduler-app: Closure 7 does not exist."),
    (("reopen", "zero"), 2, "argument ID: must be a whole number of at least 1 (got 'zero')"),
    (("bookings", "--from", "2026-11-25", "--to", "2026-11-24"),
     2, "scheduler-app bookings: --to must be later than --from"),
    (("bookings", "--status", "booked"), 2, "argument --status: invalid choice: 'booked'"),
    (("cancel", "A" * 8, "--reason", "x" * 501), 2, "argument --reason: must be at most 500"),
])
def test_bad_requests_end_with_one_line(cli, args, status, message):
    assert message in one_line_error(cli(*args), status)


@pytest.mark.parametrize("command", [("bookings",), ("closures",), ("close", "2026-11-24"),
                                     ("reopen", "1"), ("cancel", "AAAAAAAA"),
                                     ("add-slots", "2026-11-28T10:00", "2026-11-28T11:00")])
def test_an_unreachable_database_or_a_bad_setting_ends_with_one_line(cli, command):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    down = one_line_error(cli(*command, DATABASE_URL=url), 1)
    assert down.startswith("scheduler-app: The database is unavailable:")
    bad = one_line_error(cli(*command, SCHEDULER_TIMEZONE="Mars/Olympus"), 2)
    assert bad.startswith("scheduler-app: configuration error: SCHEDULER_TIMEZONE")
