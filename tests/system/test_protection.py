"""Rate limits over HTTP against real servers: shared through Redis by two servers
of two workers each, the 429's contract, who is counted, a Redis outage, the
per-email cap. Visitors come through the trusted proxy (loopback, sending
X-Forwarded-For), as nginx forwards them; loopback itself is exempt by default.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from protection import PrivateRedis, redis_prefix, sf_list, statuses, visit  # noqa: F401
from support import exchange

NO_LIMITS = {f"SCHEDULER_RATE_LIMIT_{name}": "0" for name in (
    "BOOK_PER_MINUTE", "BOOK_PER_HOUR", "EMAIL_PER_DAY", "HOLDS_PER_MINUTE", "HOLDS_PER_HOUR",
    "TOKEN_PER_MINUTE", "TOKEN_PER_HOUR", "AVAILABILITY_PER_MINUTE")}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_an_ordinary_lead_never_meets_the_defaults(servers, database_url, redis_prefix):
    """Default limits, Redis storage, a lead behind the proxy: the availability polls
    of two minutes of the widget at its fastest (every 2 s; sent here at once, which
    only makes them count more per window), a stream, hold, book, details,
    reschedule and cancel: all 2xx, with quota left."""
    url, prefix = redis_prefix
    server = servers(database_url, env={"SCHEDULER_RATE_LIMIT_STORAGE": url,
                                        "SCHEDULER_RATE_LIMIT_PREFIX": prefix}).wait_ready()
    lead = "198.51.100.23"
    polls = [visit(server.port, "GET", "/availability", lead) for _ in range(60)]
    assert set(statuses(polls)) == {200}
    status, headers, slots = polls[-1]
    assert sf_list(headers["ratelimit"])["availability-minute"]["r"] > 0
    assert sf_list(headers["ratelimit-policy"]) == {"availability-minute": {"q": 600, "w": 60}}
    first, second = slots[0]["id"], slots[1]["id"]

    status, _, form = visit(server.port, "GET", "/form", lead)
    assert status == 200 and form["honeypot"] == "website" and form["altcha"] is False
    status, _, hold = visit(server.port, "POST", "/holds", lead, {"slot_id": first})
    assert status == 201, hold
    time.sleep(form["min_fill_seconds"])  # a person fills the form in
    status, headers, booked = visit(server.port, "POST", "/book", lead, {
        "slot_id": first, "email": "lead@example.com", "hold_token": hold["hold_token"],
        "website": "", "form_token": form["form_token"]})
    assert status == 200, booked
    assert sf_list(headers["ratelimit"])["book-minute"]["r"] == 9
    reference, token = booked["booking"]["reference"], booked["booking"]["token"]
    answers = [
        visit(server.port, "GET", f"/bookings/{reference}", lead, headers=bearer(token)),
        visit(server.port, "POST", f"/bookings/{reference}/reschedule", lead,
              {"slot_id": second}, bearer(token)),
        visit(server.port, "POST", f"/bookings/{reference}/cancel", lead, {}, bearer(token)),
    ]
    assert statuses(answers) == [200, 200, 200], answers
    assert answers[-1][2]["status"] == "cancelled"
    assert all(sf_list(h["ratelimit"])["token-minute"]["r"] > 0 for _, h, _ in answers)


def _cluster(servers, database_url, env):
    started = [servers(database_url, workers=2, env=env) for _ in range(2)]
    return [server.wait_ready() for server in started]


def test_two_servers_of_two_workers_share_the_counts_in_redis(servers, tmp_path, redis_prefix):
    url, prefix = redis_prefix
    env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_STORAGE": url, "SCHEDULER_RATE_LIMIT_PREFIX": prefix,
           "SCHEDULER_RATE_LIMIT_BOOK_PER_MINUTE": "5",
           "SCHEDULER_RATE_LIMIT_HOLDS_PER_MINUTE": "10"}
    a, b = _cluster(servers, f"sqlite:///{tmp_path / 'shared.db'}", env)
    # One client, round robin over both servers (and so over their four workers).
    answers = [visit((a, b)[i % 2].port, "POST", "/book", "203.0.113.50",
                     {"slot_id": 9999, "email": "bot@example.com"}) for i in range(12)]
    assert statuses(answers).count(404) == 5  # the slot does not exist: each counted anyway
    assert statuses(answers)[5:] == [429] * 7

    # 40 at once over both servers, limit 10: exactly 10 pass.
    def hold(i: int):
        return visit((a, b)[i % 2].port, "POST", "/holds", "203.0.113.51", {"slot_id": 9999})

    with ThreadPoolExecutor(40) as pool:
        burst = statuses(pool.map(hold, range(40)))
    assert (burst.count(404), burst.count(429)) == (10, 30), burst
    keys = list(redis.Redis.from_url(url).scan_iter(match=f"{prefix}:*"))
    assert keys and all(b"203.0.113.5" in key for key in keys)


def test_with_memory_storage_each_worker_counts_alone_and_the_log_says_so(servers, tmp_path):
    env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_BOOK_PER_MINUTE": "5"}
    a, b = _cluster(servers, f"sqlite:///{tmp_path / 'alone.db'}", env)
    answers = [visit((a, b)[i % 2].port, "POST", "/book", "203.0.113.52",
                     {"slot_id": 9999, "email": "bot@example.com"}) for i in range(24)]
    assert statuses(answers).count(404) > 5  # up to 5 per process
    a.stop()
    assert "counted in memory by each of the 2 workers alone" in a.output


def test_a_refused_client_gets_the_429_contract_and_may_retry_after_it(servers, tmp_path):
    page = "https://www.example.com"
    server = servers(f"sqlite:///{tmp_path / 'x.db'}",
                     env={"SCHEDULER_CORS_ORIGINS": page}).wait_ready()  # default limits
    lead = "203.0.113.60"
    body = {"slot_id": 9999, "email": "lead@example.com"}
    origin = {"Origin": page}
    passed = [visit(server.port, "POST", "/book", lead, {**body, "email": f"{i}@example.com"},
                    origin) for i in range(10)]  # the email's own cap (10 a day) aside
    assert set(statuses(passed)) == {404}
    for remaining, (_, headers, _) in zip(range(9, -1, -1), passed):
        assert sf_list(headers["ratelimit-policy"]) == {"book-minute": {"q": 10, "w": 60},
                                                        "book-hour": {"q": 60, "w": 3600}}
        assert sf_list(headers["ratelimit"])["book-minute"]["r"] == remaining
    status, headers, refused = visit(server.port, "POST", "/book", lead, body, origin)
    assert status == 429
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 60
    assert refused == {"detail": f"Too many requests; try again in {wait} "
                                 f"second{'s' if wait != 1 else ''}."}
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    state = sf_list(headers["ratelimit"])
    assert state["book-minute"]["r"] == 0 and 1 <= state["book-minute"]["t"] <= 60
    assert headers["access-control-allow-origin"] == page
    exposed = {h.strip().lower() for h in headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "ratelimit", "ratelimit-policy"} <= exposed
    # Not sooner: still refused just before; passes after Retry-After.
    if wait > 2:
        time.sleep(wait - 2)
        assert visit(server.port, "POST", "/book", lead, body)[0] == 429
        time.sleep(2)
    else:
        time.sleep(wait)
    assert visit(server.port, "POST", "/book", lead, body)[0] == 404
    # Another address is counted apart; the machine itself (loopback) is exempt.
    assert visit(server.port, "POST", "/book", "203.0.113.61", body)[0] == 404
    status, headers, _ = exchange(server.port, "POST", "/book", body)
    assert status == 404 and "ratelimit" not in headers
    # Health, readiness and the pages are never limited.
    for path in ("/health", "/ready", "/openapi.json"):
        assert visit(server.port, "GET", path, lead)[0] == 200
    paths = visit(server.port, "GET", "/openapi.json", lead)[2]["paths"]
    assert "429" in paths["/book"]["post"]["responses"]
    assert "429" not in paths["/health"]["get"]["responses"]


def test_the_forwarded_address_counts_only_from_a_trusted_proxy(servers, tmp_path):
    env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_AVAILABILITY_PER_MINUTE": "3",
           "SCHEDULER_RATE_LIMIT_EXEMPT": "10.0.0.0/8"}  # loopback counted here
    server = servers(f"sqlite:///{tmp_path / 'x.db'}", env=env).wait_ready()
    port = server.port

    def five(visitor, source=None):
        return statuses(visit(port, "GET", "/availability", visitor, source=source)
                        for _ in range(5))

    assert five("203.0.113.5") == [200, 200, 200, 429, 429]
    assert five("203.0.113.6") == [200, 200, 200, 429, 429]  # another visitor, apart
    # The rightmost entry the trusted proxy added is the client; what the client
    # put in front of it changes nothing.
    assert five("1.1.1.1, 203.0.113.7")[:3] == [200, 200, 200]
    assert five("9.9.9.9, 203.0.113.7") == [429] * 5
    # From 127.0.0.2, not a trusted proxy: its header is not believed, it is the client.
    assert five("198.51.100.1", source="127.0.0.2") == [200, 200, 200, 429, 429]
    assert five("198.51.100.2", source="127.0.0.2") == [429] * 5
    assert five("198.51.100.1") == [200, 200, 200, 429, 429]  # through the proxy: its own


def test_loopback_is_exempt_by_default_and_counted_when_the_exemption_is_empty(servers, tmp_path):
    env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_AVAILABILITY_PER_MINUTE": "3"}
    exempt = servers(f"sqlite:///{tmp_path / 'a.db'}", env=env)
    counted = servers(f"sqlite:///{tmp_path / 'b.db'}",
                      env={**env, "SCHEDULER_RATE_LIMIT_EXEMPT": ""})
    exempt.wait_ready()
    counted.wait_ready()
    assert {exchange(exempt.port, "GET", "/availability")[0] for _ in range(6)} == {200}
    assert [exchange(counted.port, "GET", "/availability")[0] for _ in range(5)] == [
        200, 200, 200, 429, 429]


def test_a_redis_outage_falls_back_to_this_process_and_recovers(servers, tmp_path):
    private = PrivateRedis().start()
    try:
        env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_STORAGE": private.url,
               "SCHEDULER_RATE_LIMIT_PREFIX": "outage",
               "SCHEDULER_RATE_LIMIT_AVAILABILITY_PER_MINUTE": "5"}
        server = servers(f"sqlite:///{tmp_path / 'x.db'}", env=env).wait_ready()
        port = server.port
        assert statuses(visit(port, "GET", "/availability", "203.0.113.70")
                        for _ in range(2)) == [200, 200]
        assert exchange(port, "GET", "/ready")[2]["rate_limits"] == "shared"
        assert redis.Redis(port=private.port).keys("outage:*")

        private.kill()
        answers = []
        for _ in range(8):
            started = time.monotonic()
            answers.append(visit(port, "GET", "/availability", "203.0.113.71")[0])
            assert time.monotonic() - started < 1.0
        assert answers == [200] * 5 + [429] * 3  # the same limit, counted in this process
        status, _, ready = exchange(port, "GET", "/ready")
        assert (status, ready["status"], ready["rate_limits"]) == (200, "ready", "degraded")

        private.start()  # the same port, empty
        deadline = time.monotonic() + 15
        while exchange(port, "GET", "/ready")[2]["rate_limits"] != "shared":
            visit(port, "GET", "/availability", "203.0.113.72")  # lets the probe run
            assert time.monotonic() < deadline, "still degraded after Redis came back"
            time.sleep(0.2)
        _, headers, _ = visit(port, "GET", "/availability", "203.0.113.73")
        assert sf_list(headers["ratelimit"])["availability-minute"]["r"] == 4
        assert redis.Redis(port=private.port).keys("outage:*203.0.113.73*")
    finally:
        private.kill()
    server.stop()
    assert server.output.count("Rate-limit storage (Redis) unreachable") == 1
    assert server.output.count("Rate-limit storage (Redis) answers again") == 1


def test_the_eleventh_booking_of_one_email_in_a_day_is_refused_from_any_address(
        servers, database_url):
    server = servers(database_url, env={"SCHEDULER_SEED_DAYS": "2"}).wait_ready()  # defaults
    slots = exchange(server.port, "GET", "/availability")[2]
    for i in range(10):
        status, _, answer = visit(server.port, "POST", "/book", f"203.0.113.{100 + i}",
                                  {"slot_id": slots[i]["id"], "email": "Jane@Example.com"})
        assert status == 200, answer
    # Another address, the same lead (spelt otherwise): refused, nothing booked.
    status, headers, refused = visit(server.port, "POST", "/book", "198.51.100.200",
                                     {"slot_id": slots[10]["id"], "email": "jane+11@example.com"})
    assert status == 429
    assert re.fullmatch(r"Too many requests; try again in \d+ seconds?\.", refused["detail"])
    assert sf_list(headers["ratelimit-policy"])["email-day"] == {"q": 10, "w": 86400}
    assert sf_list(headers["ratelimit"])["email-day"]["r"] == 0
    assert int(headers["retry-after"]) <= 86400
    assert visit(server.port, "POST", "/book", "198.51.100.200",
                 {"slot_id": slots[10]["id"], "email": "other@example.com"})[0] == 200


def test_a_redis_that_hangs_answers_within_a_quarter_of_a_second(servers, tmp_path):
    """A Redis that accepts connections and never answers (a listening socket that
    is never read) costs each request at most the quarter-second bound, once."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    try:
        env = {**NO_LIMITS, "SCHEDULER_RATE_LIMIT_STORAGE":
               f"redis://127.0.0.1:{listener.getsockname()[1]}/0",
               "SCHEDULER_RATE_LIMIT_AVAILABILITY_PER_MINUTE": "100"}
        server = servers(f"sqlite:///{tmp_path / 'x.db'}", env=env).wait_ready()
        times = []
        for _ in range(5):
            started = time.monotonic()
            assert visit(server.port, "GET", "/availability", "203.0.113.80")[0] == 200
            times.append(time.monotonic() - started)
        assert max(times) < 1.0 and sum(times[1:]) < 1.0, times
        assert exchange(server.port, "GET", "/ready")[2]["rate_limits"] == "degraded"
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_no_email_is_stored_in_clear(servers, tmp_path, redis_prefix, storage):
    url, prefix = redis_prefix
    env = {"SCHEDULER_RATE_LIMIT_PREFIX": prefix,
           **({"SCHEDULER_RATE_LIMIT_STORAGE": url} if storage == "redis" else {})}
    server = servers(f"sqlite:///{tmp_path / 'x.db'}", env=env).wait_ready()
    visit(server.port, "POST", "/book", "203.0.113.90", {"slot_id": 1, "email": "jane@example.com"})
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if storage == "redis":
        assert keys and not any(b"jane" in key for key in keys)
        assert all(0 < client.pttl(key) <= 2 * 86400 * 1000 for key in keys)
    else:
        assert keys == []
