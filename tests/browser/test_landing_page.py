"""A lead books from the example landing page on another origin, in headless Chromium,
against the real server on SQLite and PostgreSQL; and the /demo page on the app."""

from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.request import urlopen
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

TAKEN = "Sorry, that time was just taken"
UNREACHABLE = "We could not reach the booking service"


def free_slots(landing) -> list[dict]:
    with urlopen(f"{landing.api_origin}/availability", timeout=10) as response:
        return json.load(response)


def clock(moment: datetime) -> str:
    """A time as en-US shows it: '3:00 PM'."""
    return moment.strftime("%I:%M %p").lstrip("0")


def visitor_time(iso: str) -> str:
    """How the widget shows a slot in the visitor's zone (the contexts' Europe/Berlin)."""
    return clock(datetime.fromisoformat(iso).astimezone(ZoneInfo("Europe/Berlin")))


def visitor_range(slot: dict) -> re.Pattern:
    """'3:00 – 3:30 PM your time' (Intl's formatRange shares the AM/PM)."""
    start, end = (visitor_time(slot[key]).split() for key in ("start_time", "end_time"))
    first = re.escape(start[0]) + (r"\s*" + start[1] if start[1] != end[1] else "")
    return re.compile(rf"^{first}\s*–\s*{re.escape(end[0])}\s*{end[1]} your time$")


def slot_button(page, slot: dict):
    """The button of ``slot``: its visitor time, under its day's heading."""
    moment = datetime.fromisoformat(slot["start_time"]).astimezone(ZoneInfo("Europe/Berlin"))
    day = page.get_by_role("group", name=moment.strftime("%A, %B ") + str(moment.day))
    return day.locator(".sw-slot").filter(has=page.get_by_text(visitor_time(slot["start_time"]), exact=True))


def book_through_page(page, slot: dict, email: str) -> None:
    slot_button(page, slot).click()
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Book this time").click()


def assert_clean(*visits) -> None:
    for seen in visits:
        assert seen.csp_violations == []
        assert seen.js_errors == []


def test_a_lead_books_a_slot_and_sees_the_confirmation(landing, visit, artifacts):
    slots = free_slots(landing)
    first = slots[0]
    for number, viewport in enumerate(("phone", "desktop")):
        seen = visit(landing.url, viewport)
        page = seen.page
        expect(page.locator(".sw-slot")).to_have_count(len(slots) - number)
        # The visitor's time in full, the rep's (09:00 New York, from the API's offset) in small type.
        button = slot_button(page, slots[number])
        expect(button.locator(".sw-time")).to_have_text(visitor_time(slots[number]["start_time"]))
        rep_clock = clock(datetime.fromisoformat(slots[number]["start_time"]))
        expect(button.locator(".sw-rep")).to_contain_text(rep_clock)
        page.screenshot(path=artifacts / f"landing-{viewport}-list.png", full_page=True)

        email = f"lead-{viewport}@example.com"
        if viewport == "desktop":  # by keyboard alone
            button.focus()
            page.keyboard.press("Enter")
            expect(page.get_by_label("Your email")).to_be_focused()
            page.keyboard.type(email)
            page.keyboard.press("Enter")
        else:
            book_through_page(page, slots[number], email)

        confirmation = page.locator(".sw-confirmation")
        expect(confirmation).to_be_visible()
        expect(confirmation).to_be_focused()
        expect(confirmation).to_contain_text("You’re booked")
        expect(confirmation.locator(".sw-confirmation-time")).to_have_text(
            visitor_range(slots[number])
        )
        expect(confirmation).to_contain_text(f"Booked for {email}.")
        page.screenshot(path=artifacts / f"landing-{viewport}-booked.png", full_page=True)
        assert landing.slots.booked() == {
            s["id"]: f"lead-{v}@example.com" for s, v in zip(slots, ("phone", "desktop")[: number + 1])
        }
        assert_clean(seen)
    assert first["id"] not in {s["id"] for s in free_slots(landing)}


