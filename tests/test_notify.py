"""Notifications (issue 12), in process: the outbox, the relay, the lead's and the
rep's email with the invitation, signed webhooks, the calendar feed and the
download, on SQLite and PostgreSQL, against a real SMTP server (aiosmtpd, with
STARTTLS on a throwaway certificate) and a real HTTP webhook receiver.

The relay is driven here by ``relay.deliver_due`` with the app's settable
clock, so that retries are due exactly when the clock says; the relay thread
of ``serve``, real time and crashes are in tests/system/test_notify_faults.py.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from receivers import Mailbox, WebhookReceiver, make_certificate, signature_valid, webhook_secret
from standardwebhooks import Webhook
from support import bearer, free_port, made
from support import run_cli as run

from scheduler_app import booking
from scheduler_app.app import create_app
from scheduler_app.db import session
from scheduler_app.errors import ConfigError
from scheduler_app.logs import SecretPathFilter
from scheduler_app.models import OutboxMessage
from scheduler_app.notify import mail, outbox, relay
from scheduler_app.settings import Settings

REP = "rep@example.com"
LEAD = "lead@example.com"
PUBLIC = "https://book.example.com"
FEED_SECRET = "f" * 20 + "0123456789abcdef"


@pytest.fixture
def mailbox(certificate, trust):
    box = Mailbox(*certificate).start()
    yield box
    box.stop()


@pytest.fixture
def hooks():
    receiver = WebhookReceiver(webhook_secret()).start()
    yield receiver
    receiver.stop()


def notifying(settings: Settings, box: Mailbox | None, hooks: WebhookReceiver | None = None,
              **changes) -> Settings:
    """``settings`` with email to ``box``, webhooks to ``hooks``, no relay thread."""
    values = {"public_url": PUBLIC, "relay_in_serve": False, "calendar_secret": FEED_SECRET}
    if box is not None:
        values.update(smtp_url=box.url, mail_from="bookings@example.com", rep_email=REP)
    if hooks is not None:
        values.update(webhook_url=hooks.url, webhook_secret=hooks.secret)
    return replace(settings, **{**values, **changes})


@pytest.fixture
def app_with(clock):
    """``app_with(settings)``: a TestClient for the app; closed after the test."""
    clients = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings, clock))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


def book(client, slot_id=1, **fields):
    return made(client, slot_id, LEAD, **fields)


def rows() -> list[OutboxMessage]:
    with session():
        return list(OutboxMessage.select().order_by(OutboxMessage.id))


def deliver(settings, clock) -> int:
    return relay.deliver_due(settings, clock)


def invitation(message) -> tuple[str, Calendar]:
    """The text/calendar part's MIME method and its parsed calendar."""
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    return part.get_param("method"), Calendar.from_ical(part.get_content())


def vevent(message):
    return invitation(message)[1].walk("VEVENT")[0]


def part_text(message, subtype: str) -> str:
    [part] = [p for p in message.walk() if p.get_content_type() == f"text/{subtype}"]
    return part.get_content()


def to(box: Mailbox, address: str):
    return [m for m in box.messages() if m["To"] == address]


# -- the outbox -----------------------------------------------------------------


def test_without_destinations_nothing_is_queued(client):
    assert client.post("/book", json={"slot_id": 1, "email": LEAD}).status_code == 200
    assert rows() == []


def test_each_change_queues_one_row_per_destination_in_its_transaction(
        settings, mailbox, hooks, app_with):
    client = app_with(notifying(settings, mailbox, hooks))
    made = book(client, 1, name="Jane")
    assert [(r.channel, r.recipient, r.event) for r in rows()] == [
        ("email", "lead", "booking.created"), ("email", "rep", "booking.created"),
        ("webhook", "webhook", "booking.created")]
    # A refused change writes nothing: it rolled back with the savepoint.
    refused = client.post("/book", json={"slot_id": 1, "email": "other@example.com"})
    assert refused.status_code == 409
    assert len(rows()) == 3
    client.post(f"/bookings/{made['reference']}/cancel", headers=bearer(made["token"]))
    assert [r.event for r in rows()][3:] == ["booking.cancelled"] * 3
    # The manage token is stored only as a hash: no message holds it.
    for row in rows():
        assert made["token"] not in row.payload
        assert booking.token_hash(made["token"]) not in row.payload
        assert row.status == "pending" and row.attempts == 0


