"""Live availability in headless Chromium: two visitors on the example landing page
see each other's holds, bookings and cancels without a reload (the widget's
EventSource), and a widget whose stream is refused still converges by polling."""

from __future__ import annotations

from playwright.sync_api import expect
from support import exchange
from test_landing_page import TAKEN, assert_clean, book_through_page, free_slots, slot_button

# The promise: a change shows in every open widget within a second.
LIVE_MS = 1000


def live(seen, state: str = "open") -> None:
    expect(seen.page.locator(".scheduler-widget")).to_have_attribute("data-scheduler-live", state)


def test_two_visitors_see_each_others_holds_bookings_and_cancels(landing, visit):
    slots = free_slots(landing)
    first, second = visit(landing.url), visit(landing.url)
    for seen in (first, second):
        expect(seen.page.locator(".sw-slot")).to_have_count(len(slots))
        live(seen)
    streams = []
    second.page.on("request", lambda r: "/availability/stream" in r.url and streams.append(r.url))

    # The first visitor picks a time: it is held, and leaves the second's list.
    slot_button(first.page, slots[1]).click()
    expect(slot_button(second.page, slots[1])).to_have_count(0, timeout=LIVE_MS)
    # They pick another: the first comes back, the other goes.
    slot_button(first.page, slots[2]).click()
    expect(slot_button(second.page, slots[1])).to_have_count(1, timeout=LIVE_MS)
    expect(slot_button(second.page, slots[2])).to_have_count(0, timeout=LIVE_MS)

    first.page.get_by_label("Your email").fill("first@example.com")
    first.page.get_by_role("button", name="Book this time").click()
    expect(first.page.locator(".sw-confirmation")).to_be_visible()
    expect(slot_button(second.page, slots[2])).to_have_count(0, timeout=LIVE_MS)

    # Booked elsewhere (the API, as another page would), then cancelled: gone, then back.
    status, _, body = exchange(landing.api.port, "POST", "/book",
                               {"slot_id": slots[3]["id"], "email": "api@example.com"})
    assert status == 200, body
    expect(slot_button(second.page, slots[3])).to_have_count(0, timeout=LIVE_MS)
    booking = body["booking"]
    status, _, body = exchange(landing.api.port, "POST", f"/bookings/{booking['reference']}/cancel",
                               {}, headers={"Authorization": f"Bearer {booking['token']}"})
    assert status == 200, body
    expect(slot_button(second.page, slots[3])).to_have_count(1, timeout=LIVE_MS)
    expect(second.page.locator(".sw-slot")).to_have_count(len(slots) - 1)
    assert streams == []  # all of it on the one stream the page opened first
    assert landing.slots.booked() == {slots[2]["id"]: "first@example.com"}
    assert_clean(first, second)


def test_a_visitor_is_told_at_once_when_their_time_is_taken(landing, visit):
    slots = free_slots(landing)
    seen, other = visit(landing.url), visit(landing.url)
    live(seen)
    page = seen.page
    page.route("**/holds", lambda route: route.abort())  # no hold protects this visitor's pick
    slot_button(page, slots[0]).click()
    page.get_by_label("Your email").fill("slow@example.com")

    book_through_page(other.page, slots[0], "quick@example.com")
    expect(other.page.locator(".sw-confirmation")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(TAKEN, timeout=LIVE_MS)
    expect(page.get_by_role("button", name="Book this time")).to_be_hidden()
    expect(slot_button(page, slots[0])).to_have_count(0)
    assert page.get_by_label("Your email").input_value() == "slow@example.com"  # kept
    assert_clean(seen, other)


def test_with_the_stream_refused_the_widget_converges_by_polling(landing, visit, browser):
    slots = free_slots(landing)
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-US")
    try:
        refused = []

        def refuse(route):  # as a proxy's error page would
            refused.append(route.request.url)
            route.fulfill(status=503, headers={"Access-Control-Allow-Origin": "*"},
                          content_type="text/html", body="<h1>503 Service Unavailable</h1>")

        context.route("**/availability/stream*", refuse)
        polls = []
        page = context.new_page()
        page.on("request", lambda r: r.url.endswith("/availability") and polls.append(
            r.headers.get("if-none-match")))
        page.goto(landing.url)
        expect(page.locator(".sw-slot")).to_have_count(len(slots))
        expect(page.locator(".scheduler-widget")).to_have_attribute("data-scheduler-live", "polling")

        status, _, body = exchange(landing.api.port, "POST", "/book",
                                   {"slot_id": slots[0]["id"], "email": "api@example.com"})
        assert status == 200, body
        expect(slot_button(page, slots[0])).to_have_count(0)  # at the next poll (2-3 s)
        assert refused and polls[0] is None and all(polls[1:])  # polls ask with If-None-Match

        context.unroute("**/availability/stream*")  # the stream works again: followed live
        expect(page.locator(".scheduler-widget")).to_have_attribute("data-scheduler-live", "open",
                                                                     timeout=20_000)
        status, _, body = exchange(landing.api.port, "POST", "/book",
                                   {"slot_id": slots[1]["id"], "email": "api2@example.com"})
        assert status == 200, body
        expect(slot_button(page, slots[1])).to_have_count(0, timeout=LIVE_MS)
    finally:
        context.close()
