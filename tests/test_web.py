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
from scheduler_app.web import FILES

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
        "/availability", "/book", "/health", "/ready", "/holds", "/holds/{hold_id}",
        "/bookings/{reference}", "/bookings/{reference}/cancel",
        "/bookings/{reference}/reschedule",
    }


@pytest.mark.parametrize("name", ["widget.js", "demo.html", "widget.css", "demo.css"])
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
