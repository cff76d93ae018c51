"""Configuration, read once from environment variables and validated up front.

Every problem is reported as a ``ConfigError`` whose message names the
variable and what it accepts, so a bad value stops startup with one line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from datetime import time
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from holidays.registry import EntityLoader

from .errors import ConfigError
from .notify.settings import notification_settings
from .protect.settings import ProtectionSettings, protection_settings
from .values import choice, env_number, printable_secret

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
            slot_minutes=env_number(
                "SCHEDULER_SLOT_MINUTES", get("SCHEDULER_SLOT_MINUTES", "30"), 5, 480
            ),
            seeder=get("SCHEDULER_SEEDER", DEFAULT_SEEDER) or DEFAULT_SEEDER,
            seed_days=env_number(
                "SCHEDULER_SEED_DAYS", get("SCHEDULER_SEED_DAYS", "1"), *SEED_DAYS
            ),
            cors_origins=_origins(get("SCHEDULER_CORS_ORIGINS", "")),
            host=get("SCHEDULER_HOST", "127.0.0.1") or "127.0.0.1",
            port=env_number("SCHEDULER_PORT", get("SCHEDULER_PORT", "8000"), *PORTS),
            workers=(
                env_number("SCHEDULER_WORKERS", workers, *WORKERS)
                if (workers := get("SCHEDULER_WORKERS", ""))
                else None
            ),
            log_format=choice("SCHEDULER_LOG_FORMAT", get("SCHEDULER_LOG_FORMAT", "text"),
                               ("text", "json")),
            db_wait_seconds=env_number(
                "SCHEDULER_DB_WAIT_SECONDS", get("SCHEDULER_DB_WAIT_SECONDS", "30"), 0, 3600
            ),
            max_body_bytes=env_number(
                "SCHEDULER_MAX_BODY_BYTES", get("SCHEDULER_MAX_BODY_BYTES", "16384"), 256, 1 << 20
            ),
            public_url=_public_url(get("SCHEDULER_PUBLIC_URL", "")),
            hold_seconds=env_number(
                "SCHEDULER_HOLD_SECONDS", get("SCHEDULER_HOLD_SECONDS", "300"), *HOLD_SECONDS
            ),
            max_upcoming_per_email=env_number(
                "SCHEDULER_MAX_UPCOMING_PER_EMAIL", get("SCHEDULER_MAX_UPCOMING_PER_EMAIL", "0"),
                0, 1000,
            ),
            min_notice_minutes=env_number(
                "SCHEDULER_MIN_NOTICE_MINUTES", get("SCHEDULER_MIN_NOTICE_MINUTES", "0"),
                0, 60 * 24 * 90,
            ),
            max_bookings_per_day=env_number(
                "SCHEDULER_MAX_BOOKINGS_PER_DAY", get("SCHEDULER_MAX_BOOKINGS_PER_DAY", "0"),
                0, 1000,
            ),
            admin_token=_admin_token(get("SCHEDULER_ADMIN_TOKEN", "")),
            stream_max_subscribers=env_number(
                "SCHEDULER_STREAM_MAX_SUBSCRIBERS", get("SCHEDULER_STREAM_MAX_SUBSCRIBERS", "1000"),
                1, 100_000,
            ),
            **notification_settings(get),
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
    # The registry's codes only: holidays.list_supported_countries() would import
    # every country's module (about 7 MB resident in each worker) to list them.
    supported = set(EntityLoader.get_country_codes())
    if country.upper() not in supported:
        raise ConfigError(
            f"SCHEDULER_HOLIDAYS must be empty, a country code such as US, or country-subdivision "
            f"such as US-CA (unknown country {country!r})"
        )
    country = country.upper()
    if subdiv:
        subdivisions = getattr(holidays, country).subdivisions  # this country's module only
        known = {s.upper(): s for s in subdivisions}
        if subdiv.upper() not in known:
            raise ConfigError(
                f"SCHEDULER_HOLIDAYS: {country} has no subdivision {subdiv!r} "
                f"(known: {', '.join(sorted(subdivisions))})"
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


def _clock_time(name: str, value: str) -> time:
    match = _TIME.match(value)
    if not match:
        raise ConfigError(f"{name} must be a time of day as HH:MM, e.g. 09:00 (got {value!r})")
    return time(int(match[1]), int(match[2]))


ADMIN_TOKEN_MIN_CHARS = 32


def _admin_token(value: str) -> str | None:
    """SCHEDULER_ADMIN_TOKEN: the rep's Bearer token, or None (no /admin at all)."""
    return printable_secret("SCHEDULER_ADMIN_TOKEN", value, ADMIN_TOKEN_MIN_CHARS)