def test_a_stale_page_says_the_slot_was_just_taken_and_refreshes(landing, visit):
    slots = free_slots(landing)
    first, second = visit(landing.url), visit(landing.url, live=False)  # its list goes stale
    for seen in (first, second):
        expect(seen.page.locator(".sw-slot")).to_have_count(len(slots))
    # No hold for the second visitor (its request fails), so that Book itself
    # meets the taken slot; a hold refused at the pick is tests/browser/test_widget_booking.py's.
    second.page.route("**/holds", lambda route: route.abort())

    book_through_page(first.page, slots[0], "first@example.com")
    expect(first.page.locator(".sw-confirmation")).to_be_visible()

    book_through_page(second.page, slots[0], "second@example.com")  # 409
    expect(second.page.get_by_role("status")).to_contain_text(TAKEN)
    expect(second.page.locator(".sw-slot")).to_have_count(len(slots) - 1)
    expect(slot_button(second.page, slots[0])).to_have_count(0)
    # The visitor goes on from the list, with the email kept.
    expect(second.page.locator(".sw-slot").first).to_be_focused()
    assert second.page.get_by_label("Your email").input_value() == "second@example.com"

    landing.slots.delete(slots[1]["id"])  # gone while shown: 404, the same story
    book_through_page(second.page, slots[1], "second@example.com")
    expect(second.page.get_by_role("status")).to_contain_text(TAKEN)
    expect(second.page.locator(".sw-slot")).to_have_count(len(slots) - 2)

    assert landing.slots.booked() == {slots[0]["id"]: "first@example.com"}
    assert_clean(first, second)


def test_an_invalid_email_shows_the_error_by_the_field_and_books_nothing(landing, visit):
    seen = visit(landing.url, "phone")
    page = seen.page
    slot = free_slots(landing)[0]
    answers = []
    page.on("response", lambda r: r.request.method == "POST" and r.url.endswith("/book")
            and answers.append(r.status))

    book_through_page(page, slot, "not-an-email")
    email = page.get_by_label("Your email")
    error = page.locator(".sw-field-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("@-sign")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(error.inner_text())
    expect(email).to_be_focused()
    assert answers == [422]
    assert landing.slots.booked() == {}

    email.fill("lead@example.com")  # typing clears the error; then it books
    expect(error).to_be_hidden()
    page.get_by_role("button", name="Book this time").click()
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert answers == [422, 200]
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}
    assert_clean(seen)


def test_with_the_api_down_it_says_so_and_retry_works_once_it_is_back(sqlite_landing, visit):
    seen = visit(sqlite_landing.url)
    page = seen.page
    slot = free_slots(sqlite_landing)[0]
    expect(page.locator(".sw-slot").first).to_be_visible()

    sqlite_landing.api.stop()
    book_through_page(page, slot, "lead@example.com")
    retry = page.get_by_role("button", name="Try again")
    expect(page.get_by_role("status")).to_contain_text(UNREACHABLE)
    expect(retry).to_be_focused()

    retry.click()  # still down: the same message, the button again
    expect(page.get_by_role("status")).to_contain_text(UNREACHABLE)
    expect(retry).to_be_visible()

    sqlite_landing.api.start().wait_ready()  # the same port
    retry.click()
    expect(page.get_by_role("status")).to_contain_text("free times")
    expect(retry).to_be_hidden()
    # The choice survived the outage: book it again from the form.
    expect(page.get_by_role("button", name="Book this time")).to_be_focused()
    page.get_by_role("button", name="Book this time").click()
    expect(page.locator(".sw-confirmation")).to_be_visible()
    assert sqlite_landing.slots.booked() == {slot["id"]: "lead@example.com"}
    assert_clean(seen)


def test_a_page_on_an_origin_not_allowed_cannot_book(shared_landing, visit):
    seen = visit(shared_landing.foreign_url)
    page = seen.page
    expect(page.get_by_role("status")).to_contain_text(UNREACHABLE)
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.locator(".sw-slot")).to_have_count(0)

    # Not even a hand-made request gets through: the preflight is refused.
    outcome = page.evaluate(
        """async (api) => {
            try {
                await fetch(api + "/book", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify({slot_id: 1, email: "x@example.com"})});
                return "sent";
            } catch (e) { return e.name; }
        }""",
        shared_landing.api_origin,
    )
    assert outcome == "TypeError"
    assert shared_landing.slots.booked() == {}
    assert_clean(seen)


def test_when_nothing_is_free_it_says_so_and_checks_again(sqlite_landing, visit):
    slot = free_slots(sqlite_landing)[3]
    sqlite_landing.slots.book_all()
    seen = visit(sqlite_landing.url)
    page = seen.page
    expect(page.get_by_role("status")).to_contain_text("There are no free times right now")
    expect(page.locator(".sw-slot")).to_have_count(0)

    sqlite_landing.slots.free(slot["id"])
    page.get_by_role("button", name="Check again").click()
    expect(page.locator(".sw-slot")).to_have_count(1)
    expect(page.get_by_role("status")).to_contain_text("1 free time")
    assert_clean(seen)


