"""At least once, through outages and crashes: real ``scheduler-app serve``
processes (their relay threads, real time) against a real SMTP server with
STARTTLS and a real webhook receiver, on SQLite and PostgreSQL.

The retry schedule runs 100 times faster here (SCHEDULER_RELAY_RETRY_SCALE=0.01:
0.1 s, 0.6 s, 3 s, ...), and idle relays look for work every 0.1 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter

import pytest
from icalendar import Calendar
from receivers import Mailbox, WebhookReceiver, webhook_secret
from support import SCRIPT, book, reading, request, wait_until

from scheduler_app.models import OutboxMessage


# The certificate is tests/conftest.py's; aiosmtpd's chatter is quieted per test.
pytestmark = pytest.mark.usefixtures("quiet_smtp_log")


def environment(box: Mailbox, certificate, hooks: WebhookReceiver | None = None, **extra) -> dict:
    env = {
        "SCHEDULER_SMTP_URL": box.url,
        "SSL_CERT_FILE": str(certificate[0]),  # trust the throwaway certificate
        "SCHEDULER_MAIL_FROM": "bookings@example.com",
        "SCHEDULER_PUBLIC_URL": "https://book.example.com",
        "SCHEDULER_RELAY_POLL_SECONDS": "0.1",
        "SCHEDULER_RELAY_RETRY_SCALE": "0.01",
        "SCHEDULER_SEED_DAYS": "3",
    }
    if hooks is not None:
        env.update(SCHEDULER_WEBHOOK_URL=hooks.url, SCHEDULER_WEBHOOK_SECRET=hooks.secret)
    return {**env, **extra}


def outbox_rows(database_url: str) -> list[OutboxMessage]:
    with reading(database_url):
        return list(OutboxMessage.select().order_by(OutboxMessage.id))


def all_sent(database_url: str, count: int):
    found = outbox_rows(database_url)
    return found if len(found) == count and {r.status for r in found} == {"sent"} else None


def book_many(port: int, count: int) -> dict[int, str]:
    """Book the first ``count`` free slots, one lead each; {slot id: reference}."""
    free = request(port, "GET", "/availability")[1]
    booked = {}
    for slot in free[:count]:
        status, body = book(port, slot["id"], f"lead{slot['id']}@example.com")
        assert status == 200, body
        booked[slot["id"]] = body["booking"]["reference"]
    assert len(booked) == count
    return booked


def references(messages) -> list[str]:
    """The booking reference of each message, from its invitation's UID."""
    found = []
    for message in messages:
        [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        uid = str(Calendar.from_ical(part.get_content()).walk("VEVENT")[0]["UID"])
        found.append(uid.split("@")[0])
    return found


def test_smtp_down_while_20_bookings_are_made_then_back_all_arrive_once(
        servers, database_url, certificate):
    box = Mailbox(*certificate)  # not started: its port refuses connections
    hooks = WebhookReceiver(webhook_secret(), fail_first=3).start()
    try:
        server = servers(database_url, env=environment(
            box, certificate, hooks, SCHEDULER_REP_EMAIL="rep@example.com")).wait_ready()
        booked = book_many(server.port, 20)
        wait_until(lambda: all(r.attempts >= 1 for r in outbox_rows(database_url)
                               if r.channel == "email") and len(outbox_rows(database_url)) == 60,
                   60, "a first, failed attempt at every email")
        errors = [r.last_error for r in outbox_rows(database_url) if r.channel == "email"]
        assert all("refused" in (error or "").lower() for error in errors), errors
        box.start()
        rows = wait_until(lambda: all_sent(database_url, 60), 60, "every message sent")
        messages = box.messages()
        assert len(messages) == 40  # the lead's and the rep's, none twice
        assert len({m["Message-ID"] for m in messages}) == 40
        lead = [m for m in messages if m["To"] != "rep@example.com"]
        assert sorted(references(lead)) == sorted(booked.values())
        assert Counter(references(m for m in messages if m["To"] == "rep@example.com")) == \
            Counter(booked.values())
        # The webhooks: the first three calls failed; every event arrived once, signed.
        accepted = hooks.accepted()
        assert len(accepted) == 20 and all(call.valid for call in hooks.calls)
        assert Counter(c.headers["webhook-id"] for c in accepted) == Counter(
            str(r.id) for r in rows if r.channel == "webhook")
        assert sorted(c.json["data"]["reference"] for c in accepted) == sorted(booked.values())
        retried = [c.headers["webhook-id"] for c in hooks.calls if c.answered == 500]
        assert set(retried) <= {c.headers["webhook-id"] for c in accepted}
    finally:
        box.stop()
        hooks.stop()


def test_sigkill_while_the_relay_is_sending_loses_nothing(servers, database_url, certificate):
    box = Mailbox(*certificate).start()
    box.hold_next.set()  # the first message is taken in, then answered only when released
    try:
        env = environment(box, certificate, SCHEDULER_RELAY_LEASE_SECONDS="2")
        server = servers(database_url, env=env).wait_ready()
        booked = book_many(server.port, 5)
        wait_until(box.holding.is_set, 30, "the relay in the middle of sending")
        server.kill_all()
        box.release.set()  # too late: its client is gone, and it is answered 451 anyway
        assert box.messages() == []
        in_flight = [r for r in outbox_rows(database_url) if r.attempts == 1]
        assert len(in_flight) == 1 and in_flight[0].status == "pending"

        servers(database_url, env=env).wait_ready()
        rows = wait_until(lambda: all_sent(database_url, 5), 60, "every message sent")
        assert sorted(references(box.messages())) == sorted(booked.values())
        again = next(r for r in rows if r.id == in_flight[0].id)
        assert again.attempts == 2  # claimed again once its lease ran out
    finally:
        box.stop()


def test_several_relays_deliver_each_message_once(servers, database_url, certificate):
    box = Mailbox(*certificate).start()
    hooks = WebhookReceiver(webhook_secret()).start()
    try:
        env = environment(box, certificate, hooks)
        if database_url.startswith("sqlite"):
            started = [servers(database_url, workers=4, env=env)]  # 4 relays on one file
        else:
            started = [servers(database_url, workers=2, env=env) for _ in range(2)]  # 2 x 2
        for server in started:
            server.wait_ready()
        booked = {}
        for i, server in enumerate(started):
            free = request(server.port, "GET", "/availability")[1]
            for slot in free[i::len(started)][:24 // len(started)]:
                status, body = book(server.port, slot["id"], f"lead{slot['id']}@example.com")
                assert status == 200, body
                booked[slot["id"]] = body["booking"]["reference"]
        rows = wait_until(lambda: all_sent(database_url, 2 * len(booked)), 60,
                          "every message sent")
        assert {r.attempts for r in rows} == {1}  # each claimed once
        messages = box.messages()
        assert len(messages) == len(booked)
        assert sorted(references(messages)) == sorted(booked.values())
        assert len({m["Message-ID"] for m in messages}) == len(booked)
        ids = [c.headers["webhook-id"] for c in hooks.calls]
        assert len(ids) == len(set(ids)) == len(booked)
    finally:
        box.stop()
        hooks.stop()


def test_the_relay_command_delivers_what_serve_left_with_the_relay_off(
        servers, database_url, certificate):
    box = Mailbox(*certificate).start()
    try:
        env = environment(box, certificate, SCHEDULER_RELAY="off")
        server = servers(database_url, env=env).wait_ready()
        booked = book_many(server.port, 2)
        assert {r.status for r in outbox_rows(database_url)} == {"pending"}  # no relay in serve
        # deploy/scheduler-app-relay.service runs exactly this command.
        relay = subprocess.Popen([SCRIPT, "relay"], env={**os.environ, **server.env},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: all_sent(database_url, 2), 60, "the relay to send both")
            relay.send_signal(signal.SIGTERM)
            output, _ = relay.communicate(timeout=30)
        finally:
            if relay.poll() is None:
                relay.kill()
                relay.communicate()
        assert relay.returncode == 0, output
        assert "sent (attempt 1)" in output
        assert sorted(references(box.messages())) == sorted(booked.values())
    finally:
        box.stop()