def test_only_configured_destinations_get_rows(settings, mailbox, app_with):
    client = app_with(notifying(settings, mailbox, rep_email=None))
    book(client)
    assert [(r.channel, r.recipient) for r in rows()] == [("email", "lead")]


# -- email -----------------------------------------------------------------------


def test_the_leads_invitation_follows_the_rules_across_create_reschedule_cancel(
        settings, clock, mailbox, app_with):
    config = notifying(settings, mailbox)
    client = app_with(config)
    made = book(client, 1, name="Jane Lead", timezone="Asia/Tokyo")
    ref, token = made["reference"], made["token"]
    assert client.post(f"/bookings/{ref}/reschedule", json={"slot_id": 3},
                       headers=bearer(token)).status_code == 200
    assert client.post(f"/bookings/{ref}/cancel", headers=bearer(token)).status_code == 200
    assert deliver(config, clock) == 6
    lead = to(mailbox, LEAD)
    assert len(lead) == 3

    events = []
    for message, expected_method in zip(lead, ["REQUEST", "REQUEST", "CANCEL"], strict=True):
        mime_method, calendar = invitation(message)
        assert mime_method == calendar["METHOD"] == expected_method
        event = calendar.walk("VEVENT")[0]
        events.append(event)
        assert event["DTSTAMP"].dt.tzinfo is not None
        assert event["ORGANIZER"] == f"mailto:{REP}"
        assert event["ATTENDEE"] == f"mailto:{LEAD}"
        assert event["ATTENDEE"].params["RSVP"] == "TRUE"
        assert str(event["SUMMARY"]) == "Meeting"
        assert f"{PUBLIC}/manage/{ref}" in str(event["DESCRIPTION"])
        assert {"text/plain", "text/html"} <= {p.get_content_type() for p in message.walk()}
        assert message["Message-ID"]
    assert len({str(e["UID"]) for e in events}) == 1
    assert [int(e["SEQUENCE"]) for e in events] == [0, 1, 2]
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    # In UTC: slot 1 is 09:00 in New York on Monday 2026-11-23, slot 3 09:00 + 1 h.
    starts = ["20261123T140000Z", "20261123T150000Z", "20261123T150000Z"]
    for event, start in zip(events, starts, strict=True):
        raw = event.to_ical().decode()
        assert f"DTSTART:{start}" in raw
        assert event["DTSTART"].dt.utcoffset() == timedelta(0)
        assert event["DTEND"].dt - event["DTSTART"].dt == timedelta(minutes=30)
    # The time in the lead's zone (Tokyo: 23:00 for 09:00 in New York).
    assert "23:00" in lead[0]["Subject"] and "Asia/Tokyo" in part_text(lead[0], "plain")
    assert "Monday 23 November 2026, 23:00" in part_text(lead[0], "html")
    assert "Tuesday 24 November 2026, 00:00" in part_text(lead[1], "plain")
    assert lead[2]["Subject"].startswith("Cancelled:")
    assert len({m["Message-ID"] for m in mailbox.messages()}) == 6
    # Over STARTTLS, logged in.
    assert all(r.tls and r.user == "relay" for r in mailbox.received)
    assert {r.mail_from for r in mailbox.received} == {"bookings@example.com"}


def test_without_a_lead_time_zone_the_time_is_the_reps(settings, clock, mailbox, app_with):
    config = notifying(settings, mailbox, rep_email=None)
    client = app_with(config)
    book(client, 1)
    deliver(config, clock)
    [message] = mailbox.messages()
    assert "Monday 23 November 2026, 09:00" in part_text(message, "plain")
    assert "(America/New_York)" in part_text(message, "plain")


