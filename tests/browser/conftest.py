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
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import invariant
import pytest
from pages import Landing, serve_landing
from support import unavailable


CHROMIUM = os.environ.get("SCHEDULER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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


@pytest.fixture
def landing(tmp_path, database_url) -> Iterator[Landing]:
    """A fresh landing page and API, on SQLite and on PostgreSQL."""
    with serve_landing(tmp_path / "site", database_url) as served:
        yield served


@pytest.fixture
def landing_with(tmp_path):
    """``landing_with(database_url, env)``: a landing page and API with more settings
    (``env``), stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(database_url: str, env: dict) -> Landing:
            site = tmp_path / f"site-{len(started)}"
            started.append(stack.enter_context(serve_landing(site, database_url, env=env)))
            return started[-1]

        started: list[Landing] = []

        yield start


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


@pytest.fixture(autouse=True)
def landing_invariant(request):
    """The booking invariant (tests/invariant.py) over the database of the SQLite-only
    landings after each browser test, as tests/conftest.py checks it after every test
    that asks for ``database_url`` (``landing``, ``rep_site``). Set up first, so a
    function-scoped landing's server has stopped when it checks; the module's
    shared one is still serving, which a read does not disturb."""
    used = [request.getfixturevalue(name) for name in ("sqlite_landing", "shared_landing")
            if name in request.fixturenames]
    yield
    for landing in used:
        assert invariant.check(landing.slots.database_url)


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
