"""The lead's manage page (/manage/<reference>#token=...) in headless Chromium,
against the real server: it shows the booking, cancels it after a confirmation
step and moves it to another time held first; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from support import exchange
from test_landing_page import TAKEN, assert_clean, clock, free_slots

NOT_FOUND = "We could not find this booking"
ASK_TOKEN = "This link does not carry your booking’s token. Paste it below to see your booking."
PASTE_SOMETHING = "Please paste the token, or the whole link with “#token=” in it."
TOKEN_FIELD = "Token or manage link"


def book(landing, slot: dict, email: str = "lead@example.com") -> dict:
    """Book ``slot`` through the API; returns the answer's ``booking``."""
    status, _, body = exchange(landing.api.port, "POST", "/book",
                               {"slot_id": slot["id"], "email": email, "name": "Jane Lead"})
    assert status == 200, body
    return body["booking"]


def open_manage(visit, booking: dict, viewport: str = "desktop"):
    seen = visit(booking["manage_url"], viewport)
    expect(seen.page.locator("#booking")).to_be_visible()
    return seen


def slot_in(page, slot: dict):
    """The slot's button in the reschedule list (its visitor time under its day)."""
    moment = datetime.fromisoformat(slot["start_time"]).astimezone(ZoneInfo("Europe/Berlin"))
    day = page.get_by_role("group", name=moment.strftime("%A, %B ") + str(moment.day))
    return day.locator(".sw-slot").filter(has=page.get_by_text(clock(moment), exact=True))


def time_range(slot: dict, zone: str, then: str) -> re.Pattern:
    """'3:00 – 3:30 PM<then>' in ``zone`` (Intl's formatRange shares the AM/PM)."""
    start, end = (clock(datetime.fromisoformat(slot[key]).astimezone(ZoneInfo(zone))).split()
                  for key in ("start_time", "end_time"))
    first = re.escape(start[0]) + (r"\s*" + start[1] if start[1] != end[1] else "")
    return re.compile(rf"^{first}\s*–\s*{re.escape(end[0])}\s*{end[1]}{re.escape(then)}$")


def visitor_date(slot: dict) -> str:
    moment = datetime.fromisoformat(slot["start_time"]).astimezone(ZoneInfo("Europe/Berlin"))
    return moment.strftime("%A, %B ") + f"{moment.day}, {moment.year}"


def test_the_page_shows_the_booking_in_the_visitors_zone_and_changes_nothing(landing, visit, artifacts):
    slot = free_slots(landing)[0]
    booking = book(landing, slot)
    for viewport in ("phone", "desktop"):
        seen = visit(booking["manage_url"], viewport)
        page = seen.page
        methods = []
        page.on("request", lambda r, methods=methods: methods.append((r.method, r.url)))
        page.reload()
        expect(page.locator("#booking-reference")).to_have_text(booking["reference"])
        expect(page.locator("#booking-state")).to_have_text("Confirmed")
        expect(page.locator("#booking-date")).to_have_text(visitor_date(slot))
        expect(page.locator("#booking-time")).to_have_text(
            time_range(slot, "Europe/Berlin", " your time (Europe/Berlin)"))
        # The rep's time (09:00 in New York, as the service names its zone) in small type.
        expect(page.locator("#booking-rep")).to_have_text(
            time_range(slot, "America/New_York", " rep’s time (New York)"))
        expect(page.locator("#booking-email")).to_have_text("lead@example.com")
        expect(page.locator("#booking-name")).to_have_text("Jane Lead")
        expect(page.get_by_role("button", name="Reschedule")).to_be_visible()
        expect(page.get_by_role("button", name="Cancel meeting")).to_be_visible()
        page.screenshot(path=artifacts / f"manage-{viewport}.png", full_page=True)
        # Loading it only read: the page, its files, GET /bookings/<reference>.
        assert {m for m, _ in methods} == {"GET"}
        assert any(u.endswith(f"/bookings/{booking['reference']}") for _, u in methods)
        assert not any("token" in u for _, u in methods)  # the token stays in the fragment
        assert_clean(seen)
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}
    [row] = landing.slots.bookings()
    assert (row["status"], row["sequence"]) == ("confirmed", 0)


