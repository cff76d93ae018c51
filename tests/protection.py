"""Helpers for the protection tests: Redis (the shared one, or a private one),
requests from a visitor behind the trusted proxy, the RateLimit fields."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time

import pytest
import redis
from support import exchange, free_port, unavailable

REDIS_URL = os.environ.get("SCHEDULER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def shared_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}", "the shared rate-limit tests")
    return client


@pytest.fixture
def redis_prefix():
    """``(url, prefix)``: the shared Redis and a key prefix of this test's own; its keys
    are deleted afterwards."""
    client = shared_redis()
    prefix = f"test-{secrets.token_hex(6)}"
    yield REDIS_URL, prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class PrivateRedis:
    """A ``redis-server`` of the test's own on a free port (never the shared one),
    which the test may kill and start again on the same port."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            unavailable("redis-server is not installed", "the Redis outage test")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError("the private redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def visit(port: int, method: str, path: str, visitor: str, body: object = None,
          headers: dict | None = None, source: str | None = None):
    """A request from ``visitor`` as the trusted proxy (loopback) forwards it."""
    return exchange(port, method, path, body, {"X-Forwarded-For": visitor, **(headers or {})},
                    source=source)


def statuses(answers) -> list[int]:
    return [status for status, _, _ in answers]


_ITEM = re.compile(r'^"([^"]+)"((?:;[a-z]+=\d+)+)$')


def sf_list(value: str) -> dict[str, dict[str, int]]:
    """A RateLimit or RateLimit-Policy field (a Structured Field List of strings with
    integer parameters) as ``{name: {param: value}}``; fails on any other syntax."""
    parsed = {}
    for item in value.split(", "):
        match = _ITEM.match(item)
        assert match, f"not a Structured Field item: {item!r}"
        params = dict(p.split("=") for p in match[2].lstrip(";").split(";"))
        parsed[match[1]] = {k: int(v) for k, v in params.items()}
    return parsed
