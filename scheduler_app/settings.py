"""Configuration, read once from environment variables and validated up front.

Every problem is reported as a ``ConfigError`` whose message names the
variable and what it accepts, so a bad value stops startup with one line.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping
from datetime import time
from functools import cached_property
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from .errors import ConfigError
from .protect.settings import ProtectionSettings, protection_settings

DEFAULT_DATABASE_URL = "sqlite:///scheduler.db"
DEFAULT_SEEDER = "next-business-day"

# Bounds shared by the environment and the command line's flags.
PORTS = (1, 65535)
WORKERS = (1, 64)
SEED_DAYS = (1, 366)
HOLD_SECONDS = (30, 1800)

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "UTC"
    holidays: str = "US"
    day_start: time = time(9, 0)
    day_end: time = time(17, 0)
    slot_minutes: int = 30
    seeder: str = DEFAULT_SEEDER
    seed_days: int = 1
    cors_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None  # None: chosen from the machine's cores
    log_format: str = "text"
    db_wait_seconds: int = 30
    max_body_bytes: int = 16_384
    public_url: str | None = None  # None: each request's own scheme and host
    hold_seconds: int = 300
    max_upcoming_per_email: int = 0  # 0: no limit
    min_notice_minutes: int = 0
    max_bookings_per_day: int = 0  # 0: no cap
    # The rep's side (scheduler_app/admin.py): None, every /admin path answers 404.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    # Live availability (scheduler_app/live): open streams one worker serves.
    stream_max_subscribers: int = 1000
    # Notifications (scheduler_app/notify): each destination off until configured.
    smtp_url: str | None = dataclasses.field(default=None, repr=False)  # None: no email
    mail_from: str | None = None
    rep_email: str | None = None  # None: no rep notices; the organiser is mail_from
    meeting_title: str = "Meeting"
    webhook_url: str | None = None
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    # None: GET /calendar/{secret}.ics answers 404
    calendar_secret: str | None = dataclasses.field(default=None, repr=False)
    relay_in_serve: bool = True  # each `serve` worker runs a relay thread
    relay_poll_seconds: float = 1.0
    relay_lease_seconds: float = 120.0
    relay_retry_scale: float = 1.0  # multiplies the retry schedule (tests, demos)
    # Rate limits, bot traps, challenges (scheduler_app/protect).
    protection: ProtectionSettings = dataclasses.field(default_factory=ProtectionSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); raise ``ConfigError``."""
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(name, default).strip()

        settings = cls(
            database_url=_database_url(get("DATABASE_URL", DEFAULT_DATABASE_URL)),
            timezone=_timezone(get("SCHEDULER_TIMEZONE", "UTC")),
            holidays=_holidays(get("SCHEDULER_HOLIDAYS", "US")),
            day_start=_clock_time("SCHEDULER_DAY_START", get("SCHEDULER_DAY_START", "09:00")),
            day_end=_clock_time("SCHEDULER_DAY_END", get("SCHEDULER_DAY_END", "17:00")),
            slot_minutes=_int_in_range(
                "SCHEDULER_SLOT_MINUTES", get("SCHEDULER_SLOT_MINUTES", "30"), 5, 480
            ),
            seeder=get("SCHEDULER_SEEDER", DEFAULT_SEEDER) or DEFAULT_SEEDER,
            seed_days=_int_in_range(
                "SCHEDULER_SEED_DAYS", get("SCHEDULER_SEED_DAYS", "1"), *SEED_DAYS
            ),
            cors_origins=_origins(get("SCHEDULER_CORS_ORIGINS", "")),
            host=get("SCHEDULER_HOST", "127.0.0.1") or "127.0.0.1",
            port=_int_in_range("SCHEDULER_PORT", get("SCHEDULER_PORT", "8000"), *PORTS),
            workers=(
                _int_in_range("SCHEDULER_WORKERS", workers, *WORKERS)
                if (workers := get("SCHEDULER_WORKERS", ""))
                else None
            ),
            log_format=_choice("SCHEDULER_LOG_FORMAT", get("SCHEDULER_LOG_FORMAT", "text"),
                               ("text", "json")),
            db_wait_seconds=_int_in_range(
                "SCHEDULER_DB_WAIT_SECONDS", get("SCHEDULER_DB_WAIT_SECONDS", "30"), 0, 3600
            ),
            max_body_bytes=_int_in_range(
                "SCHEDULER_MAX_BODY_BYTES", get("SCHEDULER_MAX_BODY_BYTES", "16384"), 256, 1 << 20
            ),
            public_url=_public_url(get("SCHEDULER_PUBLIC_URL", "")),
            hold_seconds=_int_in_range(
                "SCHEDULER_HOLD_SECONDS", get("SCHEDULER_HOLD_SECONDS", "300"), *HOLD_SECONDS
            ),
            max_upcoming_per_email=_int_in_range(
                "SCHEDULER_MAX_UPCOMING_PER_EMAIL", get("SCHEDULER_MAX_UPCOMING_PER_EMAIL", "0"),
                0, 1000,
            ),
            min_notice_minutes=_int_in_range(
                "SCHEDULER_MIN_NOTICE_MINUTES", get("SCHEDULER_MIN_NOTICE_MINUTES", "0"),
                0, 60 * 24 * 90,
            ),
            max_bookings_per_day=_int_in_range(
                "SCHEDULER_MAX_BOOKINGS_PER_DAY", get("SCHEDULER_MAX_BOOKINGS_PER_DAY", "0"),
                0, 1000,
            ),
            admin_token=_admin_token(get("SCHEDULER_ADMIN_TOKEN", "")),
            stream_max_subscribers=_int_in_range(
                "SCHEDULER_STREAM_MAX_SUBSCRIBERS", get("SCHEDULER_STREAM_MAX_SUBSCRIBERS", "1000"),
                1, 100_000,
            ),
            **_notification_settings(get),
            protection=protection_settings(get),
        )
        if settings.day_start >= settings.day_end:
            raise ConfigError(
                f"SCHEDULER_DAY_START ({settings.day_start:%H:%M}) must be earlier than "
                f"SCHEDULER_DAY_END ({settings.day_end:%H:%M})"
            )
        return settings

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def holiday_country(self) -> str | None:
        return self.holidays.split("-", 1)[0] if self.holidays else None

    @property
    def holiday_subdivision(self) -> str | None:
        parts = self.holidays.split("-", 1)
        return parts[1] if len(parts) == 2 else None


