"""The widget's holds, Idempotency-Key, time zone, source capture, manage link and
"Add to calendar", in headless Chromium against the real server (SQLite and
PostgreSQL where the database matters)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from icalendar import Calendar
from playwright.sync_api import expect
from support import exchange
from test_landing_page import TAKEN, assert_clean, free_slots, slot_button

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def pick(page, slot: dict) -> dict:
    """Pick ``slot``, wait until the widget holds it; returns the hold."""
    with page.expect_response(lambda r: r.url.endswith("/holds") and r.request.method == "POST") as held:
        slot_button(page, slot).click()
    assert held.value.status == 201
    expect(page.locator(".sw-choice-held")).to_be_visible()
    return held.value.json()


def book_picked(page, email: str) -> None:
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Book this time").click()


def booking_requests(page) -> list:
    """The POST /book requests the page sends, as they go."""
    sent = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/book") and sent.append(r))
    return sent


def test_a_visitor_holds_the_time_and_books_it(landing, visit, artifacts):
    slot = free_slots(landing)[3]  # mid-row, as in the README's screenshot
    seen = visit(landing.url)
    page = seen.page
    sent = booking_requests(page)
    hold = pick(page, slot)
    page.get_by_label("Your email").fill("lead@example.com")
    page.locator(".booking").screenshot(path=artifacts / "widget.png")  # docs/widget.png
    # Held: no other visitor is offered it, and the API refuses it to them.
    assert slot["id"] not in {s["id"] for s in free_slots(landing)}
    status, _, body = exchange(landing.api.port, "POST", "/book",
                               {"slot_id": slot["id"], "email": "other@example.com"})
    assert status == 409
    assert body["detail"] == f"Slot {slot['id']} is held by another visitor for a few minutes."
    page.screenshot(path=artifacts / "widget-held.png", full_page=True)

    book_picked(page, "lead@example.com")
    confirmation = page.locator(".sw-confirmation")
    expect(confirmation).to_be_focused()
    [request] = sent
    payload = request.post_data_json
    assert payload["slot_id"] == slot["id"]
    assert payload["hold_token"] == hold["hold_token"]
    assert payload["timezone"] == "Europe/Berlin"  # the visitor's zone (the context's)
    assert UUID.match(request.headers["idempotency-key"])
    [row] = landing.slots.bookings()
    assert (row["slot"], row["email"], row["timezone"], row["status"]) == (
        slot["id"], "lead@example.com", "Europe/Berlin", "confirmed")
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}
    assert_clean(seen)


def test_a_second_visitor_cannot_take_a_held_time(landing, visit):
    slots = free_slots(landing)
    first, second = visit(landing.url), visit(landing.url, live=False)  # its list goes stale
    for seen in (first, second):
        expect(seen.page.locator(".sw-slot")).to_have_count(len(slots))
    pick(first.page, slots[0])

    # The second visitor's list is older than the hold: their pick is refused at once.
    with second.page.expect_response(lambda r: r.url.endswith("/holds")) as refused:
        slot_button(second.page, slots[0]).click()
    assert refused.value.status == 409
    expect(second.page.get_by_role("status")).to_contain_text(TAKEN)
    expect(slot_button(second.page, slots[0])).to_have_count(0)
    expect(second.page.locator(".sw-slot")).to_have_count(len(slots) - 1)
    expect(second.page.locator(".sw-form")).to_be_hidden()
    expect(second.page.locator(".sw-slot").first).to_be_focused()

    # They book another time; the first visitor books theirs.
    pick(second.page, slots[1])
    book_picked(second.page, "second@example.com")
    expect(second.page.locator(".sw-confirmation")).to_be_visible()
    book_picked(first.page, "first@example.com")
    expect(first.page.locator(".sw-confirmation")).to_be_visible()
    assert landing.slots.booked() == {slots[0]["id"]: "first@example.com",
                                      slots[1]["id"]: "second@example.com"}
    assert_clean(first, second)


def test_picking_another_time_gives_the_first_one_back(sqlite_landing, visit):
    slots = free_slots(sqlite_landing)
    seen = visit(sqlite_landing.url)
    page = seen.page
    pick(page, slots[0])
    assert slots[0]["id"] not in {s["id"] for s in free_slots(sqlite_landing)}
    with page.expect_response(lambda r: r.request.method == "DELETE") as released:
        pick(page, slots[1])
    assert released.value.status == 204
    assert released.value.request.headers["authorization"].startswith("Bearer ")
    listed = {s["id"] for s in free_slots(sqlite_landing)}
    assert slots[0]["id"] in listed and slots[1]["id"] not in listed
    book_picked(page, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert sqlite_landing.slots.booked() == {slots[1]["id"]: "lead@example.com"}
    assert_clean(seen)


def test_a_retry_after_a_lost_answer_sends_the_same_key_and_books_once(sqlite_landing, visit):
    """The first Book reaches the server and books, but its answer never reaches
    the page (a network error): "Try again" and Book send the same key, and the
    server replays the booking instead of making another."""
    slot = free_slots(sqlite_landing)[0]
    seen = visit(sqlite_landing.url)
    page = seen.page
    sent = booking_requests(page)
    lost = []

    def lose_first_answer(route):
        if lost:
            return route.continue_()
        lost.append(route.fetch())  # it reached the server and was answered...
        route.abort()  # ...but the page never hears of it

    page.route("**/book", lose_first_answer)
    pick(page, slot)
    book_picked(page, "lead@example.com")
    expect(page.get_by_role("status")).to_contain_text("We could not reach the booking service")
    assert lost[0].status == 200
    page.get_by_role("button", name="Try again").click()
    # The held (now booked) time is still the visitor's pick after the refresh.
    book_button = page.get_by_role("button", name="Book this time")
    expect(book_button).to_be_focused()
    with page.expect_response(lambda r: r.url.endswith("/book")) as replay:
        book_button.click()
    assert replay.value.status == 200
    assert replay.value.headers["idempotent-replayed"] == "true"
    expect(page.locator(".sw-confirmation")).to_be_visible()
    first, second = sent
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.post_data == second.post_data
    [row] = sqlite_landing.slots.bookings()
    assert row["reference"] == lost[0].json()["booking"]["reference"]
    expect(page.locator(".sw-confirmation-reference")).to_have_text(f"Reference: {row['reference']}")

    # A new booking attempt is a new key.
    page.goto(sqlite_landing.url)
    slot2 = free_slots(sqlite_landing)[0]
    pick(page, slot2)
    book_picked(page, "other@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert sent[2].headers["idempotency-key"] != first.headers["idempotency-key"]
    assert len(sqlite_landing.slots.bookings()) == 2
    assert_clean(seen)


def test_the_confirmation_shows_the_reference_and_the_manage_link(landing, visit, artifacts):
    slot = free_slots(landing)[0]
    seen = visit(landing.url, "phone")
    page = seen.page
    pick(page, slot)
    with page.expect_response(lambda r: r.url.endswith("/book")) as answer:
        book_picked(page, "lead@example.com")
    booking = answer.value.json()["booking"]
    confirmation = page.locator(".sw-confirmation")
    expect(confirmation.locator(".sw-confirmation-reference")).to_have_text(
        f"Reference: {booking['reference']}")
    manage = confirmation.get_by_role("link", name="Manage or cancel")
    expect(manage).to_have_attribute("href", booking["manage_url"])
    assert booking["manage_url"] == (
        f"{landing.api_origin}/manage/{booking['reference']}#token={booking['token']}")
    page.screenshot(path=artifacts / "widget-phone-confirmation.png", full_page=True)

    manage.click()  # the lead's page, on the service's origin
    page.wait_for_url(f"{landing.api_origin}/manage/**")
    expect(page.locator("#booking-reference")).to_have_text(booking["reference"])
    expect(page.locator("#booking-state")).to_have_text("Confirmed")
    assert_clean(seen)


def test_add_to_calendar_downloads_the_invitation(sqlite_landing, visit, artifacts):
    slot = free_slots(sqlite_landing)[0]
    seen = visit(sqlite_landing.url)
    page = seen.page
    pick(page, slot)
    with page.expect_response(lambda r: r.url.endswith("/book")) as answer:
        book_picked(page, "lead@example.com")
    booking = answer.value.json()["booking"]
    button = page.get_by_role("button", name="Add to calendar")
    with page.expect_download() as download, page.expect_request("**/invite.ics") as fetched:
        button.click()
    assert fetched.value.headers["authorization"] == f"Bearer {booking['token']}"
    assert "token" not in fetched.value.url
    assert download.value.suggested_filename == f"booking-{booking['reference']}.ics"
    calendar = Calendar.from_ical(download.value.path().read_bytes())
    [event] = calendar.walk("VEVENT")
    start = datetime.fromisoformat(slot["start_time"]).astimezone(UTC)
    assert event.decoded("DTSTART").astimezone(UTC) == start
    expect(page.locator(".sw-calendar-status")).to_contain_text("The invitation is downloaded")
    page.screenshot(path=artifacts / "widget-add-to-calendar.png", full_page=True)
    assert_clean(seen)


def test_add_to_calendar_says_when_the_invitation_cannot_be_had(sqlite_landing, visit):
    slot = free_slots(sqlite_landing)[0]
    seen = visit(sqlite_landing.url)
    page = seen.page
    pick(page, slot)
    book_picked(page, "lead@example.com")
    button = page.get_by_role("button", name="Add to calendar")
    expect(button).to_be_visible()
    page.route("**/invite.ics", lambda route: route.abort())
    button.click()
    status = page.locator(".sw-calendar-status")
    expect(status).to_contain_text("We could not reach the booking service")
    expect(status).to_have_attribute("role", "status")
    expect(button).to_be_enabled()
    assert_clean(seen)


def test_the_source_of_the_visit_is_stored_with_the_booking(landing, visit):
    slot = free_slots(landing)[0]
    seen = visit(landing.url)
    page = seen.page
    query = ("?utm_source=newsletter&utm_medium=email&utm_campaign=%20spring%20sale%20"
             f"&utm_term=&utm_content={'x' * 300}&other=ignored")
    page.goto(landing.url + query, referer="https://news.example.org/issue/42?id=7")
    sent = booking_requests(page)
    pick(page, slot)
    book_picked(page, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    expected = {
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring sale",  # trimmed
        "utm_content": "x" * 200,  # cut to the API's limit; the empty utm_term left out
        "referrer": "https://news.example.org/issue/42?id=7",
    }
    assert sent[0].post_data_json["source"] == expected
    [row] = landing.slots.bookings()
    assert row["source"] == expected
    assert_clean(seen)


def test_a_visit_without_campaign_or_referrer_sends_no_source(sqlite_landing, visit):
    slot = free_slots(sqlite_landing)[0]
    seen = visit(sqlite_landing.url)
    page = seen.page
    sent = booking_requests(page)
    pick(page, slot)
    book_picked(page, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert "source" not in sent[0].post_data_json
    [row] = sqlite_landing.slots.bookings()
    assert row["source"] is None
    assert_clean(seen)


def test_without_crypto_random_uuid_the_key_is_still_a_random_uuid(sqlite_landing, visit):
    """crypto.randomUUID exists only in secure contexts; a landing page on plain
    http (not loopback) has crypto.getRandomValues only."""
    seen = visit(sqlite_landing.url)
    page = seen.page
    page.add_init_script("delete Crypto.prototype.randomUUID;")
    page.reload()
    assert page.evaluate("() => typeof crypto.randomUUID") == "undefined"
    sent = booking_requests(page)
    pick(page, free_slots(sqlite_landing)[0])
    book_picked(page, "lead@example.com")
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert UUID.match(sent[0].headers["idempotency-key"])
    assert_clean(seen)