def test_cancel_from_the_manage_link_frees_the_slot(landing, visit, artifacts):
    slot = free_slots(landing)[0]
    booking = book(landing, slot)
    assert slot["id"] not in {s["id"] for s in free_slots(landing)}
    seen = open_manage(visit, booking)
    page = seen.page

    # The confirmation step: "Keep it" changes nothing.
    page.get_by_role("button", name="Cancel meeting").click()
    expect(page.get_by_role("heading", name="Cancel this meeting?")).to_be_focused()
    page.get_by_role("button", name="Keep it").click()
    expect(page.locator("#cancel-panel")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel meeting")).to_be_focused()
    assert landing.slots.booked() == {slot["id"]: "lead@example.com"}

    page.get_by_role("button", name="Cancel meeting").click()
    page.get_by_label("Reason (optional)").fill("  Found another time  ")
    page.screenshot(path=artifacts / "manage-cancel-step.png", full_page=True)
    page.get_by_role("button", name="Yes, cancel the meeting").click()
    expect(page.locator("#status")).to_have_text("Your meeting is cancelled. Its time is free for others again.")
    expect(page.locator("#booking-title")).to_be_focused()
    expect(page.locator("#booking-state")).to_have_text("Cancelled")
    expect(page.locator("#actions")).to_be_hidden()
    page.screenshot(path=artifacts / "manage-cancelled.png", full_page=True)

    assert landing.slots.booked() == {}
    assert slot["id"] in {s["id"] for s in free_slots(landing)}
    [row] = landing.slots.bookings()
    assert (row["status"], row["cancel_reason"], row["sequence"]) == ("cancelled", "Found another time", 1)

    # Opened again later: cancelled, nothing to do.
    page.reload()
    expect(page.locator("#booking-state")).to_have_text("Cancelled")
    expect(page.locator("#booking-note")).to_contain_text("This meeting is cancelled")
    expect(page.get_by_role("button", name="Cancel meeting")).to_be_hidden()
    expect(page.get_by_role("button", name="Reschedule")).to_be_hidden()
    assert_clean(seen)


def test_the_widgets_manage_link_cancels_the_booking(sqlite_landing, visit):
    """From the landing page on another origin to the manage page and back to free."""
    slot = free_slots(sqlite_landing)[0]
    seen = visit(sqlite_landing.url)
    page = seen.page
    page.locator(".sw-slot").first.click()
    page.get_by_label("Your email").fill("lead@example.com")
    page.get_by_role("button", name="Book this time").click()
    page.get_by_role("link", name="Manage or cancel").click()
    page.wait_for_url(f"{sqlite_landing.api_origin}/manage/**")
    page.get_by_role("button", name="Cancel meeting").click()
    page.get_by_role("button", name="Yes, cancel the meeting").click()
    expect(page.locator("#booking-state")).to_have_text("Cancelled")
    assert sqlite_landing.slots.booked() == {}
    assert slot["id"] in {s["id"] for s in free_slots(sqlite_landing)}
    assert_clean(seen)


def test_reschedule_holds_the_new_time_and_moves_the_booking(landing, visit, artifacts):
    slots = free_slots(landing)
    booking = book(landing, slots[0])
    seen = open_manage(visit, booking)
    page = seen.page
    sent = []
    page.on("request", lambda r: r.url.endswith("/reschedule") and sent.append(r))

    # By keyboard: to Reschedule, then the list, then the new time and the move.
    reschedule = page.get_by_role("button", name="Reschedule")
    reschedule.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Pick a new time")).to_be_focused()
    buttons = page.locator("#reschedule-days .sw-slot")
    expect(buttons).to_have_count(len(slots) - 1)  # the booking's own time is not offered
    expect(page.locator("#reschedule-message")).to_contain_text(f"{len(slots) - 1} free times")
    target = slot_in(page, slots[3])
    with page.expect_response(lambda r: r.url.endswith("/holds")) as held:
        target.focus()
        page.keyboard.press("Enter")
    assert held.value.status == 201
    expect(target).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#reschedule-message")).to_contain_text("is held for you")
    move = page.locator("#reschedule-confirm")
    expect(move).to_be_focused()
    expect(move).to_contain_text("Move my meeting to")
    assert slots[3]["id"] not in {s["id"] for s in free_slots(landing)}  # held
    page.screenshot(path=artifacts / "manage-reschedule.png", full_page=True)

    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Your meeting is moved to")
    expect(page.locator("#booking-title")).to_be_focused()
    expect(page.locator("#booking-date")).to_have_text(visitor_date(slots[3]))
    expect(page.locator("#reschedule-panel")).to_be_hidden()

    [request] = sent
    assert request.post_data_json["slot_id"] == slots[3]["id"]
    assert request.post_data_json["hold_token"] == held.value.json()["hold_token"]
    assert re.fullmatch(r"[0-9a-f-]{36}", request.headers["idempotency-key"])
    assert request.headers["authorization"] == f"Bearer {booking['token']}"
    assert landing.slots.booked() == {slots[3]["id"]: "lead@example.com"}
    assert slots[0]["id"] in {s["id"] for s in free_slots(landing)}  # the old time is free
    [row] = landing.slots.bookings()
    assert (row["reference"], row["slot"], row["sequence"]) == (booking["reference"], slots[3]["id"], 1)
    assert_clean(seen)


def test_a_time_held_by_someone_else_is_just_taken_and_another_can_be_picked(sqlite_landing, visit):
    slots = free_slots(sqlite_landing)
    booking = book(sqlite_landing, slots[0])
    seen = open_manage(visit, booking)
    page = seen.page
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator("#reschedule-days .sw-slot")).to_have_count(len(slots) - 1)
    status, _, _ = exchange(sqlite_landing.api.port, "POST", "/holds", {"slot_id": slots[2]["id"]})
    assert status == 201  # another visitor holds it after the list was shown

    slot_in(page, slots[2]).click()
    expect(page.locator("#reschedule-message")).to_contain_text(TAKEN)
    expect(slot_in(page, slots[2])).to_have_count(0)
    expect(page.locator("#reschedule-days .sw-slot")).to_have_count(len(slots) - 2)
    expect(page.locator("#reschedule-confirm")).to_be_hidden()

    # Picking one time then another gives the first back.
    with page.expect_response(lambda r: r.url.endswith("/holds")):
        slot_in(page, slots[4]).click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as released:
        slot_in(page, slots[5]).click()
    assert released.value.status == 204
    expect(page.locator("#reschedule-message")).to_contain_text("is held for you")
    assert slots[4]["id"] in {s["id"] for s in free_slots(sqlite_landing)}
    page.locator("#reschedule-confirm").click()
    expect(page.locator("#status")).to_contain_text("Your meeting is moved to")
    assert sqlite_landing.slots.booked() == {slots[5]["id"]: "lead@example.com"}

    # "Keep the current time" gives back a time held but not taken.
    page.get_by_role("button", name="Reschedule").click()
    with page.expect_response(lambda r: r.url.endswith("/holds")):
        slot_in(page, slots[6]).click()
    assert slots[6]["id"] not in {s["id"] for s in free_slots(sqlite_landing)}
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.get_by_role("button", name="Keep the current time").click()
    expect(page.get_by_role("button", name="Reschedule")).to_be_focused()
    assert slots[6]["id"] in {s["id"] for s in free_slots(sqlite_landing)}
    assert_clean(seen)


