"""Bots that stay under the limits, over HTTP against real servers: the honeypot,
the signed minimum fill time, ALTCHA (solved here, a replay refused), Turnstile
against a local imitation of its siteverify service, disposable domains."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import altcha
import pytest
from protection import redis_prefix, visit  # noqa: F401
from support import exchange, free_port


def _book(port, slot_id, email="lead@example.com", **extra):
    return exchange(port, "POST", "/book", {"slot_id": slot_id, "email": email, **extra})


def test_a_filled_honeypot_is_answered_like_a_success_with_nothing_booked(servers, database_url):
    server = servers(database_url).wait_ready()
    slot_id = exchange(server.port, "GET", "/availability")[2][0]["id"]
    status, _, answer = _book(server.port, slot_id, "bot@example.com", website="http://spam")
    assert status == 200
    assert answer["message"] == f"Slot {slot_id} is booked for bot@example.com."
    assert answer["slot"]["is_booked"] is True
    assert set(answer["booking"]) == {"reference", "status", "token", "manage_url"}
    booking = answer["booking"]
    headers = {"Authorization": f"Bearer {booking['token']}"}
    assert exchange(server.port, "GET", f"/bookings/{booking['reference']}",
                    headers=headers)[0] == 404  # nothing was booked
    assert slot_id in [s["id"] for s in exchange(server.port, "GET", "/availability")[2]]
    assert _book(server.port, slot_id, website="")[0] == 200  # empty: a person
    server.stop()
    assert "Honeypot filled on POST /book" in server.output


def test_a_form_sent_too_soon_after_it_was_shown_is_refused(servers, database_url):
    server = servers(database_url).wait_ready()
    slots = [s["id"] for s in exchange(server.port, "GET", "/availability")[2]]
    status, headers, form = exchange(server.port, "GET", "/form")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert form["min_fill_seconds"] == 2
    status, _, refused = _book(server.port, slots[0], form_token=form["form_token"])
    assert status == 422
    assert refused["detail"].startswith("The form was sent too quickly")
    issued, _, signature = form["form_token"].partition(".")
    forged = f"{int(issued) - 60_000}.{signature}"  # an older time, the same signature
    time.sleep(2)
    assert _book(server.port, slots[0], form_token=form["form_token"])[0] == 200
    assert _book(server.port, slots[1])[0] == 200  # no token (an API client): as before
    # A forged token is no token: refusing it would stop no bot that leaves it out.
    assert _book(server.port, slots[2], form_token=forged)[0] == 200


def _solve(port: int, visitor: str = "203.0.113.30") -> str:
    status, _, challenge = visit(port, "GET", "/altcha/challenge", visitor)
    assert status == 200
    made = altcha.ChallengeV1(challenge["algorithm"], challenge["challenge"],
                              challenge["maxNumber"], challenge["salt"], challenge["signature"])
    solution = altcha.solve_challenge_v1(made)
    assert solution is not None
    return base64.b64encode(json.dumps({
        "algorithm": challenge["algorithm"], "challenge": challenge["challenge"],
        "number": solution.number, "salt": challenge["salt"],
        "signature": challenge["signature"]}).encode()).decode()


def test_altcha_solved_once_is_accepted_once_across_workers(servers, tmp_path, redis_prefix):
    url, prefix = redis_prefix
    server = servers(f"sqlite:///{tmp_path / 'x.db'}", workers=2, env={
        "SCHEDULER_ALTCHA": "on", "SCHEDULER_RATE_LIMIT_STORAGE": url,
        "SCHEDULER_RATE_LIMIT_PREFIX": prefix}).wait_ready()
    slots = [s["id"] for s in exchange(server.port, "GET", "/availability")[2]]
    assert exchange(server.port, "GET", "/form")[2]["altcha"] is True
    status, _, refused = _book(server.port, slots[0])
    assert status == 403 and "anti-bot check is missing" in refused["detail"]
    payload = _solve(server.port)
    assert _book(server.port, slots[0], altcha=payload)[0] == 200
    for slot_id in slots[1:5]:  # new connections: both workers get some of the replays
        status, _, refused = _book(server.port, slot_id, altcha=payload)
        assert status == 403 and "already used" in refused["detail"]
    damaged = base64.b64encode(json.dumps({**json.loads(base64.b64decode(_solve(server.port))),
                                           "number": 1}).encode()).decode()
    assert _book(server.port, slots[1], altcha=damaged)[0] == 403


def test_altcha_is_off_by_default(servers, tmp_path):
    server = servers(f"sqlite:///{tmp_path / 'x.db'}").wait_ready()
    assert exchange(server.port, "GET", "/altcha/challenge")[0] == 404
    assert exchange(server.port, "GET", "/form")[2]["altcha"] is False


class FakeSiteverify:
    """Imitates Cloudflare's siteverify on 127.0.0.1: the token ``pass`` succeeds
    once (a second use is ``timeout-or-duplicate``, as tokens are single-use),
    anything else is ``invalid-input-response``."""

    def __init__(self):
        self.port = free_port()
        self.seen: list[dict] = []
        spent = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(
                    self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                fake.seen.append(form)
                token = form.get("response")
                if form.get("secret") != "1x0000000000000000000000000000000AA":
                    answer = {"success": False, "error-codes": ["invalid-input-secret"]}
                elif token == "pass" and token not in spent:
                    spent.add(token)
                    answer = {"success": True, "hostname": "localhost", "error-codes": []}
                elif token == "pass":
                    answer = {"success": False, "error-codes": ["timeout-or-duplicate"]}
                else:
                    answer = {"success": False, "error-codes": ["invalid-input-response"]}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def siteverify():
    fake = FakeSiteverify()
    yield fake
    fake.stop()


def test_turnstile_pass_fail_spent_and_outage(servers, tmp_path, siteverify):
    server = servers(f"sqlite:///{tmp_path / 'x.db'}", env={
        "SCHEDULER_TURNSTILE_SECRET": "1x0000000000000000000000000000000AA",
        "SCHEDULER_TURNSTILE_SITE_KEY": "1x00000000000000000000AA",
        "SCHEDULER_TURNSTILE_VERIFY_URL": f"http://127.0.0.1:{siteverify.port}/siteverify",
    }).wait_ready()
    port = server.port
    slots = [s["id"] for s in exchange(port, "GET", "/availability")[2]]
    assert exchange(port, "GET", "/form")[2]["turnstile_site_key"] == "1x00000000000000000000AA"
    status, _, answer = visit(port, "POST", "/book", "203.0.113.40",
                              {"slot_id": slots[0], "email": "a@example.com",
                               "turnstile_token": "pass"})
    assert status == 200, answer
    assert siteverify.seen[-1] == {"secret": "1x0000000000000000000000000000000AA",
                                   "response": "pass", "remoteip": "203.0.113.40"}
    status, _, refused = _book(port, slots[1], turnstile_token="pass")  # spent
    assert status == 403 and "already used" in refused["detail"]
    status, _, refused = _book(port, slots[1], turnstile_token="forged")
    assert (status, refused["detail"]) == (403, "The anti-bot check failed; complete it again.")
    assert _book(port, slots[1])[0] == 403  # none
    siteverify.stop()  # the service unreachable: let through, with a warning
    started = time.monotonic()
    assert _book(port, slots[1], turnstile_token="anything")[0] == 200
    assert time.monotonic() - started < 5
    server.stop()
    assert "Turnstile verification unavailable" in server.output


def test_disposable_domains_are_refused_when_asked(servers, tmp_path):
    server = servers(f"sqlite:///{tmp_path / 'x.db'}",
                     env={"SCHEDULER_REFUSE_DISPOSABLE_EMAIL": "on"}).wait_ready()
    slots = [s["id"] for s in exchange(server.port, "GET", "/availability")[2]]
    for email in ("x@mailinator.com", "x@sub.mailinator.com"):
        status, _, refused = _book(server.port, slots[0], email)
        assert status == 422 and "disposable" in refused["detail"], refused
    assert _book(server.port, slots[0], "x@example.com")[0] == 200
