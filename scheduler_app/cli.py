"""The ``scheduler-app`` command: serve | seed | init-db | check | relay | outbox, and
the rep's bookings | cancel | close | closures | reopen | add-slots (``rep_cli``), on
the same code as the app."""

from __future__ import annotations

import argparse
import logging.config
import signal
import sys
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from seeders import SeederLoadError, UnknownSeederError

from . import __version__, rep_cli
from .db import close_database, init_database, session, wait_for_database
from .errors import ClientError, ConfigError, DatabaseUnavailable, SchemaError
from .logs import log_config
from .migrations import LATEST, upgrade
from .models import TimeSlot
from .notify import outbox, relay
from .protect.settings import log_configuration as log_protection
from .seeding import build_seeder, seed_days
from .server import MAX_DEFAULT_WORKERS, default_workers, make_config, serve
from .settings import PORTS, SEED_DAYS, WORKERS, Settings
from .startup import prepare_database, utc_now
from .values import number

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
    serve.add_argument(
        "--host", help="address to bind (default: SCHEDULER_HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, help="port (default: SCHEDULER_PORT, else 8000)"
    )
    serve.add_argument(
        "--workers", type=_workers,
        help="worker processes (default: SCHEDULER_WORKERS, else one per core, at most "
        f"{MAX_DEFAULT_WORKERS})",
    )
    serve.add_argument(
        "--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on)",
    )
    serve.add_argument(
        "--forwarded-allow-ips", metavar="IPS",
        help="comma-separated proxy addresses or networks (or *) whose forwarded headers "
        "are trusted (default: SCHEDULER_FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)",
    )
    serve.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=True,
        help="log one line per request (default: on)",
    )
    serve.add_argument(
        "--graceful-timeout", type=_non_negative, default=10, metavar="SECONDS",
        help="on SIGTERM, wait this long for requests in flight, then cancel them "
        "(default %(default)s)",
    )

    seed = commands.add_parser("seed", help="add the slots of the next N business days")
    seed.add_argument(
        "--days", type=_days, help="business days ahead (default: SCHEDULER_SEED_DAYS, 1)"
    )

    commands.add_parser(
        "init-db", help="create the schema, or apply the migrations it lacks"
    )
    commands.add_parser("check", help="validate the configuration and the database connection")

    commands.add_parser("relay", help="deliver the outbox (emails, webhooks) until stopped")
    outbox_cmd = commands.add_parser("outbox", help="list the pending and dead messages")
    outbox_actions = outbox_cmd.add_subparsers(dest="action", metavar="ACTION")
    retry = outbox_actions.add_parser("retry", help="requeue messages: due now, schedule anew")
    retry.add_argument("ids", nargs="*", type=_whole_number(1), metavar="ID",
                       help="the messages' ids (from `scheduler-app outbox`)")
    retry.add_argument("--dead", action="store_true", help="every dead message")
    rep_cli.add_commands(commands, _whole_number)
    return parser


def _whole_number(low: int, high: int | None = None):
    def parse(value: str) -> int:
        try:
            return number(value, low, high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_non_negative = _whole_number(0)
_port = _whole_number(*PORTS)
_workers = _whole_number(*WORKERS)
_days = _whole_number(*SEED_DAYS)


def redact(url: str) -> str:
    """The URL with its password hidden, fit for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Flags override the environment (SCHEDULER_HOST/PORT/WORKERS).
    config = make_config(
        args.host or settings.host,
        args.port or settings.port,
        args.workers or settings.workers or default_workers(),
        log_format=settings.log_format,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips or settings.protection.forwarded_allow_ips,
        graceful_timeout=args.graceful_timeout,
    )
    # Wait for the database and seed it here, once, so that an unreachable
    # database ends the command with one line instead of failing every worker.
    prepare_database(settings, build_seeder(settings), utc_now())
    relay.log_configuration(settings)  # once, not once per worker
    log_protection(settings.protection, config.workers)
    close_database()
    serve(config)
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    upgrade()
    days = args.days or settings.seed_days
    added = seed_days(seeder, utc_now(), days, settings=settings)
    print(f"Added {added} slot(s) for the next {days} business day(s).")
    return 0


def _init_db(settings: Settings, args: argparse.Namespace) -> int:
    init_database(settings.database_url)
    changes = upgrade()
    for change in changes:
        print(change)
    if not changes:
        print(f"The schema is up to date (version {LATEST}).")
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    seeder = build_seeder(settings)
    init_database(settings.database_url)
    upgrade()
    with session():
        total = TimeSlot.select().count()
    print(
        f"OK: configuration valid (seeder {seeder.name}, time zone {settings.timezone}); "
        f"database {redact(settings.database_url)} reachable, {total} slot(s)."
    )
    return 0


def _relay(settings: Settings, args: argparse.Namespace) -> int:
    logging.config.dictConfig(log_config(settings.log_format))
    init_database(settings.database_url)
    wait_for_database(settings.db_wait_seconds)
    upgrade()
    relay.log_configuration(settings)
    stop = threading.Event()

    def finish(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    relay.log.info("relay: delivering the outbox (SIGTERM or Ctrl-C stops)")
    relay.run(settings, stop)
    close_database()
    return 0


def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    init_database(settings.database_url)
    upgrade()
    with session():
        if args.action == "retry":
            if not args.ids and not args.dead:
                print(f"{PROG} outbox retry: give message ids, or --dead", file=sys.stderr)
                return 2
            done = outbox.requeue(None if args.dead else args.ids, utc_now())
            missing = sorted(set(args.ids) - set(done))
            if done:
                print(f"Requeued {len(done)} message(s): {', '.join(map(str, done))}.")
            if missing:
                print(f"Not pending or dead (sent, or no such message): "
                      f"{', '.join(map(str, missing))}.", file=sys.stderr)
                return 1
            return 0
        rows, counts = outbox.unsent(), outbox.counts()
    print(f"{counts['pending']} pending, {counts['dead']} dead, {counts['sent']} sent.")
    if rows:
        print(f"{'ID':>6}  {'STATUS':7}  {'TO':7}  {'EVENT':19}  {'BOOKING':8}  "
              f"{'TRIES':>5}  {'NEXT ATTEMPT (UTC)':19}  LAST ERROR")
    for row in rows:
        when = "-" if row.status == "dead" else f"{row.next_attempt_at:%Y-%m-%d %H:%M:%S}"
        to = row.recipient if row.channel == "email" else "webhook"
        error = (row.last_error or "").splitlines()[0][:100] if row.last_error else ""
        print(f"{row.id:>6}  {row.status:7}  {to:7}  {row.event:19}  {row.reference:8}  "
              f"{row.attempts:>5}  {when:19}  {error}")
    return 0


COMMANDS = {"serve": _serve, "seed": _seed, "init-db": _init_db, "check": _check,
            "relay": _relay, "outbox": _outbox, **rep_cli.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](settings, args)
    except (ConfigError, UnknownSeederError, SeederLoadError) as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except rep_cli.Usage as exc:
        print(f"{PROG} {exc}", file=sys.stderr)
        return 2
    except (DatabaseUnavailable, SchemaError, ClientError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
