"""Parsers of configuration values, shared by the settings and the command line.

``number`` is the one parser of bounded numbers: the environment's settings
(``settings.py``, ``notify/settings.py``) turn its ``ValueError`` into a
``ConfigError`` naming the variable (``env_number``), the command line into an
argparse error naming the flag.
"""

from __future__ import annotations

import re

from .errors import ConfigError


def number(value: str, low: float, high: float | None = None, *, whole: bool = True):
    """``value`` as a number from ``low`` to ``high`` (None: no upper bound), an
    ``int`` if ``whole`` else a ``float``; raises ``ValueError`` saying what is expected."""
    try:
        parsed = int(value) if whole else float(value)
    except ValueError:
        parsed = None
    # (NaN compares False with everything, so it is refused here too.)
    if parsed is None or not low <= parsed or (high is not None and not parsed <= high):
        if whole:
            span = f"of at least {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"must be a whole number {span} (got {value!r})")
        span = f"of at least {low:g}" if high is None else f"from {low:g} to {high:g}"
        raise ValueError(f"must be a number {span} (got {value!r})")
    return parsed


def env_number(name: str, value: str, low: float, high: float, *, whole: bool = True):
    """``number`` for the environment variable ``name``: ``ConfigError`` naming it."""
    try:
        return number(value, low, high, whole=whole)
    except ValueError as exc:
        raise ConfigError(f"{name} {exc}") from None


def printable_secret(name: str, value: str, min_chars: int) -> str | None:
    """A secret setting: None when unset, else at least ``min_chars`` printable
    characters without spaces; the error never shows the value."""
    if not value:
        return None
    if len(value) < min_chars or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise ConfigError(
            f"{name} must be at least {min_chars} printable characters without spaces, "
            "e.g. $(openssl rand -hex 32) (the value given is not; it is not shown)"
        )
    return value


def choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value.lower()
