"""The ``scheduler-app`` command: serve | seed | check, on the same code as the app."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from seeders import SeederLoadError, UnknownSeederError

from . import __version__
from .app import prepare_database, utc_now
from .db import close_database, init_database, session
from .errors import ConfigError, DatabaseUnavailable
from .models import TimeSlot, create_tables
from .seeding import build_seeder, seed_days
from .settings import Settings

PROG = "scheduler-app"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Meeting-slot booking service. Configured by environment variables "
        "(DATABASE_URL, SCHEDULER_*); see the README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")

    seed = commands.add_parser("seed", help="add the slots of the next N business days")
    seed.add_argument(
        "--days", type=_positive, help="business days ahead (default: SCHEDULER_SEED_DAYS, 1)"
    )

    commands.add_parser("check", help="validate the configuration and the database connection")
    return parser


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1 (got {value!r})")
    return number


def redact(url: str) -> str:
    """The URL with its password hidden, fit for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from .server import make_config, serve

    # Wait for the database and seed it here, once, so that an unreachable
    # database ends the command with one line instead of failing every worker.
    prepare_database(settings, build_seeder(settings), utc_now())
    close_database()
    serve(make_config(args.host, args.port, args.workers))
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    create_tables()
    days = args.days or settings.seed_days
    added = seed_days(seeder, utc_now(), days)
    print(f"Added {added} slot(s) for the next {days} business day(s).")
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    create_tables()
    with session():
        total = TimeSlot.select().count()
    print(
        f"OK: configuration valid (seeder {seeder.name}, time zone {settings.timezone}); "
        f"database {redact(settings.database_url)} reachable, {total} slot(s)."
    )
    return 0


COMMANDS = {"serve": _serve, "seed": _seed, "check": _check}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](settings, args)
    except (ConfigError, UnknownSeederError, SeederLoadError) as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
