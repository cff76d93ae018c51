"""The rep's page (/admin) in headless Chromium against the real server, on SQLite
and PostgreSQL: sign in with the token, see a booking made through the widget,
cancel it (the slot is free again), close and reopen a day, open an extra time
and see it in the widget, download the CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pages import REP_TIMEZONE, Landing, serve_landing
from playwright.sync_api import expect
from support import exchange
from test_landing_page import assert_clean, book_through_page, free_slots, slot_button

TOKEN = "rep-admin-token-for-the-browser-tests-0123456789"
REP = ZoneInfo(REP_TIMEZONE)


@pytest.fixture
def rep_site(tmp_path, database_url) -> Iterator[Landing]:
    """The landing page with the widget on one origin; the API, with the admin
    token set, on another."""
    with serve_landing(tmp_path / "site", database_url, TOKEN, {"SCHEDULER_RELAY": "off"}) as served:
        yield served


def rep_day(slot: dict) -> str:
    """The heading of a slot's day on the rep's page: the rep's zone, en-US."""
    moment = datetime.fromisoformat(slot["start_time"]).astimezone(REP)
    return moment.strftime("%A, %B ") + str(moment.day)


def sign_in(visit, site: Landing, viewport: str = "desktop"):
    seen = visit(f"{site.api_origin}/admin", viewport)
    page = seen.page
    expect(page.get_by_label("Admin token")).to_be_focused()
    return seen


def submit_token(page, token: str) -> None:
    page.get_by_label("Admin token").fill(token)
    page.keyboard.press("Enter")


