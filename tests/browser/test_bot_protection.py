"""A person books through the widget in headless Chromium, with the bot protection
on (its defaults, then ALTCHA too), counted like any visitor (the loopback
exemption emptied): they never notice it. And a 429 said by the button."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from support import exchange
from test_landing_page import assert_clean, free_slots, slot_button

COUNTED = {"SCHEDULER_RATE_LIMIT_EXEMPT": ""}  # the browser (loopback) is counted too


def book(page, slot: dict, email: str) -> list:
    """Pick ``slot``, enter ``email`` at once (faster than a person) and book;
    returns the POST /book requests sent."""
    sent = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/book") and sent.append(r))
    slot_button(page, slot).click()
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Book this time").click()
    return sent


@pytest.mark.parametrize("altcha", ["off", "on"])
def test_a_person_books_through_the_widget_and_never_notices(landing_with, database_url, visit,
                                                             altcha):
    landing = landing_with(database_url, {**COUNTED, "SCHEDULER_ALTCHA": altcha})
    slot = free_slots(landing)[2]
    seen = visit(landing.url)
    page = seen.page
    with page.expect_response(lambda r: r.url.endswith("/book")) as answered:
        started = time.monotonic()
        sent = book(page, slot, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_focused()
    assert answered.value.status == 200
    # The form's token was sent no sooner than its 2 s, whatever the visitor's speed.
    assert time.monotonic() - started >= 2
    [request] = sent
    payload = request.post_data_json
    assert payload["form_token"] and "website" not in payload
    assert ("altcha" in payload) == (altcha == "on")
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}
    assert "ratelimit" in answered.value.headers  # counted, under the limits
    # The honeypot is in the form, but no person sees or reaches it.
    trap = page.locator("input[name=website]")
    assert trap.count() == 1
    assert trap.get_attribute("tabindex") == "-1"
    assert page.locator(".sw-trap").get_attribute("aria-hidden") == "true"
    assert not trap.is_visible() or trap.bounding_box()["x"] < -1000
    assert_clean(seen)


def test_a_429_is_said_by_the_button_which_waits_for_retry_after(landing_with, tmp_path, visit):
    env = {**COUNTED, "SCHEDULER_RATE_LIMIT_BOOK_PER_MINUTE": "1",
           "SCHEDULER_MIN_FILL_SECONDS": "0"}
    landing = landing_with(f"sqlite:///{tmp_path / 'x.db'}", env)
    first, second = free_slots(landing)[:2]
    seen = visit(landing.url)
    page = seen.page
    book(page, first, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    other = visit(landing.url).page  # the same address, another visitor
    sent = book(other, second, "colleague@example.com")
    note = other.locator(".sw-wait")
    expect(note).to_contain_text("Too many attempts from your connection. "
                                 "You can try again in")
    button = other.get_by_role("button", name="Book this time")
    expect(button).to_be_disabled()
    other.get_by_label("Your email").press("Enter")  # nothing is sent while it waits
    other.wait_for_timeout(500)
    assert len(sent) == 1
    assert landing.slots.booked() == {first["id"]: "lead@example.com"}
    assert_clean(seen)


def test_the_manage_page_says_a_429_by_the_button(landing_with, tmp_path, visit):
    env = {**COUNTED, "SCHEDULER_RATE_LIMIT_TOKEN_PER_MINUTE": "1"}
    landing = landing_with(f"sqlite:///{tmp_path / 'x.db'}", env)
    slot = free_slots(landing)[0]
    status, _, body = exchange(landing.api.port, "POST", "/book",
                               {"slot_id": slot["id"], "email": "lead@example.com"})
    assert status == 200, body
    seen = visit(body["booking"]["manage_url"])  # its GET /bookings/... is the one allowed
    page = seen.page
    expect(page.locator("#booking")).to_be_visible()
    page.get_by_role("button", name="Cancel meeting").click()
    confirm = page.get_by_role("button", name="Yes, cancel the meeting")
    confirm.click()
    expect(page.locator("#cancel-message")).to_contain_text(
        "Too many attempts from your connection. You can try again in")
    expect(confirm).to_be_disabled()
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}  # still booked
    assert_clean(seen)
