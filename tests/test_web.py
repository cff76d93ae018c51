"""The widget's files and the demo page, as the app serves them.

Under tox the package is installed from a wheel, so the server process here
serves the files from the installed package data, not from the source tree.
"""

from __future__ import annotations

import re
from importlib.resources import files
from urllib.request import urlopen

import pytest
from support import Server

import scheduler_app
from scheduler_app.admin import PAGE_FILES as ADMIN_FILES
from scheduler_app.web import DEMO_CSP, FILES, MANAGE_PATH

STATIC = files(scheduler_app) / "static"


@pytest.mark.parametrize("path", sorted(FILES))
def test_each_file_is_served_with_its_type(client, path):
    response = client.get(path)
    name, media_type, _ = FILES[path]
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC / name).read_bytes()


def test_the_demo_page_sends_a_strict_policy(client):
    policy = client.get("/demo").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for kind in ("script-src", "style-src", "connect-src"):
        assert directives[kind] == "'self'"
    assert "unsafe" not in policy


def test_the_widget_can_be_embedded_from_another_origin(client):
    response = client.get("/widget.js", headers={"Origin": "https://www.example.com"})
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "public" in response.headers["cache-control"]


def test_the_pages_and_files_are_not_in_the_api_schema(client):
    assert set(client.get("/openapi.json").json()["paths"]) == {
        "/availability", "/availability/stream", "/book", "/health", "/ready", "/holds",
        "/holds/{hold_id}",
        "/bookings/{reference}", "/bookings/{reference}/cancel",
        "/bookings/{reference}/reschedule", "/bookings/{reference}/invite.ics",
        "/calendar/{secret}.ics",
    }


@pytest.mark.parametrize("name", ["widget.js", "demo.html", "widget.css", "demo.css",
                                  "manage.html", "manage.js", "manage.css",
                                  "admin.html", "admin.js", "admin.css", "kit.js", "kit.css"])
def test_nothing_needs_unsafe_inline_or_unsafe_eval(name):
    text = (STATIC / name).read_text()
    forbidden = [
        r"\.innerHTML", r"\.outerHTML", r"insertAdjacentHTML", r"document\.write",
        r"\beval\(", r"new Function", r"setTimeout\(\s*['\"]", r"\.style\b", r"setAttribute\(\s*['\"]style",
        r"<script>", r"<style", r"\sstyle=", r"\son[a-z]+=",
    ]
    found = [pattern for pattern in forbidden if re.search(pattern, text)]
    assert found == []


def test_a_real_server_serves_the_installed_files(tmp_path):
    server = Server(f"sqlite:///{tmp_path / 'scheduler.db'}").start()
    try:
        server.wait_ready()
        for path, (name, media_type, _) in FILES.items():
            with urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == media_type
                assert response.read() == (STATIC / name).read_bytes()
    finally:
        server.stop()


def test_every_static_file_is_served_or_is_a_page():
    served = {name for name, _, _ in FILES.values()} | {"manage.html"}
    served |= {name for name, _ in ADMIN_FILES.values()}  # the rep's page: tests/test_admin.py
    assert {item.name for item in STATIC.iterdir()} == served


def test_the_manage_page_is_strict_sends_no_referrer_and_is_never_cached(client):
    booked = client.post("/book", json={"slot_id": 1, "email": "lead@example.com"}).json()
    reference = booked["booking"]["reference"]
    pages = [client.get(MANAGE_PATH.format(reference=r)) for r in (reference, "NOSUCH00", "x")]
    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == DEMO_CSP
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-content-type-options"] == "nosniff"
    # The same page for a known and an unknown reference: it tells nothing.
    assert pages[0].content == pages[1].content == pages[2].content
    text = pages[0].text
    assert 'data-rep-timezone="America/New_York"' in text  # the settings' SCHEDULER_TIMEZONE
    assert '<script src="../manage.js" defer>' in text  # relative: works under a path prefix
    assert reference not in text
    # Loading it changed nothing.
    token = booked["booking"]["token"]
    shown = client.get(f"/bookings/{reference}", headers={"Authorization": f"Bearer {token}"})
    assert shown.json()["status"] == "confirmed"


def test_the_manage_page_reads_the_token_only_from_the_fragment():
    script = (STATIC / "manage.js").read_text()
    assert "location.hash" in script
    assert "location.search" not in script  # the query string would reach the server
    assert '"Bearer " + ' in script
    for name in ("manage.js", "widget.js"):
        assert not re.search(r"[?&]token=", (STATIC / name).read_text())


def test_each_page_loads_the_kit_before_its_own_script(client):
    """kit.js and kit.css: the helpers and controls the three pages share."""
    manage = client.get(MANAGE_PATH.format(reference="ANY")).text
    admin = (STATIC / "admin.html").read_text()
    for page, kit, own in ((manage, "../kit", "../manage.js"), (admin, "/kit", "/admin/admin.js")):
        assert page.index(f'<script src="{kit}.js" defer>') < page.index(f'<script src="{own}" defer>')
        assert f'<link rel="stylesheet" href="{kit}.css">' in page
    # The widget, one script tag on another origin, loads them from its own origin.
    widget = (STATIC / "widget.js").read_text()
    assert 'scriptOrigin + "/kit.js"' in widget
    assert 'addStylesheet("kit.css")' in widget
    for path in ("/kit.js", "/kit.css"):
        response = client.get(path, headers={"Origin": "https://www.example.com"})
        assert response.headers["cross-origin-resource-policy"] == "cross-origin"
        assert "public" in response.headers["cache-control"]


@pytest.mark.parametrize("name", ["widget.js", "manage.js", "admin.js"])
def test_the_pages_do_not_copy_the_kits_helpers(name):
    """One copy of each helper: the pages call kit.js for these."""
    text = (STATIC / name).read_text()
    copies = [
        r"function el\(", r"function clear\(", r"function range\(", r"randomUUID", r"getRandomValues",
        r"AbortController", r"\bfetch\(", r"function fieldError\(", r"new Intl\.DateTimeFormat\(\)",
        r"Array\.isArray\(body\.detail\)", r"classList\.toggle\(\"sw-status--",
    ]
    assert [pattern for pattern in copies if re.search(pattern, text)] == []