def test_the_rep_signs_in_sees_a_widget_booking_and_cancels_it(rep_site, visit, artifacts):
    slot = free_slots(rep_site)[2]
    lead = visit(rep_site.url + "?utm_source=newsletter&utm_campaign=autumn")
    book_through_page(lead.page, slot, "lead@example.com")
    expect(lead.page.locator(".sw-confirmation")).to_be_visible()
    assert slot["id"] not in {s["id"] for s in free_slots(rep_site)}

    seen = sign_in(visit, rep_site)
    page = seen.page
    requests = []
    page.on("request", lambda r: requests.append(r))
    submit_token(page, "not-the-token")
    expect(page.locator("#token-error")).to_have_text(
        "This token is not accepted. Paste the value of SCHEDULER_ADMIN_TOKEN exactly.")
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
    submit_token(page, TOKEN)
    day = page.get_by_role("list", name=rep_day(slot))
    item = day.get_by_role("listitem")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("lead@example.com")
    expect(item).to_contain_text("source newsletter, campaign autumn")
    expect(item).to_contain_text("Confirmed")
    expect(page.locator("#zone-note")).to_have_text(
        "Times are in your time zone, America/New York (SCHEDULER_TIMEZONE).")
    page.screenshot(path=artifacts / "admin-bookings.png", full_page=True)
    # The token went only as a Bearer header, to this origin, never in a URL.
    sent = [r for r in requests if "/admin/" in r.url and r.resource_type == "fetch"]
    assert sent and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in sent[1:])
    assert not any(TOKEN in r.url for r in requests)

    # Cancel, with a confirmation step, by keyboard.
    item.get_by_role("button", name=re.compile("^Cancel meeting with lead@example.com")).focus()
    page.keyboard.press("Enter")
    reason = item.get_by_label("Reason (optional)")
    expect(reason).to_be_focused()
    expect(item).to_contain_text("Cancel the meeting with lead@example.com")
    page.keyboard.type("The rep is travelling")
    item.get_by_role("button", name="Keep it").click()  # changed their mind once
    expect(item.get_by_label("Reason (optional)")).to_have_count(0)
    item.get_by_role("button", name=re.compile("^Cancel meeting")).click()
    item.get_by_label("Reason (optional)").fill("The rep is travelling")
    item.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#bookings-status")).to_contain_text(
        "Cancelled the meeting with lead@example.com")
    expect(page.locator("#bookings-status")).to_contain_text("No upcoming confirmed bookings.")
    assert slot["id"] in {s["id"] for s in free_slots(rep_site)}  # free again
    [row] = rep_site.slots.bookings()
    assert (row["status"], row["cancelled_by"], row["cancel_reason"]) == (
        "cancelled", "rep", "The rep is travelling")
    page.get_by_label("Show").select_option("cancelled")
    expect(page.get_by_role("list", name=rep_day(slot))).to_contain_text("Cancelled by you")

    # The tab keeps the token; signing out forgets it.
    page.reload()
    expect(page.get_by_role("heading", name="Bookings")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_focused()
    expect(page.locator("#status")).to_have_text("You are signed out.")
    page.reload()
    expect(page.get_by_label("Admin token")).to_be_visible()
    assert_clean(lead, seen)


def test_the_rep_closes_a_day_opens_an_extra_time_and_downloads_the_csv(rep_site, visit,
                                                                          artifacts):
    slots = free_slots(rep_site)
    booked = slots[0]
    status, _, _ = exchange(rep_site.api.port, "POST", "/book",
                            {"slot_id": booked["id"], "email": "kept@example.com",
                             "name": "Kept Lead"})
    assert status == 200
    day = datetime.fromisoformat(booked["start_time"]).astimezone(REP).date()

    seen = sign_in(visit, rep_site, "phone")
    page = seen.page
    submit_token(page, TOKEN)
    expect(page.locator("#closures-status")).to_have_text("No closed days.")

    form = page.get_by_role("form", name="Close days")
    form.get_by_role("button", name="Close these days").click()
    expect(page.locator("#closure-error")).to_have_text("Choose the first day to close.")
    form.get_by_label("From").fill(day.isoformat())
    form.get_by_label("Reason (optional)").fill("Conference")
    form.get_by_role("button", name="Close these days").click()
    result = page.locator("#closure-result")
    expect(result).to_contain_text(f"Closed {day.isoformat()}; 15 free slot(s) taken out.")
    expect(result).to_contain_text("These booked meetings are kept:")
    expect(result).to_contain_text("kept@example.com (Kept Lead)")
    assert free_slots(rep_site) == []
    closures = page.locator("#closures > li")
    expect(closures).to_have_count(1)
    expect(closures).to_contain_text("Conference")
    expect(closures).to_contain_text("1 booked meeting(s) on these days, kept:")
    page.screenshot(path=artifacts / "admin-closed.png", full_page=True)

    closures.get_by_role("button", name=re.compile("^Reopen")).click()
    expect(result).to_contain_text(f"Reopened {day.isoformat()}: the other slots of these days "
                                   "are seeded again by the next `scheduler-app seed`")
    expect(page.locator("#closures-status")).to_have_text("No closed days.")

    # An extra time, five days on at 10:00-11:00 in the rep's zone.
    extra = day + timedelta(days=5)
    times = page.get_by_role("form", name="Open extra times")
    times.get_by_label("Day").fill(extra.isoformat())
    times.get_by_label("From").fill("10:00")
    times.get_by_label("To").fill("11:00")
    times.get_by_role("button", name="Open these times").click()
    expect(page.locator("#extra-result")).to_contain_text("Opened 2 time(s) on")
    added = [s for s in free_slots(rep_site)
             if datetime.fromisoformat(s["start_time"]).astimezone(REP).date() == extra]
    assert [datetime.fromisoformat(s["start_time"]).astimezone(REP).strftime("%H:%M")
            for s in added] == ["10:00", "10:30"]
    # Again: refused, said next to the form, nothing added.
    times.get_by_label("Day").fill(extra.isoformat())
    times.get_by_label("From").fill("10:30")
    times.get_by_label("To").fill("11:30")
    times.get_by_role("button", name="Open these times").click()
    expect(page.locator("#extra-error")).to_contain_text("Nothing was added")
    expect(page.locator("#extra-error")).to_contain_text(f"overlaps slot {added[1]['id']}")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    text = download.value.path().read_text()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["email"], r["name"], r["status"]) for r in rows] == [
        ("kept@example.com", "Kept Lead", "confirmed")]
    assert re.fullmatch(r"bookings-\d{4}-\d{2}-\d{2}\.csv", download.value.suggested_filename)

    lead = visit(rep_site.url)
    for slot in added:
        expect(slot_button(lead.page, slot)).to_be_visible()
    assert_clean(seen, lead)


def test_a_changed_token_signs_the_page_out(rep_site, visit, tmp_path):
    seen = sign_in(visit, rep_site)
    page = seen.page
    submit_token(page, TOKEN)
    expect(page.locator("#bookings-status")).to_have_text("No upcoming confirmed bookings.")
    page.evaluate("sessionStorage.setItem('scheduler-admin-token', 'an-old-token')")
    page.reload()
    expect(page.locator("#status")).to_have_text(
        "The token was not accepted (it may have changed): please sign in again.")
    expect(page.get_by_label("Admin token")).to_be_focused()
    assert_clean(seen)