def _database_url(value: str) -> str:
    scheme = value.partition("://")[0]
    if scheme not in {"sqlite", "postgres", "postgresql"}:
        raise ConfigError(
            f"DATABASE_URL must start with sqlite:/// or postgresql:// (got scheme {scheme!r})"
        )
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"SCHEDULER_TIMEZONE must be an IANA time zone such as UTC or America/New_York "
            f"(got {value!r})"
        ) from None
    return value


def _holidays(value: str) -> str:
    """Accept '' (no holidays), a country code ('US') or country-subdivision ('US-CA')."""
    if not value:
        return ""
    country, _, subdiv = value.partition("-")
    supported = holidays.list_supported_countries()
    if country.upper() not in supported:
        raise ConfigError(
            f"SCHEDULER_HOLIDAYS must be empty, a country code such as US, or country-subdivision "
            f"such as US-CA (unknown country {country!r})"
        )
    country = country.upper()
    if subdiv:
        known = {s.upper(): s for s in supported[country]}
        if subdiv.upper() not in known:
            raise ConfigError(
                f"SCHEDULER_HOLIDAYS: {country} has no subdivision {subdiv!r} "
                f"(known: {', '.join(sorted(supported[country]))})"
            )
        return f"{country}-{known[subdiv.upper()]}"
    return country


