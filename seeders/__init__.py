"""Seeder plugins: strategies that decide which slots to create.

Built-in seeders live here; others register under the entry-point group
``scheduler_app.seeders``.
"""

from .base import Seeder, SeederOptions, Slot
from .registry import (
    ENTRY_POINT_GROUP,
    SeederLoadError,
    UnknownSeederError,
    available_seeders,
    get_seeder_factory,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Seeder",
    "SeederLoadError",
    "SeederOptions",
    "Slot",
    "UnknownSeederError",
    "available_seeders",
    "get_seeder_factory",
]