def test_a_missing_or_wrong_token_gets_the_same_not_found(sqlite_landing, visit):
    slot = free_slots(sqlite_landing)[0]
    booking = book(sqlite_landing, slot)
    base = booking["manage_url"].split("#")[0]

    seen = visit(base)  # no fragment: nothing is asked of the API, the token is
    asked = []
    seen.page.on("request", lambda r: "/bookings/" in r.url and asked.append(r.url))
    seen.page.reload()
    expect(seen.page.locator("#status")).to_have_text(ASK_TOKEN)
    expect(seen.page.get_by_label(TOKEN_FIELD)).to_be_focused()
    expect(seen.page.locator("#booking")).to_be_hidden()
    assert asked == []

    pages = []
    for url in (f"{base}#token=not-the-token",
                f"{base.rsplit('/', 1)[0]}/ZZZZZZZZ#token={booking['token']}"):
        seen = visit(url)
        expect(seen.page.locator("#status")).to_contain_text(NOT_FOUND)
        expect(seen.page.locator("#status")).to_have_class(re.compile("sw-status--error"))
        expect(seen.page.locator("#booking")).to_be_hidden()
        expect(seen.page.locator("#actions")).to_be_hidden()
        pages.append(seen.page.locator("#status").inner_text())
        assert_clean(seen)
    assert pages[0] == pages[1]
    assert sqlite_landing.slots.booked() == {slot["id"]: "lead@example.com"}