def _public_url(value: str) -> str | None:
    """SCHEDULER_PUBLIC_URL: where leads reach the service (its manage links), or None."""
    if not value:
        return None
    url = value.rstrip("/")
    if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url):
        raise ConfigError(
            "SCHEDULER_PUBLIC_URL must be an http(s) URL such as https://book.example.com "
            f"(got {value!r})"
        )
    return url


_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


def _origins(value: str) -> tuple[str, ...]:
    """A comma-separated list of origins (scheme://host[:port]) or '*'."""
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ConfigError(
                "SCHEDULER_CORS_ORIGINS must be comma-separated origins such as "
                f"https://www.example.com, or * (got {origin!r})"
            )
    return origins


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value.lower()


def _clock_time(name: str, value: str) -> time:
    match = _TIME.match(value)
    if not match:
        raise ConfigError(f"{name} must be a time of day as HH:MM, e.g. 09:00 (got {value!r})")
    return time(int(match[1]), int(match[2]))


def whole_number(value: str, low: int, high: int | None = None) -> int:
    """``value`` as a whole number from ``low`` to ``high`` (None: no upper bound).

    Raises ``ValueError`` saying what is expected; the environment and the
    command line both parse numbers with it.
    """
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        span = f"of at least {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"must be a whole number {span} (got {value!r})")
    return number


def _int_in_range(name: str, value: str, low: int, high: int) -> int:
    try:
        return whole_number(value, low, high)
    except ValueError as exc:
        raise ConfigError(f"{name} {exc}") from None


ADMIN_TOKEN_MIN_CHARS = 32


def _admin_token(value: str) -> str | None:
    """SCHEDULER_ADMIN_TOKEN: the rep's Bearer token, or None (no /admin at all)."""
    if not value:
        return None
    if len(value) < ADMIN_TOKEN_MIN_CHARS or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise ConfigError(
            f"SCHEDULER_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_CHARS} printable "
            "characters without spaces, e.g. $(openssl rand -hex 32) (the value given is "
            "not; it is not shown)"
        )
    return value


# -- notifications -------------------------------------------------------------

_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_MIN_BYTES = 24
CALENDAR_SECRET_MIN_CHARS = 32


def _notification_settings(read) -> dict:
    """The SCHEDULER_SMTP_*/MAIL_*/WEBHOOK_*/CALENDAR_*/RELAY_* settings, checked together.
    An empty value is the default, as in deploy/env.example."""

    def get(name: str, default: str) -> str:
        return read(name, default) or default

    smtp_url = _smtp_url(get("SCHEDULER_SMTP_URL", ""))
    mail_from = _address("SCHEDULER_MAIL_FROM", get("SCHEDULER_MAIL_FROM", ""))
    if smtp_url and not mail_from:
        raise ConfigError("SCHEDULER_MAIL_FROM is required with SCHEDULER_SMTP_URL "
                          "(the sender address, e.g. bookings@example.com)")
    webhook_url = _http_url("SCHEDULER_WEBHOOK_URL", get("SCHEDULER_WEBHOOK_URL", ""))
    webhook_secret = _webhook_secret(get("SCHEDULER_WEBHOOK_SECRET", ""))
    if webhook_url and not webhook_secret:
        raise ConfigError("SCHEDULER_WEBHOOK_SECRET is required with SCHEDULER_WEBHOOK_URL "
                          "(whsec_ followed by at least 24 bytes in base64)")
    title = get("SCHEDULER_MEETING_TITLE", "") or "Meeting"
    if len(title) > 200 or any(ord(c) < 32 for c in title):
        raise ConfigError("SCHEDULER_MEETING_TITLE must be one line of at most 200 characters")
    return {
        "smtp_url": smtp_url,
        "mail_from": mail_from,
        "rep_email": _address("SCHEDULER_REP_EMAIL", get("SCHEDULER_REP_EMAIL", "")),
        "meeting_title": title,
        "webhook_url": webhook_url,
        "webhook_secret": webhook_secret,
        "calendar_secret": _calendar_secret(get("SCHEDULER_CALENDAR_SECRET", "")),
        "relay_in_serve": _choice("SCHEDULER_RELAY", get("SCHEDULER_RELAY", "on"),
                                  ("on", "off")) == "on",
        "relay_poll_seconds": _number_in_range(
            "SCHEDULER_RELAY_POLL_SECONDS", get("SCHEDULER_RELAY_POLL_SECONDS", "1"), 0.05, 60),
        "relay_lease_seconds": _number_in_range(
            "SCHEDULER_RELAY_LEASE_SECONDS", get("SCHEDULER_RELAY_LEASE_SECONDS", "120"), 1, 3600),
        "relay_retry_scale": _number_in_range(
            "SCHEDULER_RELAY_RETRY_SCALE", get("SCHEDULER_RELAY_RETRY_SCALE", "1"), 0.0001, 100),
    }


