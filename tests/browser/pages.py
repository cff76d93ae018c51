"""What the browser tests serve and read besides the browser: the landing page on
a static origin, the API's table as ground truth. A module of its own, so that
test files can import it (a ``conftest`` module's name is shared with tests/system's).
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support import Server, bearer, exchange, free_ids, reading

from scheduler_app.db import database
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
    """The API's table as the tests' ground truth (read directly), and the states a
    test sets up, made through the running service itself over HTTP (bookings,
    cancellations, the rep's slot removal), so that each is one the service can
    produce and the booking invariant holds after every browser test."""

    def __init__(self, database_url: str, api_port: int, admin_token: str):
        self.database_url = database_url
        self.api_port = api_port
        self.admin_token = admin_token
        self._made: dict[int, dict] = {}  # slot id -> the booking that book_all made

    def booked(self) -> dict[int, str]:
        """{slot id: email} of the booked slots."""
        with reading(self.database_url):
            query = TimeSlot.select(TimeSlot.id, TimeSlot.booked_by_email).where(TimeSlot.is_booked)
            return dict(query.tuples())

    def book_all(self) -> None:
        """Book every free slot (``POST /book``), a lead each."""
        for slot_id in free_ids(self.api_port):
            status, _, body = exchange(self.api_port, "POST", "/book",
                                       {"slot_id": slot_id, "email": f"lead{slot_id}@example.org"})
            assert status == 200, body
            self._made[slot_id] = body["booking"]

    def free(self, slot_id: int) -> None:
        """Free a slot that ``book_all`` booked: its lead cancels the booking."""
        made = self._made.pop(slot_id)
        status, _, body = exchange(self.api_port, "POST", f"/bookings/{made['reference']}/cancel",
                                   headers=bearer(made["token"]))
        assert status == 200, body

    def delete(self, slot_id: int) -> None:
        """The rep takes a free slot out (``DELETE /admin/slots/{id}``)."""
        status, _, body = exchange(self.api_port, "DELETE", f"/admin/slots/{slot_id}",
                                   headers=bearer(self.admin_token))
        assert status in (200, 204), body

    def bookings(self) -> list[dict]:
        """Every row of ``bookings``, oldest first, ``source`` parsed from its JSON."""
        with reading(self.database_url):
            rows = list(Booking.select().order_by(Booking.id).dicts())
        for row in rows:
            row["source"] = json.loads(row["source"]) if row["source"] else None
        return rows

    def start_now(self, slot_id: int) -> None:
        """Make the slot's meeting have started ten minutes ago (it still lasts 30
        minutes). Time passing is the one change no request can make, so this
        moves the slot instead of the clock: the booking stays as the service made
        it. The feed's version moves on, as a change would move it, so that no
        server serves a list kept from before."""
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with reading(self.database_url), database.atomic():
            TimeSlot.update(start_time=now - timedelta(minutes=10),
                            end_time=now + timedelta(minutes=20)).where(TimeSlot.id == slot_id).execute()
            database.execute_sql("UPDATE feed_version SET v = v + 1")


@dataclass
class Landing:
    url: str  # the landing page, on the origin the API allows
    foreign_url: str  # the same page on an origin it does not allow
    api: Server
    slots: Slots

    @property
    def api_origin(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"


@contextlib.contextmanager
def serve_landing(site_dir: Path, database_url: str, admin_token: str | None = None,
                  env: dict | None = None) -> Iterator[Landing]:
    """The landing page on one origin, the API (a real serve process) on another
    that allows it, and the same page on a third origin that it does not. The
    admin API is on (``admin_token``, or a random one): the tests' rep removes
    slots through it."""
    allowed = StaticSite(site_dir).start()
    foreign = StaticSite(site_dir).start()
    admin_token = admin_token or secrets.token_urlsafe(32)
    api = Server(
        database_url,
        env={
            "SCHEDULER_CORS_ORIGINS": allowed.origin,
            "SCHEDULER_TIMEZONE": REP_TIMEZONE,
            "SCHEDULER_HOLIDAYS": "US",
            "SCHEDULER_ADMIN_TOKEN": admin_token,
            **(env or {}),
        },
    )
    copy_landing_page(site_dir, f"http://127.0.0.1:{api.port}")
    try:
        api.start().wait_ready()
        yield Landing(f"{allowed.origin}/", f"{foreign.origin}/", api,
                      Slots(database_url, api.port, admin_token))
    finally:
        api.stop()
        allowed.stop()
        foreign.stop()
