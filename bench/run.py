"""The benchmark: the service against the references, in the same run, on each database.

    python -m bench [--quick] [--databases sqlite,postgres] [--workers 1,2]
                    [--rounds 3] [--seconds 2] [--connections 32] [--explain]

For each worker count it starts ``scheduler-app serve`` on SQLite and on
PostgreSQL (fresh databases: the time to the first 200 includes creating and
seeding the table) and, per scenario, the three references with the same worker
count (``bench/references.py``). Every scenario runs a short warm-up, then
``--rounds`` rounds, each going through the service(s) and the references in
turn; the tables show medians over the rounds and the ratio of each server to
each reference. The last line is ``key=value`` pairs for scripts.

Scenarios: GET /availability with the 16 seeded slots, and with 2,000 and 10,000
free slots inserted directly (the bodies of all servers are checked to be the
same bytes); POST /book over 10,000 free slots, a different slot per request
(then booked rows must equal the 200s); hot-slot contention, all connections on
4 slots (exactly one 200 per slot); then startup time and resident memory per
worker. ``--quick``: one round of one second, SQLite, one worker, the
16-slot and booking scenarios (the smoke test in tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import data, load, stream
from .servers import Process, get, reference, service

BOOK_POOL = 10_000
HOT_SLOTS = 4
GET_SCENARIOS = {"get16": None, "get2000": 2_000, "get10000": 10_000}
TITLES = {
    "get16": "GET /availability, 16 seeded slots",
    "get2000": "GET /availability, 2,000 free slots",
    "get10000": "GET /availability, 10,000 free slots",
    "book": f"POST /book, {BOOK_POOL:,} free slots, a different one per request",
    "hot": f"POST /book, hot-slot contention: every connection on {HOT_SLOTS} slots",
    "stream": "GET /availability/stream: open subscribers, a burst of bookings",
}
# The references, in the order of the tables' ratio columns: key -> label.
REFERENCES = {"bare": "bare ASGI", "fastapi": "FastAPI", "fastapi_sync": "FastAPI sync def"}
# A 10,000-slot body is 1.2 MB: a quarter of the connections keeps the latency
# within a round's length.
FEWER_CONNECTIONS = {"get10000": 4}


class BenchError(RuntimeError):
    """The run is invalid (a check failed); the message says which."""


@dataclass
class Figures:
    rounds: list[load.Result] = field(default_factory=list)
    warmup: load.Result | None = None

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.rounds)


@dataclass
class Target:
    """A server under load: a service (with its database URL) or a reference."""

    label: str
    key: str
    process: Process
    database_url: str | None = None

    @property
    def port(self) -> int:
        return self.process.port


@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    results: dict = field(default_factory=dict)  # (workers, scenario, key) -> Figures
    facts: dict = field(default_factory=dict)  # key -> value for the last line
    notes: list = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        load.wrk_path()
    except load.WrkMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="scheduler-bench-") as tmp, contextlib.ExitStack() as stack:
        run = Run(args, Path(tmp))
        urls = {}
        if "sqlite" in args.databases:
            urls["sqlite"] = f"sqlite:///{run.tmp / 'bench.db'}"
        if "postgres" in args.databases:
            try:
                urls["postgres"] = stack.enter_context(data.postgres_database(data.postgres_server()))
            except Exception as exc:  # noqa: BLE001 - reported, the run goes on without it
                if args.require_postgres:
                    raise
                run.notes.append(f"PostgreSQL skipped: {str(exc).strip().splitlines()[0]}")
        try:
            for workers in args.workers:
                _worker_pass(run, urls, workers)
            if args.explain and "postgres" in urls:
                print("\nEXPLAIN ANALYZE of the availability query, PostgreSQL, 100,000 rows "
                      "(50,000 past, 49,000 booked, 1,000 free):")
                print(data.explain_availability(urls["postgres"]))
        except BenchError as exc:
            print(f"bench: FAILED: {exc}", file=sys.stderr)
            run.facts["ok"] = 0
            _print_facts(run)
            return 1
        run.facts["ok"] = 1
        _print_targets(run)
        for note in run.notes:
            print(f"note: {note}")
        _print_facts(run)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round, SQLite, 1 worker, "
                        "16 slots and booking (the smoke test)")
    parser.add_argument("--databases", default="sqlite,postgres", help="default %(default)s")
    parser.add_argument("--workers", default="1,2", help="worker counts (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a round (default 2)")
    parser.add_argument("--connections", type=int, default=32,
                        help="wrk connections (default 32; a quarter for 10,000 slots)")
    parser.add_argument("--scenarios", default="get16,get2000,get10000,book,hot,stream",
                        help="default %(default)s")
    parser.add_argument("--subscribers", type=int, default=1000,
                        help="open streams in the stream scenario (default 1000)")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of the availability query on PostgreSQL, "
                        "100,000 rows")
    parser.add_argument("--require-postgres", action="store_true",
                        help="fail instead of skipping PostgreSQL when it is unreachable")
    args = parser.parse_args(argv)
    if args.quick:
        args.databases, args.workers, args.rounds, args.seconds = "sqlite", "1", 1, 1.0
        args.scenarios = "get16,book"
    args.databases = [d for d in args.databases.split(",") if d]
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(TITLES)
    if unknown or not set(args.databases) <= {"sqlite", "postgres"}:
        parser.error(f"unknown scenario or database: {sorted(unknown) or args.databases}")
    return args


def _worker_pass(run: Run, urls: dict[str, str], workers: int) -> None:
    """Every scenario at one worker count."""
    services = []
    try:
        for db, url in urls.items():
            data.drop_table(url)
            process = service(f"service-{db}-w{workers}", url, workers, run.log(f"service-{db}-{workers}"))
            services.append(Target(f"service ({db})", db, process.start(), url))
            run.facts[f"{db}_w{workers}_startup_s"] = round(process.startup, 3)
        for scenario in run.args.scenarios:
            _scenario(run, services, workers, scenario)
        for target in services:
            sizes = target.process.rss_mb()
            run.facts[f"{target.key}_w{workers}_rss_mb"] = round(max(sizes), 1)
        _print_process_table(run, services, workers)
    finally:
        for target in services:
            target.process.stop()


def _scenario(run: Run, services: list[Target], workers: int, scenario: str) -> None:
    args = run.args
    if scenario == "stream":
        _stream_scenario(run, services, workers)
        return
    payload = run.tmp / f"{scenario}.json"
    if scenario in GET_SCENARIOS:
        count = GET_SCENARIOS[scenario]
        if count is not None:
            for target in services:
                data.reset_slots(target.database_url, count)
        bodies = {t.label: get(t.port, "/availability")[1] for t in services}
        payload.write_bytes(next(iter(bodies.values())))
    else:
        payload.write_bytes(b"[]")
    refs: list[Target] = []
    try:
        if scenario != "hot":
            for app in REFERENCES:
                process = reference(app, payload, workers, run.log(f"{app}-{scenario}-{workers}"))
                refs.append(Target(REFERENCES[app], app,
                                   process.start(probe="/health")))
        targets = services + refs
        if scenario in GET_SCENARIOS:
            bodies.update({t.label: get(t.port, "/availability")[1] for t in refs})
            if len(set(bodies.values())) != 1:
                sizes = {label: len(body) for label, body in bodies.items()}
                raise BenchError(f"{scenario}: the servers' bodies differ (bytes: {sizes})")
        figures = {t.key: Figures() for t in targets}
        for round_no in range(args.rounds + 1):  # round 0 is the warm-up
            for target in targets:
                result = _one_round(run, target, scenario, warmup=round_no == 0,
                                    estimate=figures[target.key])
                if round_no:
                    figures[target.key].rounds.append(result)
                else:
                    figures[target.key].warmup = result
        for key, figure in figures.items():
            run.results[(workers, scenario, key)] = figure
        _print_scenario_table(run, workers, scenario, targets)
        for target in refs:  # the references' memory after their heaviest scenario
            key = f"{target.key}_w{workers}_rss_mb"
            run.facts[key] = max(run.facts.get(key, 0), round(max(target.process.rss_mb()), 1))
    finally:
        for target in refs:
            target.process.stop()


def connections(run: Run, scenario: str) -> int:
    return max(1, run.args.connections // FEWER_CONNECTIONS.get(scenario, 1))


def _one_round(run: Run, target: Target, scenario: str, warmup: bool, estimate: Figures) -> load.Result:
    args = run.args
    conns = connections(run, scenario)
    seconds = min(1.0, args.seconds) if warmup else args.seconds
    is_service = target.database_url is not None
    if scenario in GET_SCENARIOS:
        result = load.run(target.port, "get", ["/availability"], seconds, conns)
        _expect_all(result, "200", f"{scenario} on {target.label}")
        return result
    if scenario == "book":
        # Each booking round books as many slots as it can in about `seconds`
        # (estimated from the warm-up), at most the pool, then checks the table.
        if warmup:
            quota = 300
        else:
            quota = int(estimate.warmup.rate * seconds)
            if is_service:
                quota = min(quota, BOOK_POOL)
        if is_service:
            data.reset_slots(target.database_url, BOOK_POOL)
        result = load.run(target.port, "book", [1, max(quota, 1)], 60 + 4 * seconds, conns)
        _expect_all(result, "200", f"book on {target.label}")
        if is_service:
            booked = data.booked_count(target.database_url)
            if booked != result.ok:
                raise BenchError(f"book on {target.label}: {booked} booked rows, {result.ok} 200s")
            run.facts[f"{target.key}_book_rows_equal_200s"] = 1
        return result
    # hot: every connection books one of HOT_SLOTS slots; exactly one 200 each.
    # As many bookings as fit in about `seconds`, all answered before the round
    # ends (so none of them books the next round's slots).
    quota = 300 if warmup else max(int(estimate.warmup.rate * seconds), 1)
    data.reset_slots(target.database_url, HOT_SLOTS)
    result = load.run(target.port, "hot", [1, HOT_SLOTS, quota], 60 + 4 * seconds, conns)
    booked = data.booked_count(target.database_url)
    others = {k: v for k, v in result.statuses.items() if k not in ("200", "409")}
    if result.ok != HOT_SLOTS or booked != HOT_SLOTS or others or result.socket_errors:
        raise BenchError(f"hot on {target.label}: {result.ok} 200s and {booked} booked rows for "
                         f"{HOT_SLOTS} slots, other statuses {others}, errors {result.errors}")
    run.facts[f"{target.key}_hot_double_bookings"] = 0
    return result


def _expect_all(result: load.Result, status: str, what: str) -> None:
    others = {k: v for k, v in result.statuses.items() if k != status}
    if others or result.socket_errors:
        raise BenchError(f"{what}: statuses {result.statuses}, errors {result.errors}")


# Output ------------------------------------------------------------------------------

def _print_scenario_table(run: Run, workers: int, scenario: str, targets: list[Target]) -> None:
    refs = {k: run.results.get((workers, scenario, k)) for k in REFERENCES}
    print(f"\n{TITLES[scenario]}; {workers} worker(s), {connections(run, scenario)} connections, "
          f"median of {run.args.rounds} round(s) of {run.args.seconds:g} s")
    print(f"  {'server':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x bare':>7} {'x FastAPI':>9}"
          f" {'x sync def':>10}")
    for target in targets:
        figure = run.results[(workers, scenario, target.key)]
        rate = figure.median("rate")
        ratios = [rate / refs[k].median("rate") if refs[k] and refs[k].median("rate") else None
                  for k in REFERENCES]
        cells = "".join(f" {r:>{w}.2f}" if r is not None else f" {'-':>{w}}"
                        for r, w in zip(ratios, (7, 9, 10)))
        print(f"  {target.label:<20} {rate:>9,.0f} {figure.median('p50_ms'):>8.2f} "
              f"{figure.median('p99_ms'):>8.2f}{cells}")
        prefix = f"{target.key}_w{workers}_{scenario}"
        run.facts[f"{prefix}_rps"] = round(rate)
        run.facts[f"{prefix}_p50_ms"] = round(figure.median("p50_ms"), 2)
        run.facts[f"{prefix}_p99_ms"] = round(figure.median("p99_ms"), 2)
        for ref, ratio in zip(REFERENCES, ratios):
            if ratio is not None and target.key not in REFERENCES:
                run.facts[f"{prefix}_x_{ref}"] = round(ratio, 3)
        if scenario in ("book", "hot"):
            run.facts[f"{prefix}_200s"] = sum(r.ok for r in figure.rounds)


def _stream_scenario(run: Run, services: list[Target], workers: int) -> None:
    """The services only (the references have no stream): bench/stream.py."""
    args = run.args
    print(f"\n{TITLES['stream']}; {workers} worker(s), {args.subscribers:,} subscribers, "
          f"{stream.BOOKINGS} bookings from {stream.BOOKING_THREADS} connections; then wrk "
          f"books for {args.seconds:g} s on {args.connections} connections, streams still open")
    print(f"  {'server':<20} {'200 to last event: p50 ms':>26} {'p99 ms':>8} {'max ms':>8} "
          f"{'KB per stream':>14} {'book req/s':>11} {'x no streams':>13}")
    for target in services:
        try:
            figures = stream.run(target.process, target.database_url, args.subscribers,
                                 args.seconds, args.connections)
        except RuntimeError as exc:
            raise BenchError(f"stream on {target.label}: {exc}") from exc
        book = run.results.get((workers, "book", target.key))
        ratio = figures.book_rps / book.median("rate") if book and book.rounds else None
        print(f"  {target.label:<20} {figures.p50_ms:>26.1f} {figures.p99_ms:>8.1f} "
              f"{figures.max_ms:>8.1f} {figures.kb_per_stream:>14.1f} {figures.book_rps:>11,.0f} "
              + (f"{ratio:>13.2f}" if ratio is not None else f"{'-':>13}"))
        prefix = f"{target.key}_w{workers}_stream"
        run.facts[f"{prefix}_subscribers"] = figures.subscribers
        run.facts[f"{prefix}_p50_ms"] = round(figures.p50_ms, 1)
        run.facts[f"{prefix}_p99_ms"] = round(figures.p99_ms, 1)
        run.facts[f"{prefix}_max_ms"] = round(figures.max_ms, 1)
        run.facts[f"{prefix}_kb_per_stream"] = round(figures.kb_per_stream, 1)
        run.facts[f"{prefix}_book_rps"] = round(figures.book_rps)
        if ratio is not None:
            run.facts[f"{prefix}_book_x_no_streams"] = round(ratio, 3)


def _print_process_table(run: Run, services: list[Target], workers: int) -> None:
    print(f"\nProcesses, {workers} worker(s)")
    print(f"  {'server':<20} {'start to first 200 s':>21} {'RSS per worker MB':>18}")
    for target in services:
        sizes = ", ".join(f"{s:.1f}" for s in target.process.rss_mb())
        print(f"  {target.label:<20} {target.process.startup:>21.3f} {sizes:>18}")
    for key, label in REFERENCES.items():
        if (size := run.facts.get(f"{key}_w{workers}_rss_mb")) is not None:
            print(f"  {label:<20} {'-':>21} {size:>18.1f} (largest worker, largest scenario)")


def _print_targets(run: Run) -> None:
    """The issue's targets, for each service: the figure and whether it is met."""
    rows = []
    facts = run.facts
    for db in ("sqlite", "postgres"):
        for w in run.args.workers:
            def fact(name):
                return facts.get(f"{db}_w{w}_{name}")
            checks = [
                ("GET 16 slots >= 0.5 x FastAPI", fact("get16_x_fastapi"), 0.5, ">="),
                ("GET 10,000 slots >= 1.0 x FastAPI", fact("get10000_x_fastapi"), 1.0, ">="),
                ("POST /book >= 0.5 x FastAPI", fact("book_x_fastapi"), 0.5, ">="),
                # Not targets: how near the ceiling of sync handlers it comes.
                ("GET 16 slots x FastAPI sync def", fact("get16_x_fastapi_sync"), None, ""),
                ("POST /book x FastAPI sync def", fact("book_x_fastapi_sync"), None, ""),
                ("startup < 1 s (SQLite)" if db == "sqlite" else "startup (PostgreSQL)",
                 fact("startup_s"), 1.0 if db == "sqlite" else None, "<"),
                ("RSS per worker < 60 MB", facts.get(f"{db}_w{w}_rss_mb"), 60, "<"),
            ]
            for label, value, limit, op in checks:
                if value is None:
                    continue
                met = "" if limit is None else (
                    "met" if (value >= limit if op == ">=" else value < limit) else "NOT met")
                rows.append((f"{db}, {w} worker(s)", label, value, met))
    if 1 in run.args.workers and 2 in run.args.workers:
        for db in ("sqlite", "postgres"):
            one, two = facts.get(f"{db}_w1_get16_rps"), facts.get(f"{db}_w2_get16_rps")
            if one and two:
                rows.append((db, "GET 16: 2 workers >= 1 worker (ratio)", round(two / one, 2),
                             "met" if two >= one else "NOT met"))
    if rows:
        print("\nTargets (issue 5)")
        for who, label, value, met in rows:
            print(f"  {who:<22} {label:<36} {value:>8} {met}".rstrip())
    _print_live_targets(run)


