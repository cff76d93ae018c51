"""The SCHEDULER_RATE_LIMIT_*, forwarded-address and bot-trap settings, read together.

``protection_settings(get)`` is called from ``Settings.from_env`` with its
reader; every problem is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable

from ..errors import ConfigError
from ..values import env_number, printable_secret

log = logging.getLogger("scheduler_app.protect")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MINUTE, HOUR, DAY = 60, 3600, 86400
PERIODS = {"MINUTE": MINUTE, "HOUR": HOUR, "DAY": DAY}

# (what, per): default. SCHEDULER_RATE_LIMIT_<WHAT>_PER_<PER>; 0 turns one off.
LIMITS = {
    ("BOOK", "MINUTE"): 10,  # POST /book, per client address
    ("BOOK", "HOUR"): 60,
    ("EMAIL", "DAY"): 10,  # POST /book and reschedule, per lead email
    ("HOLDS", "MINUTE"): 30,  # POST /holds, DELETE /holds/{id}
    ("HOLDS", "HOUR"): 300,
    ("TOKEN", "MINUTE"): 30,  # GET /bookings/{ref}, its cancel and reschedule
    ("TOKEN", "HOUR"): 300,
    ("AVAILABILITY", "MINUTE"): 600,  # GET /availability, its stream, GET /form
}

DEFAULT_EXEMPT = "127.0.0.0/8,::1"
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"
TURNSTILE_VERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
FORM_SECRET_MIN_CHARS = 32


@dataclasses.dataclass(frozen=True)
class Limit:
    """``amount`` requests per ``seconds`` for the counter ``name`` (e.g. ``book-minute``)."""

    name: str
    amount: int
    seconds: int


@dataclasses.dataclass(frozen=True)
class ProtectionSettings:
    storage: str = "memory://"  # or redis://host:6379/0, shared by every worker and server
    prefix: str = "scheduler"
    exempt: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                     ipaddress.ip_network("::1/128"))
    forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS
    limits: tuple[Limit, ...] = tuple(
        Limit(f"{what.lower()}-{per.lower()}", amount, PERIODS[per])
        for (what, per), amount in LIMITS.items())
    honeypot: bool = True
    min_fill_seconds: float = 2.0  # 0: no time trap
    form_secret: str | None = dataclasses.field(default=None, repr=False)
    altcha: bool = False
    altcha_max_number: int = 50_000
    turnstile_secret: str | None = dataclasses.field(default=None, repr=False)
    turnstile_site_key: str | None = None
    turnstile_verify_url: str = TURNSTILE_VERIFY_URL
    refuse_disposable_email: bool = False

    def limits_of(self, what: str) -> tuple[Limit, ...]:
        """The limits on, for ``what`` (``book``, ``email``, ...), shortest window first."""
        return tuple(limit for limit in self.limits
                     if limit.name.startswith(what + "-") and limit.amount > 0)

    @property
    def shared(self) -> bool:
        return not self.storage.startswith("memory://")


def protection_settings(read: Callable[[str, str], str]) -> ProtectionSettings:
    """The settings from ``read(name, default)`` (stripped values); '' is the default."""

    def get(name: str, default: str) -> str:
        return read(name, default) or default

    limits = tuple(
        Limit(f"{what.lower()}-{per.lower()}",
              env_number(name, get(name, str(default)), 0, 1_000_000), PERIODS[per])
        for (what, per), default in LIMITS.items()
        for name in [f"SCHEDULER_RATE_LIMIT_{what}_PER_{per}"]
    )
    # Seconds; 0: no time trap.
    min_fill_seconds = env_number("SCHEDULER_MIN_FILL_SECONDS",
                                  get("SCHEDULER_MIN_FILL_SECONDS", "2"), 0, 60, whole=False)
    turnstile_secret = read("SCHEDULER_TURNSTILE_SECRET", "") or None
    return ProtectionSettings(
        storage=_storage(get("SCHEDULER_RATE_LIMIT_STORAGE", "memory://")),
        prefix=_prefix(get("SCHEDULER_RATE_LIMIT_PREFIX", "scheduler")),
        # An empty value means "no exemption": read without the default.
        exempt=_networks("SCHEDULER_RATE_LIMIT_EXEMPT",
                         read("SCHEDULER_RATE_LIMIT_EXEMPT", DEFAULT_EXEMPT)),
        forwarded_allow_ips=_allow_ips(get("SCHEDULER_FORWARDED_ALLOW_IPS",
                                           DEFAULT_FORWARDED_ALLOW_IPS)),
        limits=limits,
        honeypot=_on_off("SCHEDULER_HONEYPOT", get("SCHEDULER_HONEYPOT", "on")),
        min_fill_seconds=min_fill_seconds,
        form_secret=_form_secret(read("SCHEDULER_FORM_SECRET", "")),
        altcha=_on_off("SCHEDULER_ALTCHA", get("SCHEDULER_ALTCHA", "off")),
        altcha_max_number=env_number("SCHEDULER_ALTCHA_MAX_NUMBER",
                                 get("SCHEDULER_ALTCHA_MAX_NUMBER", "50000"), 1000, 10_000_000),
        turnstile_secret=turnstile_secret,
        turnstile_site_key=read("SCHEDULER_TURNSTILE_SITE_KEY", "") or None,
        turnstile_verify_url=_url("SCHEDULER_TURNSTILE_VERIFY_URL",
                                  get("SCHEDULER_TURNSTILE_VERIFY_URL", TURNSTILE_VERIFY_URL)),
        refuse_disposable_email=_on_off("SCHEDULER_REFUSE_DISPOSABLE_EMAIL",
                                        get("SCHEDULER_REFUSE_DISPOSABLE_EMAIL", "off")),
    )


def log_configuration(settings: ProtectionSettings, workers: int) -> None:
    """Once, at `serve` (which imports no web framework): what several processes
    counting alone means; and a form secret shared by this server's workers when
    none is set (they inherit the environment)."""
    if not settings.shared and workers > 1:
        log.warning("Rate limits are counted in memory by each of the %d workers alone "
                    "(each allows the full limit); set SCHEDULER_RATE_LIMIT_STORAGE to a "
                    "Redis URL to share the counts", workers)
    if settings.form_secret is None:
        os.environ["SCHEDULER_FORM_SECRET"] = secrets.token_hex(32)


def _on_off(name: str, value: str) -> bool:
    if value.lower() not in ("on", "off"):
        raise ConfigError(f"{name} must be on or off (got {value!r})")
    return value.lower() == "on"


def _storage(value: str) -> str:
    scheme = value.partition("://")[0].lower()
    if value == "memory://" or scheme in ("redis", "rediss", "redis+unix"):
        return value
    raise ConfigError("SCHEDULER_RATE_LIMIT_STORAGE must be memory:// (each process counts "
                      "alone) or a Redis URL such as redis://127.0.0.1:6379/0 "
                      f"(got scheme {scheme!r})")  # the URL may hold a password: not echoed


def _prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError("SCHEDULER_RATE_LIMIT_PREFIX must be 1-64 letters, digits, "
                          f"'_', '.', ':' or '-' (got {value!r})")
    return value


def _networks(name: str, value: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated addresses or networks such as "
                              f"127.0.0.0/8,::1, or empty (got {part!r})") from None
    return tuple(networks)


def _allow_ips(value: str) -> str:
    if value.strip() != "*":
        _networks("SCHEDULER_FORWARDED_ALLOW_IPS", value)
    return value


def _form_secret(value: str) -> str | None:
    return printable_secret("SCHEDULER_FORM_SECRET", value, FORM_SECRET_MIN_CHARS)


def _url(name: str, value: str) -> str:
    if not re.match(r"^https?://[^/\s?#]+(/[^\s#]*)?$", value):
        raise ConfigError(f"{name} must be an http(s) URL (got {value!r})")
    return value