def test_a_meeting_that_has_started_cannot_be_cancelled_or_moved(sqlite_landing, visit):
    slot = free_slots(sqlite_landing)[0]
    booking = book(sqlite_landing, slot)
    seen = open_manage(visit, booking)
    page = seen.page
    page.get_by_role("button", name="Cancel meeting").click()
    sqlite_landing.slots.start_now(slot["id"])  # it starts while the page is open

    with page.expect_response(lambda r: r.url.endswith("/cancel")) as refused:
        page.get_by_role("button", name="Yes, cancel the meeting").click()
    assert refused.value.status == 409
    message = page.locator("#cancel-message")
    expect(message).to_have_text("This meeting has already started and can no longer be cancelled.")
    expect(message).to_have_class(re.compile("sw-status--error"))
    expect(page.get_by_role("button", name="Yes, cancel the meeting")).to_be_hidden()
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#booking-note")).to_contain_text("This meeting has started")
    expect(page.locator("#actions")).to_be_hidden()
    [row] = sqlite_landing.slots.bookings()
    assert row["status"] == "confirmed"

    page.reload()
    expect(page.locator("#booking-note")).to_contain_text("This meeting has started")
    expect(page.get_by_role("button", name="Reschedule")).to_be_hidden()
    assert_clean(seen)


def test_with_the_api_down_it_says_so_and_retries(sqlite_landing, visit):
    slots = free_slots(sqlite_landing)
    booking = book(sqlite_landing, slots[0])
    seen = open_manage(visit, booking)
    page = seen.page
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator("#reschedule-days .sw-slot")).to_have_count(len(slots) - 1)
    with page.expect_response(lambda r: r.url.endswith("/holds")):
        slot_in(page, slots[1]).click()

    sent = []
    page.on("request", lambda r: r.url.endswith("/reschedule") and sent.append(r))
    failing = []

    def fail_first(route):
        if failing:
            return route.continue_()
        failing.append(route)
        route.fulfill(status=503, json={"detail": "The service is temporarily unavailable."})

    page.route("**/reschedule", fail_first)
    page.locator("#reschedule-confirm").click()
    expect(page.locator("#reschedule-message")).to_contain_text("not available right now")
    page.locator("#reschedule-confirm").click()  # again: the same key
    expect(page.locator("#status")).to_contain_text("Your meeting is moved to")
    assert len(sent) == 2
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"]
    assert sqlite_landing.slots.booked() == {slots[1]["id"]: "lead@example.com"}

    # The page itself cannot load the booking: it says so, with "Try again".
    page.route("**/bookings/*", lambda route: route.abort())
    page.reload()
    expect(page.locator("#status")).to_contain_text("We could not reach the booking service")
    page.unroute("**/bookings/*")
    page.get_by_role("button", name="Try again").click()
    expect(page.locator("#booking-state")).to_have_text("Confirmed")
    expect(page.locator("#booking-title")).to_be_focused()  # the button used is gone
    assert_clean(seen)


