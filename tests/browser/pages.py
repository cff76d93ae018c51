"""What the browser tests serve and read besides the browser: the landing page on
a static origin, the API's table as ground truth. A module of its own, so that
test files can import it (a ``conftest`` module's name is shared with tests/system's).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support import Server

from scheduler_app.db import close_database, database, init_database, session
from scheduler_app.models import Booking, TimeSlot

LANDING_PAGE = Path(__file__).resolve().parents[2] / "examples" / "landing-page"
# The API origin written in the example page: `scheduler-app serve`'s default.
EXAMPLE_API_ORIGIN = "http://127.0.0.1:8000"
REP_TIMEZONE = "America/New_York"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class StaticSite:
    """A folder served by http.server on a free loopback port, in a thread."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> StaticSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def copy_landing_page(target: Path, api_origin: str) -> None:
    """examples/landing-page with the API's origin put where the example has
    http://127.0.0.1:8000 (the two widget lines and the CSP)."""
    for source in LANDING_PAGE.iterdir():
        text = source.read_text()
        (target / source.name).write_text(text.replace(EXAMPLE_API_ORIGIN, api_origin))


class Slots:
    """Reads and changes the API's table directly, as the tests' ground truth."""

    def __init__(self, database_url: str):
        self.database_url = database_url

    @contextlib.contextmanager
    def _open(self) -> Iterator[None]:
        init_database(self.database_url)
        try:
            with session():
                yield
                # These writes go around the booking transaction: move the feed's
                # version on as it would, so that no server serves a list kept
                # from before them (and live widgets resync).
                database.execute_sql("UPDATE feed_version SET v = v + 1")
        finally:
            close_database()

    def booked(self) -> dict[int, str]:
        """{slot id: email} of the booked slots."""
        with self._open():
            query = TimeSlot.select(TimeSlot.id, TimeSlot.booked_by_email).where(TimeSlot.is_booked)
            return dict(query.tuples())

    def book_all(self) -> None:
        with self._open():
            TimeSlot.update(is_booked=True, booked_by_email="someone@example.com").execute()

    def free(self, slot_id: int) -> None:
        with self._open():
            TimeSlot.update(is_booked=False, booked_by_email=None).where(TimeSlot.id == slot_id).execute()

    def delete(self, slot_id: int) -> None:
        with self._open():
            TimeSlot.delete().where(TimeSlot.id == slot_id).execute()

    def bookings(self) -> list[dict]:
        """Every row of ``bookings``, oldest first, ``source`` parsed from its JSON."""
        with self._open():
            rows = list(Booking.select().order_by(Booking.id).dicts())
        for row in rows:
            row["source"] = json.loads(row["source"]) if row["source"] else None
        return rows

    def start_now(self, slot_id: int) -> None:
        """Make the slot's meeting have started ten minutes ago (it still lasts 30 minutes)."""
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with self._open():
            TimeSlot.update(start_time=now - timedelta(minutes=10),
                            end_time=now + timedelta(minutes=20)).where(TimeSlot.id == slot_id).execute()


@dataclass
class Landing:
    url: str  # the landing page, on the origin the API allows
    foreign_url: str  # the same page on an origin it does not allow
    api: Server
    slots: Slots

    @property
    def api_origin(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"