def test_the_reps_notice_has_the_lead_and_source_and_the_same_invitation(
        settings, clock, mailbox, app_with):
    config = notifying(settings, mailbox)
    client = app_with(config)
    source = {"utm_source": "newsletter", "utm_campaign": "spring <b>sale</b>",
              "referrer": "https://www.example.com/pricing"}
    book(client, 2, name="Jane <script>", notes="About the enterprise plan", source=source)
    deliver(config, clock)
    [lead] = to(mailbox, LEAD)
    [rep] = to(mailbox, REP)
    text, page = part_text(rep, "plain"), part_text(rep, "html")
    for value in (LEAD, "Jane <script>", "About the enterprise plan", "newsletter",
                  "spring <b>sale</b>", "https://www.example.com/pricing"):
        assert value in text
    assert "<script>" not in page and "Jane &lt;script&gt;" in page  # escaped
    assert rep["Reply-To"] == LEAD
    rep_event, lead_event = vevent(rep), vevent(lead)
    assert invitation(rep)[0] == "REQUEST"
    for key in ("UID", "SEQUENCE", "DTSTART", "DTEND", "ORGANIZER", "ATTENDEE"):
        assert rep_event[key].to_ical() == lead_event[key].to_ical()
    assert "newsletter" in str(rep_event["DESCRIPTION"])
    assert "newsletter" not in str(lead_event["DESCRIPTION"])  # the lead's copy: no tracking


def test_a_message_sent_again_after_a_lost_lease_has_the_same_message_id(
        settings, clock, mailbox, app_with):
    config = notifying(settings, mailbox, rep_email=None)
    client = app_with(config)
    book(client)
    held = relay.claim(clock(), config.relay_lease_seconds)
    # The relay sends, then dies before it records the outcome.
    mail.send(mail.compose(held.id, held.recipient, held.payload, config), config)
    assert deliver(config, clock) == 0  # leased: nobody else takes it
    clock.now += timedelta(seconds=config.relay_lease_seconds + 1)
    assert deliver(config, clock) == 1
    first, second = mailbox.messages()
    assert first["Message-ID"] == second["Message-ID"]
    [row] = rows()
    assert (row.status, row.attempts) == ("sent", 2)


def test_certificates_and_host_names_are_checked(settings, clock, certificate, tmp_path,
                                                 monkeypatch, app_with):
    box = Mailbox(*certificate).start()
    other_cert = make_certificate(tmp_path, "DNS:mail.example.org")
    wrong_name = Mailbox(*other_cert).start()
    try:
        client = app_with(notifying(settings, box, rep_email=None))
        book(client)
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the system's CAs only
        config = notifying(settings, box, rep_email=None)
        assert deliver(config, clock) == 1
        [row] = rows()
        assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        monkeypatch.setenv("SSL_CERT_FILE", str(other_cert[0]))  # trusted, wrong name
        clock.now += timedelta(minutes=1)
        assert deliver(replace(config, smtp_url=wrong_name.url), clock) == 1
        [row] = rows()
        assert "localhost" in row.last_error and row.attempts == 2
        assert box.messages() == [] and wrong_name.messages() == []
    finally:
        box.stop()
        wrong_name.stop()


@pytest.mark.parametrize("tls", ["implicit", "none"])
def test_smtps_and_a_local_relay_without_tls(settings, clock, certificate, trust, tls, app_with):
    box = Mailbox(*certificate, tls=tls).start()
    try:
        config = notifying(settings, box, rep_email=None)
        client = app_with(config)
        book(client)
        assert deliver(config, clock) == 1
        [received] = box.received
        assert received.tls == (tls == "implicit")
        assert received.user == ("relay" if tls == "implicit" else None)
    finally:
        box.stop()


def test_starttls_is_required_unless_turned_off(settings, clock, certificate, trust, app_with):
    plain = Mailbox(*certificate, tls="none").start()
    try:
        config = notifying(settings, plain, rep_email=None,
                           smtp_url=f"smtp://localhost:{plain.port}")  # STARTTLS wanted
        client = app_with(config)
        book(client)
        deliver(config, clock)
        [row] = rows()
        assert row.status == "pending" and "STARTTLS" in row.last_error
        assert plain.messages() == []
    finally:
        plain.stop()


# -- retries ----------------------------------------------------------------------