def test_while_loading_it_says_so(shared_landing, browser):
    context = browser.new_context()
    held = []
    context.route("**/availability", lambda route: held.append(route))
    page = context.new_page()
    try:
        page.goto(shared_landing.url)
        expect(page.get_by_role("status")).to_have_text("Loading free times…")
        expect(page.locator(".scheduler-widget")).to_have_attribute("aria-busy", "true")
        held[0].continue_()
        expect(page.locator(".scheduler-widget")).to_have_attribute("aria-busy", "false")
        expect(page.locator(".sw-slot").first).to_be_visible()
    finally:
        context.close()


def test_api_text_is_shown_as_text_never_as_html(shared_landing, visit):
    """A hostile or broken API must not put markup on the page. The real API
    never sends any, so these two answers are made up in the browser."""
    seen = visit(shared_landing.url)
    page = seen.page
    slot = free_slots(shared_landing)[0]
    evil = '<img src="x" class="evil">'
    answers = iter([
        (422, {"detail": [{"loc": ["body", "email"], "msg": f"Value error, {evil}"}]}),
        (200, {"message": "ok", "slot": {**slot, "is_booked": True, "booked_by_email": evil}}),
    ])

    def hostile(route):
        if route.request.method != "POST":
            return route.continue_()
        status, body = next(answers)
        route.fulfill(status=status, json=body, headers={"Access-Control-Allow-Origin": "*"})

    page.route("**/book", hostile)
    book_through_page(page, slot, "lead@example.com")
    expect(page.locator(".sw-field-error")).to_have_text(evil)
    page.get_by_role("button", name="Book this time").click()
    expect(page.locator(".sw-confirmation")).to_contain_text(f"Booked for {evil}.")
    expect(page.locator(".evil")).to_have_count(0)
    assert shared_landing.slots.booked() == {}
    assert_clean(seen)


def test_the_policy_is_in_force_and_violations_are_caught(shared_landing, visit):
    """The other tests' "no CSP violations" means something: the page's policy
    is enforced, and a violation is seen."""
    seen = visit(shared_landing.url)
    page = seen.page
    expect(page.locator(".sw-slot").first).to_be_visible()
    assert seen.csp_violations == []
    with page.expect_console_message(lambda m: "CSP violation" in m.text):
        page.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true";
            document.body.append(script);
        }""")
    assert page.evaluate("() => window.inlineRan") is None
    assert any("script-src" in v for v in seen.csp_violations)


def test_the_demo_page_on_the_app_books_under_its_own_policy(sqlite_landing, visit, artifacts):
    with urlopen(f"{sqlite_landing.api_origin}/demo", timeout=10) as response:
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    slot = free_slots(sqlite_landing)[0]
    seen = visit(f"{sqlite_landing.api_origin}/demo", "phone")
    book_through_page(seen.page, slot, "demo@example.com")
    expect(seen.page.locator(".sw-confirmation")).to_be_focused()
    seen.page.screenshot(path=artifacts / "demo-phone-booked.png", full_page=True)
    assert sqlite_landing.slots.booked() == {slot["id"]: "demo@example.com"}
    assert_clean(seen)


def test_a_named_rep_zone_is_shown_by_name(shared_landing, visit):
    seen = visit(shared_landing.url)
    page = seen.page
    first = free_slots(shared_landing)[0]
    expect(page.locator(".sw-slot").first).to_be_visible()
    # A second widget, naming the rep's zone, added the way a page would add it.
    page.evaluate(
        """(api) => {
            const box = document.createElement("div");
            box.id = "named";
            box.dataset.schedulerApi = api;
            box.dataset.schedulerTimezone = "America/New_York";
            document.body.append(box);
            const script = document.createElement("script");
            script.src = api + "/widget.js";
            document.body.append(script);
        }""",
        shared_landing.api_origin,
    )
    named = page.locator("#named")
    expect(named.locator(".sw-intro")).to_contain_text("the rep’s time (New York)")
    rep_clock = clock(datetime.fromisoformat(first["start_time"]))
    expect(named.locator(".sw-rep").first).to_contain_text(rep_clock)
    expect(page.locator('link[href$="/widget.css"]')).to_have_count(1)
    assert_clean(seen)