def _smtp_url(value: str) -> str | None:
    """SCHEDULER_SMTP_URL: smtp://[user:pass@]host[:port][?starttls=0] or smtps://..."""
    if not value:
        return None
    problem = None
    try:
        parts = urlsplit(value)
        port = parts.port
        query = parse_qs(parts.query, keep_blank_values=True)
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("smtp", "smtps"):
            problem = f"scheme {parts.scheme!r}"
        elif not parts.hostname:
            problem = "no host"
        elif parts.path not in ("", "/") or parts.fragment:
            problem = "a path or fragment"
        elif set(query) - {"starttls"} or query.get("starttls", ["1"]) not in (["0"], ["1"]):
            problem = "a query other than ?starttls=0"
        elif parts.scheme == "smtps" and query.get("starttls") == ["0"]:
            problem = "smtps:// with starttls=0 (smtps is TLS from the start)"
        elif port == 0:
            problem = "port 0"
    if problem:
        raise ConfigError(
            "SCHEDULER_SMTP_URL must be smtp://user:pass@host:587 (STARTTLS), "
            f"smtps://user:pass@host:465, or smtp://host:25?starttls=0 for a local relay "
            f"(got {problem})"
        )
    return value


def _address(name: str, value: str) -> str | None:
    if not value:
        return None
    if not _ADDRESS.match(value) or len(value) > 254:
        raise ConfigError(f"{name} must be an email address such as bookings@example.com "
                          f"(got {value!r})")
    return value


def _http_url(name: str, value: str) -> str | None:
    if not value:
        return None
    if not re.match(r"^https?://[^/\s?#]+(/[^\s#]*)?$", value):
        raise ConfigError(f"{name} must be an http(s) URL such as https://crm.example.com/hooks "
                          "(got a value that is not)")  # it may hold a secret: not echoed
    return value


def _webhook_secret(value: str) -> str | None:
    """``whsec_`` + base64 of at least 24 bytes (Standard Webhooks)."""
    if not value:
        return None
    key = value[len(WEBHOOK_SECRET_PREFIX):] if value.startswith(WEBHOOK_SECRET_PREFIX) else None
    try:
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True) if key else b""
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) < WEBHOOK_SECRET_MIN_BYTES:
        raise ConfigError(
            f"SCHEDULER_WEBHOOK_SECRET must be {WEBHOOK_SECRET_PREFIX} followed by the base64 "
            f"of at least {WEBHOOK_SECRET_MIN_BYTES} random bytes, e.g. "
            "whsec_$(openssl rand -base64 32) (the value given is not; it is not shown)"
        )
    return value


def _calendar_secret(value: str) -> str | None:
    if not value:
        return None
    if len(value) < CALENDAR_SECRET_MIN_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ConfigError(
            f"SCHEDULER_CALENDAR_SECRET must be at least {CALENDAR_SECRET_MIN_CHARS} letters, "
            "digits, _ or -, e.g. $(openssl rand -hex 32) (the value given is not; "
            "it is not shown)"
        )
    return value


def _number_in_range(name: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"{name} must be a number from {low:g} to {high:g} (got {value!r})")
    return number