def _print_live_targets(run: Run) -> None:
    """The targets of live availability (issue 13): the versioned read path and the stream."""
    rows = []
    for db in ("sqlite", "postgres"):
        for w in run.args.workers:
            def fact(name, db=db, w=w):
                return run.facts.get(f"{db}_w{w}_{name}")
            checks = [
                ("GET 10,000 slots >= 5 x FastAPI", fact("get10000_x_fastapi"), 5.0, ">="),
                ("stream: 200 to last event p99 < 1 s", fact("stream_p99_ms"), 1000, "<"),
                ("stream: KB per open stream <= 40", fact("stream_kb_per_stream"), 40, "<="),
                ("stream: POST /book x without streams", fact("stream_book_x_no_streams"), None, ""),
            ]
            if w == 1:
                checks.insert(1, (f"GET 16 slots >= {0.6 if db == 'sqlite' else 0.5} x FastAPI",
                                  fact("get16_x_fastapi"), 0.6 if db == "sqlite" else 0.5, ">="))
            if db == "sqlite":
                checks.insert(2, ("POST /book >= 0.3 x FastAPI", fact("book_x_fastapi"), 0.3, ">="))
            for label, value, limit, op in checks:
                if value is None:
                    continue
                ok = {">=": value >= limit, "<": value < limit, "<=": value <= limit}.get(op) \
                    if limit is not None else None
                rows.append((f"{db}, {w} worker(s)", label, value,
                             "" if ok is None else "met" if ok else "NOT met"))
    if rows:
        print("\nTargets (issue 13, live availability)")
        for who, label, value, met in rows:
            print(f"  {who:<22} {label:<38} {value:>8} {met}".rstrip())


def _print_facts(run: Run) -> None:
    print(" ".join(f"{key}={value}" for key, value in run.facts.items()))