def test_failures_back_off_on_the_schedule_then_the_message_is_dead(
        settings, clock, app_with, caplog):
    config = replace(notifying(settings, None), smtp_url=f"smtp://localhost:{free_port()}",
                     mail_from="bookings@example.com")  # nothing listens there
    client = app_with(config)
    book(client)
    delays = []
    with caplog.at_level(logging.WARNING, logger="scheduler_app.relay"):
        for _ in range(relay.MAX_ATTEMPTS + 1):  # a bound: dead after MAX_ATTEMPTS tries
            tried_at = clock.now
            assert deliver(config, clock) == 1
            [row] = rows()
            if row.status == "dead":
                break
            due = row.next_attempt_at.replace(tzinfo=UTC)
            delays.append((due - tried_at).total_seconds())
            clock.now = due - timedelta(seconds=1)
            assert deliver(config, clock) == 0  # not due yet
            clock.now = due
    assert row.attempts == relay.MAX_ATTEMPTS == 12
    assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
    assert len(delays) == len(relay.RETRY_SCHEDULE)
    for delay, planned in zip(delays, relay.RETRY_SCHEDULE, strict=True):
        assert planned * 0.8 <= delay <= planned * 1.2
    assert list(relay.RETRY_SCHEDULE[:6]) == [10, 60, 300, 1800, 7200, 21600]
    assert set(relay.RETRY_SCHEDULE[6:]) == {12 * 3600}
    assert sum(relay.RETRY_SCHEDULE) <= 3 * 24 * 3600
    dead_lines = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(dead_lines) == 1 and "is dead after 12 attempt(s)" in dead_lines[0].getMessage()
    # Requeued: due now, with a fresh schedule.
    with session():
        assert outbox.requeue([row.id], clock()) == [row.id]
    [row] = rows()
    assert (row.status, row.attempts) == ("pending", 0)


def test_smtp_down_while_20_bookings_are_made_then_back_all_arrive_once(
        settings, clock, certificate, trust, app_with):
    box = Mailbox(*certificate)  # not started: nothing listens on its port yet
    config = notifying(settings, box, rep_email=None, seed_days=2)
    client = app_with(config)
    references = {book(client, slot_id)["reference"] for slot_id in range(1, 21)}
    assert deliver(config, clock) == 20
    assert {(r.status, r.attempts) for r in rows()} == {("pending", 1)}
    box.start()
    try:
        clock.now += timedelta(minutes=1)
        assert deliver(config, clock) == 20
        assert deliver(config, clock) == 0
        clock.now += timedelta(days=4)
        assert deliver(config, clock) == 0  # nothing left to send again
        messages = box.messages()
        assert len(messages) == 20
        assert len({m["Message-ID"] for m in messages}) == 20
        assert {str(vevent(m)["UID"]).split("@")[0] for m in messages} == references
        assert {r.status for r in rows()} == {"sent"}
    finally:
        box.stop()


# -- webhooks ---------------------------------------------------------------------


def test_webhooks_are_signed_and_retried_with_the_same_id(settings, clock, app_with):
    hooks = WebhookReceiver(webhook_secret(), fail_first=2).start()
    try:
        config = notifying(settings, None, hooks)
        client = app_with(config)
        source = {"utm_source": "ads", "referrer": "https://www.example.com/"}
        made = book(client, 4, name="Jane", notes="Hi", source=source)
        for step in (0, 15, 75):  # the first try, then past the 10 s and 1 min delays
            clock.now += timedelta(seconds=step)
            assert deliver(config, clock) == 1
        assert [c.answered for c in hooks.calls] == [500, 500, 204]
        ids = {c.headers["webhook-id"] for c in hooks.calls}
        [row] = rows()
        assert ids == {str(row.id)}
        assert all(c.valid for c in hooks.calls)  # checked by the spec's algorithm
        assert len({c.body for c in hooks.calls}) == 1  # the same bytes on every attempt
        delivered = hooks.calls[-1]
        Webhook(hooks.secret).verify(delivered.body, delivered.headers)  # and by the library
        assert delivered.headers["content-type"] == "application/json"
        event = delivered.json
        assert event["type"] == "booking.created"
        assert datetime.fromisoformat(event["timestamp"]) == clock.now - timedelta(seconds=90)
        data = event["data"]
        assert {k: data[k] for k in ("reference", "status", "email", "name", "notes", "source")} \
            == {"reference": made["reference"], "status": "confirmed", "email": LEAD,
                "name": "Jane", "notes": "Hi", "source": source}
        assert data["slot"] == {"id": 4, "start_time": "2026-11-23T10:30:00-05:00",
                                "end_time": "2026-11-23T11:00:00-05:00", "is_booked": True,
                                "booked_by_email": LEAD}
        assert (row.status, row.attempts, row.last_error) == (
            "sent", 3, "the endpoint answered 500")
        # A forged or stale call fails the receiver's check.
        forged = {**delivered.headers, "webhook-id": "999"}
        assert not signature_valid(hooks.secret, forged, delivered.body)
    finally:
        hooks.stop()


