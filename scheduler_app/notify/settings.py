"""The notification settings (SCHEDULER_SMTP_*, MAIL_*, WEBHOOK_*, CALENDAR_*,
RELAY_*), read by ``settings.Settings.from_env`` with the rest and checked together.

Every problem is a ``ConfigError`` naming the variable; a value that may hold a
secret is never echoed.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from ..values import choice, env_number


_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_MIN_BYTES = 24
CALENDAR_SECRET_MIN_CHARS = 32


def notification_settings(read) -> dict:
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
        "relay_in_serve": choice("SCHEDULER_RELAY", get("SCHEDULER_RELAY", "on"),
                                  ("on", "off")) == "on",
        "relay_poll_seconds": env_number(
            "SCHEDULER_RELAY_POLL_SECONDS", get("SCHEDULER_RELAY_POLL_SECONDS", "1"), 0.05, 60,
            whole=False),
        "relay_lease_seconds": env_number(
            "SCHEDULER_RELAY_LEASE_SECONDS", get("SCHEDULER_RELAY_LEASE_SECONDS", "120"), 1, 3600,
            whole=False),
        "relay_retry_scale": env_number(
            "SCHEDULER_RELAY_RETRY_SCALE", get("SCHEDULER_RELAY_RETRY_SCALE", "1"), 0.0001, 100,
            whole=False),
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
