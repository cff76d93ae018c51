"""Find seeder factories by name: the built-ins plus the ``scheduler_app.seeders`` entry points.

A third-party package registers its seeder in its own metadata::

    [options.entry_points]
    scheduler_app.seeders =
        my-seeder = my_package.module:MySeeder

The entry point names a callable that takes ``SeederOptions`` and returns a seeder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points

from .base import Seeder, SeederOptions
from .business_day import NextBusinessDaySeeder

ENTRY_POINT_GROUP = "scheduler_app.seeders"

SeederFactory = Callable[[SeederOptions], Seeder]

BUILTIN_SEEDERS: dict[str, SeederFactory] = {
    NextBusinessDaySeeder.name: NextBusinessDaySeeder,
}


class UnknownSeederError(LookupError):
    """No installed seeder has the requested name."""


class SeederLoadError(ImportError):
    """An installed seeder could not be loaded, or two claim the same name."""


def _installed() -> Iterable[EntryPoint]:
    return entry_points(group=ENTRY_POINT_GROUP)


def _target(factory: SeederFactory) -> str:
    return f"{factory.__module__}:{factory.__qualname__}"


def _entry_points_by_name(source: Iterable[EntryPoint]) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in source:
        builtin = BUILTIN_SEEDERS.get(ep.name)
        if builtin is not None and ep.value.replace(" ", "") == _target(builtin):
            continue  # our own declaration of a built-in
        if ep.name in BUILTIN_SEEDERS or ep.name in found:
            raise SeederLoadError(
                f"Two seeders are named {ep.name!r}: {ep.value} and "
                f"{found[ep.name].value if ep.name in found else _target(BUILTIN_SEEDERS[ep.name])}"
            )
        found[ep.name] = ep
    return found


def available_seeders(source: Iterable[EntryPoint] | None = None) -> list[str]:
    """The sorted names of every seeder that can be selected."""
    plugins = _entry_points_by_name(_installed() if source is None else source)
    return sorted({*BUILTIN_SEEDERS, *plugins})


def get_seeder_factory(name: str, source: Iterable[EntryPoint] | None = None) -> SeederFactory:
    """The factory registered as ``name``; ``source`` replaces the installed entry points."""
    plugins = _entry_points_by_name(_installed() if source is None else source)
    if name in BUILTIN_SEEDERS:
        return BUILTIN_SEEDERS[name]
    if name not in plugins:
        raise UnknownSeederError(
            f"Unknown seeder {name!r}; installed seeders: "
            f"{', '.join(sorted({*BUILTIN_SEEDERS, *plugins}))}"
        )
    ep = plugins[name]
    try:
        return ep.load()
    except Exception as exc:
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        raise SeederLoadError(
            f"Seeder {name!r} ({ep.value}, from {dist}) could not be loaded: {exc}"
        ) from exc
