"""scheduler_app/protect without servers: its settings, who is counted, the form
token, the sliding window's Retry-After, the header fields, disposable domains."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from support import run_coroutine

from scheduler_app.errors import ConfigError
from scheduler_app.protect.challenges import disposable_domain
from scheduler_app.protect.counting import Counters, _count
from scheduler_app.protect.identity import address_key, client_key, email_key
from scheduler_app.protect.ratelimit import limit_headers, route_group
from scheduler_app.protect.settings import Limit
from scheduler_app.protect.traps import FormClock, FormRefused
from scheduler_app.settings import Settings


def test_the_defaults_are_the_issues():
    protection = Settings.from_env({}).protection
    assert {limit.name: (limit.amount, limit.seconds) for limit in protection.limits} == {
        "book-minute": (10, 60), "book-hour": (60, 3600), "email-day": (10, 86400),
        "holds-minute": (30, 60), "holds-hour": (300, 3600),
        "token-minute": (30, 60), "token-hour": (300, 3600),
        "availability-minute": (600, 60)}
    assert protection.storage == "memory://" and not protection.shared
    assert protection.exempt == (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))
    assert protection.forwarded_allow_ips == "127.0.0.1,::1"
    assert (protection.honeypot, protection.min_fill_seconds) == (True, 2.0)
    assert (protection.altcha, protection.turnstile_secret,
            protection.refuse_disposable_email) == (False, None, False)


def test_settings_are_read_and_zero_turns_a_limit_off():
    protection = Settings.from_env({
        "SCHEDULER_RATE_LIMIT_BOOK_PER_MINUTE": "0",
        "SCHEDULER_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379/2",
        "SCHEDULER_RATE_LIMIT_PREFIX": "acme",
        "SCHEDULER_RATE_LIMIT_EXEMPT": "",
        "SCHEDULER_FORWARDED_ALLOW_IPS": "10.0.0.0/8",
        "SCHEDULER_ALTCHA": "on",
        "SCHEDULER_MIN_FILL_SECONDS": "0",
    }).protection
    assert [limit.name for limit in protection.limits_of("book")] == ["book-hour"]
    assert protection.shared and protection.prefix == "acme"
    assert protection.exempt == ()
    assert protection.forwarded_allow_ips == "10.0.0.0/8"
    assert protection.altcha and protection.min_fill_seconds == 0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SCHEDULER_RATE_LIMIT_BOOK_PER_MINUTE", "-1", "must be a whole number from 0"),
    ("SCHEDULER_RATE_LIMIT_STORAGE", "memcached://x", "must be memory:// "),
    ("SCHEDULER_RATE_LIMIT_EXEMPT", "localhost", "comma-separated addresses or networks"),
    ("SCHEDULER_FORWARDED_ALLOW_IPS", "nginx", "comma-separated addresses or networks"),
    ("SCHEDULER_RATE_LIMIT_PREFIX", "a b", "must be 1-64 letters"),
    ("SCHEDULER_HONEYPOT", "yes", "must be on or off"),
    ("SCHEDULER_MIN_FILL_SECONDS", "-2", "from 0"),
    ("SCHEDULER_FORM_SECRET", "short", "at least 32"),
    ("SCHEDULER_TURNSTILE_VERIFY_URL", "ftp://x", "http(s) URL"),
])
def test_a_bad_value_names_its_variable(name, value, message):
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: value})
    assert message in str(caught.value)


def _scope(host: str | None) -> dict:
    return {"type": "http", "client": (host, 5000) if host else None}


def test_clients_are_keyed_by_address_ipv6_by_slash_64_and_loopback_is_exempt():
    exempt = Settings.from_env({}).protection.exempt
    assert client_key(_scope("203.0.113.5"), exempt) == "203.0.113.5"
    assert client_key(_scope("2001:db8:1:2:aaaa::1"), exempt) == "2001:db8:1:2::/64"
    assert client_key(_scope("2001:db8:1:2:bbbb::9"), exempt) == "2001:db8:1:2::/64"
    assert client_key(_scope("2001:db8:1:3::1"), exempt) == "2001:db8:1:3::/64"
    assert client_key(_scope("::ffff:203.0.113.5"), exempt) == "203.0.113.5"
    for exempted in ("127.0.0.1", "127.3.2.1", "::1", "testclient", None):
        assert client_key(_scope(exempted), exempt) is None
    assert client_key(_scope("127.0.0.1"), ()) == "127.0.0.1"
    assert address_key(ipaddress.ip_address("::1")) == "::/64"


def test_emails_are_normalised_and_hashed():
    key = email_key("Jane+news@Example.COM ")
    assert key == email_key("jane@example.com") != email_key("john@example.com")
    assert "jane" not in key and "example" not in key and len(key) == 32


def test_the_form_token_is_signed_and_timed():
    clock = FormClock("s" * 32, 2.0)
    token = clock.issue(now=1000.0)
    assert clock.check(token, now=1002.5) is True
    with pytest.raises(FormRefused, match="too quickly"):
        clock.check(token, now=1001.0)
    # Not ours: taken as no token (never refused: a bot could leave it out anyway).
    assert FormClock("t" * 32, 2.0).check(token, now=1001.0) is False  # another secret
    for damaged in ("", "abc", "1000000.", token.replace(".", ".0", 1)):
        assert clock.check(damaged, now=1001.0) is False


@pytest.mark.parametrize(("window", "remaining", "reset"), [
    ((0, 0.0, 3, 100.0), 7, 40),  # room left: t is the end of this window
    # Full (rounded up, with a 50 ms margin): one more when this window ends,
    ((0, 0.0, 10, 100.0), 0, 41),
    # or once the previous window's 10 weigh less than 6 (in 24 s),
    ((10, 60.0, 4, 90.0), 0, 25),
    # or, over in both, 40 s into the next window (12 of it weigh less than 10).
    ((12, 30.0, 12, 90.0), 0, 41),
])
def test_the_reset_is_when_one_more_request_passes(window, remaining, reset):
    count = _count(Limit("x", 10, 60), True, *window)
    assert (count.remaining, count.reset) == (remaining, reset)


def test_retry_after_is_honest_for_the_limiter_itself():
    """Hit a small limit until refused; once its Retry-After has passed, one passes."""
    async def scenario():
        counters = Counters("memory://", "x")
        limit = (Limit("tiny", 2, 2),)
        answers = [await counters.hit(limit, "k") for _ in range(3)]
        assert [a[0].allowed for a in answers] == [True, True, False]
        await asyncio.sleep(answers[-1][0].reset)
        return (await counters.hit(limit, "k"))[0].allowed

    assert run_coroutine(scenario()) is True


def test_header_fields_and_routes():
    counts = [_count(Limit("book-minute", 10, 60), False, 0, 0.0, 10, 90.0)]
    headers = limit_headers(counts)
    assert headers == {"RateLimit-Policy": '"book-minute";q=10;w=60',
                       "RateLimit": '"book-minute";r=0;t=31', "Retry-After": "31",
                       "Cache-Control": "no-store"}
    assert route_group("POST", "/book") == "book"
    assert route_group("DELETE", "/holds/3") == "holds"
    assert route_group("POST", "/bookings/ABC/reschedule") == "token"
    assert route_group("GET", "/availability/stream") == "availability"
    for method, path in (("GET", "/health"), ("GET", "/ready"), ("GET", "/admin/bookings"),
                         ("GET", "/manage/ABC"), ("POST", "/bookings/ABC/other")):
        assert route_group(method, path) is None


def test_disposable_domains_and_their_subdomains():
    assert disposable_domain("x@mailinator.com") == "mailinator.com"
    assert disposable_domain("x@a.b.mailinator.com") == "mailinator.com"
    assert disposable_domain("x@example.com") is None


def test_a_spent_challenge_stays_spent_for_its_whole_validity():
    """Not a sliding window (which would let a replay through at the next window's
    start): a counter that expires ``seconds`` after the first use."""
    async def scenario():
        counters = Counters("memory://", "x")
        uses = [await counters.use_once("sig", 1) for _ in range(3)]
        other = await counters.use_once("other", 1)
        await asyncio.sleep(1.2)
        return uses, other, await counters.use_once("sig", 1)

    assert run_coroutine(scenario()) == ([True, False, False], True, True)