def test_410_disables_the_webhook_endpoint_until_a_retry(settings, clock, app_with, caplog):
    hooks = WebhookReceiver(webhook_secret(), status=410).start()
    try:
        config = notifying(settings, None, hooks)
        client = app_with(config)
        book(client, 1)
        with caplog.at_level(logging.ERROR, logger="scheduler_app.relay"):
            assert deliver(config, clock) == 1
        assert "410" in caplog.text and "disabled" in caplog.text
        book(client, 2)
        clock.now += timedelta(days=1)
        assert deliver(config, clock) == 0  # disabled: the second is not even tried
        assert len(hooks.calls) == 1
        first, second = rows()
        assert first.status == second.status == "dead"
        assert second.last_error.startswith(outbox.WEBHOOK_GONE)
        hooks.status = 204  # the endpoint is back; the operator requeues the last one
        with session():
            outbox.requeue([second.id], clock())
        assert deliver(config, clock) == 1
        book(client, 3)
        assert deliver(config, clock) == 1
        assert [c.json["data"]["slot"]["id"] for c in hooks.accepted()] == [2, 3]
    finally:
        hooks.stop()


# -- the relay thread of the app -----------------------------------------------------


def test_the_app_runs_a_relay_thread_and_stops_it(settings, mailbox, app_with):
    config = replace(notifying(settings, mailbox), relay_in_serve=True, relay_poll_seconds=0.05)
    client = app_with(config)
    book(client)
    assert len(mailbox.wait_for(2)) == 2
    assert any(t.name == "scheduler-relay" for t in threading.enumerate())
    client.__exit__(None, None, None)
    assert not any(t.name == "scheduler-relay" for t in threading.enumerate())


# -- calendars --------------------------------------------------------------------


def test_the_feed_lists_exactly_the_confirmed_and_recently_cancelled_bookings(
        settings, clock, app_with):
    client = app_with(notifying(settings, None))
    kept = [book(client, slot_id, name=f"Lead {slot_id}") for slot_id in (1, 5)]
    gone = book(client, 9)
    client.post(f"/bookings/{gone['reference']}/cancel", headers=bearer(gone["token"]))
    moved = book(client, 12)
    client.post(f"/bookings/{moved['reference']}/reschedule", json={"slot_id": 14},
                headers=bearer(moved["token"]))

    response = client.get(f"/calendar/{FEED_SECRET}.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert "METHOD" not in calendar
    assert calendar["REFRESH-INTERVAL"].to_ical() == b"PT15M"
    assert calendar["X-PUBLISHED-TTL"].to_ical() == b"PT15M"
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    expected = {f"{b['reference']}@scheduler-app" for b in (*kept, gone, moved)}
    assert set(events) == expected
    assert str(events[f"{gone['reference']}@scheduler-app"]["STATUS"]) == "CANCELLED"
    assert int(events[f"{gone['reference']}@scheduler-app"]["SEQUENCE"]) == 1
    mover = events[f"{moved['reference']}@scheduler-app"]
    assert (int(mover["SEQUENCE"]), str(mover["STATUS"])) == (1, "CONFIRMED")
    assert "DTSTART:20261123T203000Z" in mover.to_ical().decode()  # slot 14: 15:30 New York
    assert {str(events[f"{b['reference']}@scheduler-app"]["STATUS"]) for b in kept} == {
        "CONFIRMED"}

    etag = response.headers["etag"]
    again = client.get(f"/calendar/{FEED_SECRET}.ics", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    book(client, 16)  # a change: a new ETag
    changed = client.get(f"/calendar/{FEED_SECRET}.ics", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag

    clock.now += timedelta(days=34)  # the meetings (on 2026-11-23) are now over 30 days ago
    assert Calendar.from_ical(client.get(f"/calendar/{FEED_SECRET}.ics").content).walk(
        "VEVENT") == []


def test_the_feed_is_404_for_a_wrong_secret_and_when_unset(settings, client, app_with):
    unknown = client.get("/no/such/path")
    assert client.get(f"/calendar/{FEED_SECRET}.ics").status_code == 404  # unset
    configured = app_with(notifying(settings, None))
    for wrong in (FEED_SECRET[:-1] + "x", FEED_SECRET[:-1], FEED_SECRET + "0", "x"):
        response = configured.get(f"/calendar/{wrong}.ics")
        assert (response.status_code, response.json()) == (404, unknown.json())


def test_the_booking_invite_download(settings, clock, mailbox, app_with):
    config = notifying(settings, mailbox, rep_email=None)
    client = app_with(config)
    made = book(client, 2)
    response = client.get(f"/bookings/{made['reference']}/invite.ics",
                          headers=bearer(made["token"]))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert calendar["METHOD"] == "PUBLISH" == response.headers["content-type"].split(
        "method=")[1]
    event = calendar.walk("VEVENT")[0]
    deliver(config, clock)
    emailed = vevent(mailbox.messages()[0])
    assert (event["UID"], event["SEQUENCE"]) == (emailed["UID"], emailed["SEQUENCE"])
    assert "ATTENDEE" not in event  # PUBLISH: no reply asked for
    path = f"/bookings/{made['reference']}/invite.ics"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("wrong")).status_code == 404
    assert client.get("/bookings/ZZZZZZZZ/invite.ics",
                      headers=bearer(made["token"])).status_code == 404


def test_the_access_log_masks_the_feed_secret():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/calendar/{FEED_SECRET}.ics", "1.1",
                                200), None)
    SecretPathFilter().filter(record)
    assert FEED_SECRET not in record.getMessage()
    assert "/calendar/***.ics" in record.getMessage()


