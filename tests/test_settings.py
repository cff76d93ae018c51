"""Configuration: defaults, and one clear message per bad value."""

from __future__ import annotations

from datetime import time

import pytest

from scheduler_app.errors import ConfigError
from scheduler_app.settings import Settings


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///scheduler.db"
    assert settings.timezone == "UTC"
    assert settings.holidays == "US"
    assert (settings.day_start, settings.day_end) == (time(9), time(17))
    assert settings.slot_minutes == 30
    assert settings.seeder == "next-business-day"
    assert settings.seed_days == 1
    assert settings.cors_origins == ()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, None)
    assert settings.log_format == "text"
    assert settings.db_wait_seconds == 30
    assert settings.max_body_bytes == 16_384


def test_service_values_are_read():
    settings = Settings.from_env(
        {
            "SCHEDULER_SEED_DAYS": "5",
            "SCHEDULER_CORS_ORIGINS": "https://www.example.com, http://localhost:3000/",
            "SCHEDULER_HOST": "0.0.0.0",
            "SCHEDULER_PORT": "9000",
            "SCHEDULER_WORKERS": "3",
            "SCHEDULER_LOG_FORMAT": "JSON",
            "SCHEDULER_DB_WAIT_SECONDS": "0",
            "SCHEDULER_MAX_BODY_BYTES": "4096",
        }
    )
    assert settings.seed_days == 5
    assert settings.cors_origins == ("https://www.example.com", "http://localhost:3000")
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9000, 3)
    assert settings.log_format == "json"
    assert settings.db_wait_seconds == 0
    assert settings.max_body_bytes == 4096


def test_values_are_read_and_normalised():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u:p@db:5432/app",
            "SCHEDULER_TIMEZONE": "Europe/Berlin",
            "SCHEDULER_HOLIDAYS": "de-by",
            "SCHEDULER_DAY_START": "08:30",
            "SCHEDULER_DAY_END": "12:00",
            "SCHEDULER_SLOT_MINUTES": "15",
        }
    )
    assert settings.holidays == "DE-BY"
    assert (settings.holiday_country, settings.holiday_subdivision) == ("DE", "BY")
    assert settings.day_start == time(8, 30)
    assert settings.slot_minutes == 15
    assert settings.tz.key == "Europe/Berlin"


def test_empty_holidays_disables_them():
    settings = Settings.from_env({"SCHEDULER_HOLIDAYS": ""})
    assert settings.holiday_country is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must start with sqlite:/// or postgresql://"),
        ("SCHEDULER_TIMEZONE", "Mars/Olympus", "SCHEDULER_TIMEZONE must be an IANA time zone"),
        ("SCHEDULER_HOLIDAYS", "XX", "SCHEDULER_HOLIDAYS must be empty, a country code"),
        ("SCHEDULER_HOLIDAYS", "US-ZZ", "SCHEDULER_HOLIDAYS: US has no subdivision 'ZZ'"),
        ("SCHEDULER_DAY_START", "9am", "SCHEDULER_DAY_START must be a time of day as HH:MM"),
        ("SCHEDULER_DAY_END", "25:00", "SCHEDULER_DAY_END must be a time of day as HH:MM"),
        ("SCHEDULER_SLOT_MINUTES", "half", "SCHEDULER_SLOT_MINUTES must be a whole number"),
        ("SCHEDULER_SLOT_MINUTES", "0", "SCHEDULER_SLOT_MINUTES must be a whole number"),
        ("SCHEDULER_DAY_START", "18:00", "SCHEDULER_DAY_START (18:00) must be earlier"),
        ("SCHEDULER_SEED_DAYS", "0", "SCHEDULER_SEED_DAYS must be a whole number from 1"),
        ("SCHEDULER_CORS_ORIGINS", "example.com", "SCHEDULER_CORS_ORIGINS must be comma-separated"),
        ("SCHEDULER_PORT", "70000", "SCHEDULER_PORT must be a whole number from 1 to 65535"),
        ("SCHEDULER_WORKERS", "many", "SCHEDULER_WORKERS must be a whole number from 1"),
        ("SCHEDULER_LOG_FORMAT", "xml", "SCHEDULER_LOG_FORMAT must be one of text, json"),
        ("SCHEDULER_DB_WAIT_SECONDS", "-1", "SCHEDULER_DB_WAIT_SECONDS must be a whole number"),
        ("SCHEDULER_MAX_BODY_BYTES", "10", "SCHEDULER_MAX_BODY_BYTES must be a whole number"),
    ],
)
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