def test_when_no_other_time_is_free_it_says_so(sqlite_landing, visit):
    slots = free_slots(sqlite_landing)
    booking = book(sqlite_landing, slots[0])
    for index, slot in enumerate(slots[1:]):
        book(sqlite_landing, slot, f"other{index}@example.com")
    seen = open_manage(visit, booking)
    page = seen.page
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator("#reschedule-message")).to_contain_text("There are no other free times right now")
    expect(page.get_by_role("button", name="Check again")).to_be_visible()
    expect(page.locator("#reschedule-days .sw-slot")).to_have_count(0)
    assert_clean(seen)


# -- a link without its token (the links in emails) -------------------------


def bookings_asked(page) -> list:
    """The requests the page sends from now on, to check how the token goes."""
    sent = []
    page.on("request", lambda r: sent.append(r))
    return sent


def assert_token_only_in_the_header(sent: list, booking: dict) -> None:
    reads = [r for r in sent if r.url.endswith(f"/bookings/{booking['reference']}")]
    assert reads, "the booking was not read"
    for request in reads:
        assert request.headers["authorization"] == f"Bearer {booking['token']}"
    assert not any(booking["token"] in r.url or "token" in r.url for r in sent)


def test_a_link_without_the_token_asks_for_it_then_shows_and_cancels_the_booking(
        sqlite_landing, visit, artifacts):
    slot = free_slots(sqlite_landing)[0]
    booking = book(sqlite_landing, slot)
    base = booking["manage_url"].split("#")[0]  # as the emails link it
    seen = visit(base, "phone")
    page = seen.page
    expect(page.locator("#status")).to_have_text(ASK_TOKEN)
    field = page.get_by_label(TOKEN_FIELD)
    expect(field).to_be_focused()
    expect(page.locator("#booking")).to_be_hidden()
    expect(page.locator("#actions")).to_be_hidden()
    page.screenshot(path=artifacts / "manage-ask-token.png", full_page=True)

    # By keyboard: the token typed in the field (focused already), then Enter.
    sent = bookings_asked(page)
    entries = page.evaluate("history.length")
    page.keyboard.type(booking["token"])
    page.keyboard.press("Enter")
    expect(page.locator("#booking-reference")).to_have_text(booking["reference"])
    expect(page.locator("#booking-state")).to_have_text("Confirmed")
    expect(page.locator("#booking-title")).to_be_focused()
    expect(page.locator("#token-form")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("Your meeting is booked")
    # The token went to the fragment, by replaceState (no new history entry), and to the API
    # only as Authorization: Bearer.
    assert page.url == f"{base}#token={booking['token']}"
    assert page.evaluate("history.length") == entries
    assert_token_only_in_the_header(sent, booking)

    page.get_by_role("button", name="Cancel meeting").click()
    page.get_by_role("button", name="Yes, cancel the meeting").click()
    expect(page.locator("#status")).to_have_text("Your meeting is cancelled. Its time is free for others again.")
    expect(page.locator("#booking-state")).to_have_text("Cancelled")
    assert sqlite_landing.slots.booked() == {}
    assert slot["id"] in {s["id"] for s in free_slots(sqlite_landing)}
    [row] = sqlite_landing.slots.bookings()
    assert (row["status"], row["sequence"]) == ("cancelled", 1)
    assert not any("token" in r.url for r in sent)

    # Reloaded, the page has the token in its fragment and asks for nothing.
    page.reload()
    expect(page.locator("#booking-state")).to_have_text("Cancelled")
    expect(page.locator("#token-form")).to_be_hidden()
    assert_clean(seen)


def test_a_wrong_token_pasted_gets_the_not_found_next_to_the_field(sqlite_landing, visit, artifacts):
    slot = free_slots(sqlite_landing)[0]
    booking = book(sqlite_landing, slot)
    base = booking["manage_url"].split("#")[0]
    linked = visit(f"{base}#token=not-the-token")  # the same words as a wrong link's
    expect(linked.page.locator("#status")).to_contain_text(NOT_FOUND)
    not_found = linked.page.locator("#status").inner_text()

    seen = visit(base)
    page = seen.page
    sent = bookings_asked(page)
    field = page.get_by_label(TOKEN_FIELD)
    message = page.locator("#token-message")
    show = page.get_by_role("button", name="Show my booking")
    for wrong in ("not-the-token", f"{base}#token=not-the-token"):
        field.fill(wrong)
        with page.expect_response(lambda r: "/bookings/" in r.url) as answer:
            show.click()
        assert answer.value.status == 404
        expect(message).to_have_text(not_found)
        expect(message).to_have_class(re.compile("sw-status--error"))
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_be_focused()
        expect(page.locator("#booking")).to_be_hidden()
        expect(page.locator("#actions")).to_be_hidden()
        expect(page.locator("#status")).to_have_text(ASK_TOKEN)
        assert page.url == base  # the wrong token left the fragment again
    page.screenshot(path=artifacts / "manage-wrong-token.png", full_page=True)
    assert [r.headers["authorization"] for r in sent if "/bookings/" in r.url] == [
        "Bearer not-the-token", "Bearer not-the-token"]

    # Typing again clears the error; nothing pasted, or a link without a token,
    # is answered at once, asking the API nothing.
    field.fill("")
    expect(message).to_have_text("")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    reads = len(sent)
    for nothing in ("", "   ", base, f"{base}#", "the token from the email"):
        field.fill(nothing)
        show.click()
        expect(message).to_have_text(PASTE_SOMETHING)
        expect(field).to_have_attribute("aria-invalid", "true")
    assert len(sent) == reads

    # Then the right one opens it.
    field.fill(booking["token"])
    show.click()
    expect(page.locator("#booking-reference")).to_have_text(booking["reference"])
    expect(page.locator("#token-form")).to_be_hidden()
    assert page.url == f"{base}#token={booking['token']}"
    assert sqlite_landing.slots.booked() == {slot["id"]: "lead@example.com"}
    assert_clean(linked, seen)


def test_the_full_manage_link_pasted_opens_the_booking(landing, visit):
    slots = free_slots(landing)
    booking = book(landing, slots[0])
    base = booking["manage_url"].split("#")[0]
    seen = visit(base)
    page = seen.page
    sent = bookings_asked(page)
    page.get_by_label(TOKEN_FIELD).fill(f"  {booking['manage_url']}\n")
    page.get_by_role("button", name="Show my booking").click()
    expect(page.locator("#booking-reference")).to_have_text(booking["reference"])
    expect(page.locator("#booking-date")).to_have_text(visitor_date(slots[0]))
    expect(page.locator("#booking-title")).to_be_focused()
    assert page.url == booking["manage_url"]
    assert_token_only_in_the_header(sent, booking)

    # And the rest of the page works with it: the booking moves.
    page.get_by_role("button", name="Reschedule").click()
    with page.expect_response(lambda r: r.url.endswith("/holds")):
        slot_in(page, slots[2]).click()
    page.locator("#reschedule-confirm").click()
    expect(page.locator("#status")).to_contain_text("Your meeting is moved to")
    assert landing.slots.booked() == {slots[2]["id"]: "lead@example.com"}
    assert_clean(seen)