# -- the command line ---------------------------------------------------------------


def test_outbox_lists_pending_and_dead_and_retry_requeues(settings, clock, app_with):
    config = replace(notifying(settings, None), smtp_url=f"smtp://localhost:{free_port()}",
                     mail_from="bookings@example.com", rep_email=REP)
    client = app_with(config)
    made = book(client)
    deliver(config, clock)  # both fail: connection refused
    lead, rep = rows()
    with session():
        OutboxMessage.update(status="dead").where(OutboxMessage.id == rep.id).execute()
    env = {"DATABASE_URL": settings.database_url}
    listing = run("outbox", env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0] == "1 pending, 1 dead, 0 sent."
    assert made["reference"] in listing.stdout and "dead" in listing.stdout
    assert "refused" in listing.stdout.lower()
    retried = run("outbox", "retry", str(rep.id), env=env)
    assert retried.returncode == 0 and f"Requeued 1 message(s): {rep.id}." in retried.stdout
    assert {r.status for r in rows()} == {"pending"}
    assert run("outbox", "retry", "9999", env=env).returncode == 1
    assert run("outbox", "retry", env=env).returncode == 2


# -- settings ---------------------------------------------------------------------

GOOD_SECRET = "whsec_" + "A" * 32  # 24 bytes


@pytest.mark.parametrize(("env", "expected"), [
    ({"SCHEDULER_SMTP_URL": "http://mail:25"}, "SCHEDULER_SMTP_URL must be"),
    ({"SCHEDULER_SMTP_URL": "smtp://:25"}, "SCHEDULER_SMTP_URL must be"),
    ({"SCHEDULER_SMTP_URL": "smtp://mail:x"}, "SCHEDULER_SMTP_URL must be"),
    ({"SCHEDULER_SMTP_URL": "smtp://mail?tls=no"}, "SCHEDULER_SMTP_URL must be"),
    ({"SCHEDULER_SMTP_URL": "smtps://mail?starttls=0"}, "SCHEDULER_SMTP_URL must be"),
    ({"SCHEDULER_SMTP_URL": "smtp://mail:587"}, "SCHEDULER_MAIL_FROM is required"),
    ({"SCHEDULER_MAIL_FROM": "not an address"}, "SCHEDULER_MAIL_FROM must be an email"),
    ({"SCHEDULER_REP_EMAIL": "rep"}, "SCHEDULER_REP_EMAIL must be an email"),
    ({"SCHEDULER_WEBHOOK_URL": "ftp://x"}, "SCHEDULER_WEBHOOK_URL must be"),
    ({"SCHEDULER_WEBHOOK_URL": "https://crm.example.com/h"},
     "SCHEDULER_WEBHOOK_SECRET is required"),
    ({"SCHEDULER_WEBHOOK_SECRET": "A" * 40}, "SCHEDULER_WEBHOOK_SECRET must be whsec_"),
    ({"SCHEDULER_WEBHOOK_SECRET": "whsec_" + "A" * 28}, "at least 24"),  # 21 bytes
    ({"SCHEDULER_WEBHOOK_SECRET": "whsec_" + "*" * 40}, "SCHEDULER_WEBHOOK_SECRET must be"),
    ({"SCHEDULER_CALENDAR_SECRET": "short"}, "SCHEDULER_CALENDAR_SECRET must be at least 32"),
    ({"SCHEDULER_CALENDAR_SECRET": "a/" * 20}, "SCHEDULER_CALENDAR_SECRET must be"),
    ({"SCHEDULER_RELAY": "maybe"}, "SCHEDULER_RELAY must be one of on, off"),
    ({"SCHEDULER_RELAY_POLL_SECONDS": "0"}, "SCHEDULER_RELAY_POLL_SECONDS must be a number"),
    ({"SCHEDULER_RELAY_LEASE_SECONDS": "x"}, "SCHEDULER_RELAY_LEASE_SECONDS must be a number"),
    ({"SCHEDULER_MEETING_TITLE": "a\nb"}, "SCHEDULER_MEETING_TITLE must be one line"),
])
def test_bad_notification_settings_name_the_variable(env, expected):
    with pytest.raises(ConfigError, match=expected) as caught:
        Settings.from_env(env)
    for secret in ("A" * 28, "*" * 40, "short"):
        assert secret not in str(caught.value) or expected.startswith("SCHEDULER_SMTP")


