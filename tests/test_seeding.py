"""Storing seeded slots: idempotent, and exactly once under concurrent startups."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import FRIDAY

from scheduler_app.models import TimeSlot
from scheduler_app.seeding import build_seeder, seed_days, seed_if_empty
from seeders import UnknownSeederError



def count() -> int:
    with TimeSlot._meta.database.connection_context():
        return TimeSlot.select().count()


def test_seed_if_empty_fills_only_an_empty_table(db, settings):
    seeder = build_seeder(settings)
    assert seed_if_empty(seeder, FRIDAY, settings=settings) == 16
    # Not empty: nothing added.
    assert seed_if_empty(seeder, FRIDAY.replace(day=24), settings=settings) == 0
    assert count() == 16


def test_seed_days_adds_only_missing_slots(db, settings):
    seeder = build_seeder(settings)
    assert seed_days(seeder, FRIDAY, 1, settings=settings) == 16
    # Monday is there; Tue and Wed are new.
    assert seed_days(seeder, FRIDAY, 3, settings=settings) == 32
    assert seed_days(seeder, FRIDAY, 3, settings=settings) == 0
    assert count() == 48


def test_concurrent_startups_seed_each_slot_once(db, settings, run_together):
    seeder = build_seeder(settings)
    added = run_together(8, lambda i: seed_if_empty(seeder, FRIDAY, settings=settings))
    assert all(isinstance(n, int) for n in added), added
    assert sum(added) == 16
    assert count() == 16


def test_settings_pick_the_seeder(settings):
    assert build_seeder(settings).name == "next-business-day"
    with pytest.raises(UnknownSeederError, match="'weekly'.*next-business-day"):
        build_seeder(replace(settings, seeder="weekly"))
