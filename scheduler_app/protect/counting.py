"""Sliding-window counters (``limits``' async API): in this process, or in Redis
shared by every worker of every server, falling back to this process while
Redis does not answer.

Redis down never refuses or stalls a request: each call to it is bounded by
``TIMEOUT`` (a quarter of a second); on the first failure the counts go on in
this process's memory (the same limits, per process), one WARNING is logged,
and a probe every ``PROBE_SECONDS`` brings the shared counts back (one more
line) as soon as Redis answers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from .settings import Limit

log = logging.getLogger("scheduler_app.protect")

TIMEOUT = 0.25
PROBE_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class Count:
    """One limit's state after a request: allowed or not, what is left, and in how
    many seconds one more request will be allowed (``reset``)."""

    limit: Limit
    allowed: bool
    remaining: int
    reset: int


def _item(limit: Limit) -> RateLimitItemPerSecond:
    return RateLimitItemPerSecond(limit.amount, limit.seconds, namespace="LIMITS")


def redis_uri(url: str) -> str:
    """``limits``' scheme for a Redis URL (``redis://`` -> ``async+redis://``)."""
    return url if url.startswith("async+") else "async+" + url


def _count(limit: Limit, allowed: bool, previous: int, previous_ttl: float, current: int,
           current_ttl: float) -> Count:
    """The state of ``limit`` from its sliding window (``limits``' counter: the previous
    window's count weighs ``previous_ttl / seconds``; the current window ends in
    ``current_ttl - seconds``). ``reset``: the seconds until one more request passes,
    rounded up, so that a client waiting that long is not refused again."""
    amount, seconds = limit.amount, limit.seconds
    weighted = previous * previous_ttl / seconds + current
    remaining = max(0, amount - math.floor(weighted))
    window_end = max(0.0, current_ttl - seconds)
    if remaining:
        return Count(limit, allowed, remaining, min(seconds, math.ceil(window_end)))
    # One more passes once the weighted count is below ``amount`` again:
    fading = previous_ttl - (amount - current) * seconds / previous if previous else 0.0
    if current < amount and fading < window_end:
        wait = max(0.0, fading)  # in this window, as the previous one weighs less
    elif current < amount:
        wait = window_end  # when this window ends
    else:
        wait = window_end + seconds * (1 - amount / current)  # in the next one
    return Count(limit, allowed, 0, min(seconds, max(1, math.ceil(wait + 0.05))))


class Counters:
    """Count hits of ``Limit``s per key, in ``storage_url`` (memory:// or Redis)."""

    def __init__(self, storage_url: str, prefix: str):
        self.url = storage_url
        self.prefix = prefix
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self.degraded = False  # Redis configured but not answering
        self._next_probe = 0.0
        self._probe: asyncio.Task | None = None

    @property
    def is_shared(self) -> bool:
        return not self.url.startswith("memory://")

    def state(self) -> str:
        """``memory``, ``shared`` (Redis) or ``degraded`` (Redis not answering)."""
        if not self.is_shared:
            return "memory"
        return "degraded" if self.degraded else "shared"

    def _shared_limiter(self) -> SlidingWindowCounterRateLimiter:
        # Made on first use, on the serving loop (redis.asyncio's connections belong to it).
        if self._shared is None:
            storage = RedisStorage(
                redis_uri(self.url), implementation="redispy", key_prefix=self.prefix,
                socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                health_check_interval=0, retry_on_timeout=False,
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        return self._shared

    async def _run(self, work):
        """``await work(limiter)`` on Redis while it answers, else in this process."""
        if self.is_shared and not self.degraded:
            try:
                return await asyncio.wait_for(work(self._shared_limiter()), TIMEOUT)
            except Exception as exc:  # timeout, connection refused, any Redis error
                self._fall_back(exc)
        elif self.degraded:
            self._maybe_probe()
        return await work(self.local)

    async def hit(self, limits: tuple[Limit, ...], key: str) -> list[Count]:
        """Count one request under ``key`` against each of ``limits``."""
        return await self._run(lambda limiter: self._hit(limiter, limits, key))

    async def use_once(self, key: str, seconds: int) -> bool:
        """True the first time ``key`` is used within ``seconds`` of its first use
        (spent challenges): a counter that expires ``seconds`` after it is made."""
        async def first(limiter: SlidingWindowCounterRateLimiter) -> bool:
            return await limiter.storage.incr(f"once/{key}", seconds) == 1

        return await self._run(first)

    @staticmethod
    async def _hit(limiter: SlidingWindowCounterRateLimiter, limits: tuple[Limit, ...],
                   key: str) -> list[Count]:
        counts = []
        for limit in limits:
            item = _item(limit)
            allowed = await limiter.hit(item, limit.name, key)
            window = await limiter.storage.get_sliding_window(
                item.key_for(limit.name, key), limit.seconds)
            counts.append(_count(limit, allowed, *window))
            if not allowed:
                break  # the tighter limit refused: the longer ones are not charged
        return counts

    def _fall_back(self, exc: BaseException) -> None:
        self.degraded = True
        self._next_probe = time.monotonic() + PROBE_SECONDS
        reason = "no answer within %.2f s" % TIMEOUT if isinstance(
            exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
        log.warning("Rate-limit storage (Redis) unreachable (%s): counting in this process "
                    "until it answers again", reason)

    def _maybe_probe(self) -> None:
        if self._probe is not None or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + PROBE_SECONDS
        self._probe = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        try:
            storage: Storage = self._shared_limiter().storage
            answered = await asyncio.wait_for(storage.check(), TIMEOUT)
        except Exception:
            answered = False
        finally:
            self._probe = None
        if answered and self.degraded:
            self.degraded = False
            log.warning("Rate-limit storage (Redis) answers again: counting shared again")