def test_notification_settings_default_off_and_are_read():
    default = Settings.from_env({})
    assert (default.smtp_url, default.webhook_url, default.calendar_secret) == (None, None, None)
    assert default.relay_in_serve and default.relay_retry_scale == 1
    read = Settings.from_env({
        "SCHEDULER_SMTP_URL": "smtps://u:p@mail.example.com",
        "SCHEDULER_MAIL_FROM": "b@example.com",
        "SCHEDULER_REP_EMAIL": "rep@example.com", "SCHEDULER_MEETING_TITLE": "Demo call",
        "SCHEDULER_WEBHOOK_URL": "https://crm.example.com/h",
        "SCHEDULER_WEBHOOK_SECRET": GOOD_SECRET,
        "SCHEDULER_CALENDAR_SECRET": "c" * 32, "SCHEDULER_RELAY": "off",
        "SCHEDULER_RELAY_POLL_SECONDS": "0.5", "SCHEDULER_RELAY_RETRY_SCALE": "0.01",
    })
    assert read.meeting_title == "Demo call" and not read.relay_in_serve
    assert (read.relay_poll_seconds, read.relay_retry_scale) == (0.5, 0.01)
    assert "u:p" not in repr(read) and GOOD_SECRET not in repr(read)
    url = mail.SmtpUrl(read.smtp_url)
    assert (url.implicit_tls, url.starttls, url.port, url.user) == (True, False, 465, "u")
    assert mail.SmtpUrl("smtp://mail").port == 587
    assert (mail.SmtpUrl("smtp://mail?starttls=0").starttls,
            mail.SmtpUrl("smtp://mail?starttls=0").port) == (False, 25)


def test_startup_says_what_is_off():
    notes = [line for _, line in relay.configuration_notes(Settings())]
    assert any("SCHEDULER_SMTP_URL is not set" in line for line in notes)
    on = replace(Settings(), smtp_url="smtp://m", mail_from="b@example.com")
    assert any("SCHEDULER_PUBLIC_URL is not set" in line
               for _, line in relay.configuration_notes(on))


def test_payload_snapshots_survive_json(settings, mailbox, app_with):
    client = app_with(notifying(settings, mailbox))
    book(client, 1, source={"utm_term": "x"})
    payload = json.loads(rows()[0].payload)
    assert payload["slot"] == {"id": 1, "start": "2026-11-23T14:00:00Z",
                               "end": "2026-11-23T14:30:00Z"}
    assert payload["manage_url"] == f"{PUBLIC}/manage/{payload['reference']}"
    assert payload["source"] == {"utm_term": "x"} and payload["to"] == LEAD
