"""Real-browser tests: headless Chromium (Debian's package) driven by Playwright.

The example landing page is served from one origin by a small http.server and
the API by the real ``scheduler-app serve`` process on another, allowing the
page's origin. Playwright cannot download browsers here, so it drives
``/usr/bin/chromium`` (or SCHEDULER_TEST_CHROMIUM). Without playwright or
Chromium the tests are skipped, saying why, except under CI, where they fail.
Screenshots go to SCHEDULER_TEST_ARTIFACTS (default: the test's tmp_path).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import Server, unavailable

from scheduler_app.db import close_database, database, init_database, session
from scheduler_app.models import Booking, TimeSlot

LANDING_PAGE = Path(__file__).resolve().parents[2] / "examples" / "landing-page"
# The API origin written in the example page: `scheduler-app serve`'s default.
EXAMPLE_API_ORIGIN = "http://127.0.0.1:8000"
CHROMIUM = os.environ.get("SCHEDULER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REP_TIMEZONE = "America/New_York"
VISITOR_TIMEZONE = "Europe/Berlin"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str):
    unavailable(reason, "the browser tests")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); pip install '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(
            f"no Chromium at {CHROMIUM}: apt-get install chromium, or set SCHEDULER_TEST_CHROMIUM"
        )
    expect.set_options(timeout=15_000)  # a slow CI machine, not a timing assertion
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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


@contextlib.contextmanager
def serve_landing(site_dir: Path, database_url: str) -> Iterator[Landing]:
    """The landing page on one origin, the API (a real serve process) on another
    that allows it, and the same page on a third origin that it does not."""
    allowed = StaticSite(site_dir).start()
    foreign = StaticSite(site_dir).start()
    api = Server(
        database_url,
        env={
            "SCHEDULER_CORS_ORIGINS": allowed.origin,
            "SCHEDULER_TIMEZONE": REP_TIMEZONE,
            "SCHEDULER_HOLIDAYS": "US",
        },
    )
    copy_landing_page(site_dir, f"http://127.0.0.1:{api.port}")
    try:
        api.start().wait_ready()
        yield Landing(f"{allowed.origin}/", f"{foreign.origin}/", api, Slots(database_url))
    finally:
        api.stop()
        allowed.stop()
        foreign.stop()


@pytest.fixture
def landing(tmp_path, database_url) -> Iterator[Landing]:
    """A fresh landing page and API, on SQLite and on PostgreSQL."""
    with serve_landing(tmp_path / "site", database_url) as served:
        yield served


@pytest.fixture
def sqlite_landing(tmp_path) -> Iterator[Landing]:
    """A fresh landing page and API on SQLite only, where the database is not the point."""
    with serve_landing(tmp_path / "site", f"sqlite:///{tmp_path / 'scheduler.db'}") as served:
        yield served


@pytest.fixture(scope="module")
def shared_landing(tmp_path_factory) -> Iterator[Landing]:
    """One landing page and API (SQLite) for the tests that book nothing."""
    root = tmp_path_factory.mktemp("shared-landing")
    with serve_landing(root / "site", f"sqlite:///{root / 'scheduler.db'}") as served:
        yield served


@dataclass
class Visit:
    """A page in its own browser context, with what went wrong in it collected."""

    page: object
    csp_violations: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)


# Reported by the page itself, so that a violation cannot pass unnoticed.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def visit(browser):
    """``visit(url, viewport="desktop")`` opens ``url`` in a fresh context (the
    visitor in Berlin, en-US) and returns a ``Visit``. ``live=False``: the page's
    live stream stalls (it never answers, so the widget neither hears changes
    nor polls), for tests of what a stale list does."""
    contexts = []

    def open_page(url: str, viewport: str = "desktop", live: bool = True) -> Visit:
        context = browser.new_context(
            viewport=VIEWPORTS[viewport], timezone_id=VISITOR_TIMEZONE, locale="en-US"
        )
        contexts.append(context)
        if not live:
            context.route("**/availability/stream*", lambda route: None)
        context.add_init_script(_REPORT_CSP)
        page = context.new_page()
        seen = Visit(page)

        def on_console(message) -> None:
            if message.type == "error" and re.search(r"CSP violation|Content Security Policy", message.text):
                seen.csp_violations.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.js_errors.append(str(error)))
        page.goto(url)
        return seen

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def artifacts(request, tmp_path) -> Path:
    """Where this test's screenshots go: $SCHEDULER_TEST_ARTIFACTS/<test> or tmp_path."""
    base = os.environ.get("SCHEDULER_TEST_ARTIFACTS")
    if not base:
        return tmp_path
    path = Path(base) / re.sub(r"[^\w.-]+", "_", request.node.name)
    path.mkdir(parents=True, exist_ok=True)
    return path
