"""The ``scheduler-app`` command, run as a user runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import Server, free_port, request
from support import run_cli as run


def test_check_reports_a_healthy_setup(database_url):
    result = run("check", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: configuration valid")
    assert "0 slot(s)" in result.stdout


def test_python_dash_m_is_the_same_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scheduler_app", "check"], cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SCHEDULER_TIMEZONE": "Nowhere/City"}, "SCHEDULER_TIMEZONE must be an IANA time zone"),
        ({"SCHEDULER_SLOT_MINUTES": "x"}, "SCHEDULER_SLOT_MINUTES must be a whole number"),
        ({"SCHEDULER_SEEDER": "weekly"}, "Unknown seeder 'weekly'; installed seeders: "),
    ],
)
@pytest.mark.parametrize("command", ["check", "seed", "serve"])
def test_bad_configuration_stops_with_one_line(tmp_path, command, env, expected):
    result = run(command, env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **env})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"scheduler-app: configuration error: {expected}")


def test_check_fails_clearly_when_the_database_is_unreachable():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = run("check", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith("scheduler-app: The database is unavailable:")
    assert "Traceback" not in result.stderr


def test_seed_adds_the_missing_days_idempotently(database_url):
    env = {"DATABASE_URL": database_url}
    first = run("seed", "--days", "3", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "Added 48 slot(s) for the next 3 business day(s)."
    again = run("seed", "--days", "3", env=env)
    assert again.stdout.strip() == "Added 0 slot(s) for the next 3 business day(s)."
    assert "48 slot(s)" in run("check", env=env).stdout


def test_seed_days_default_comes_from_the_environment(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SCHEDULER_SEED_DAYS": "2"}
    result = run("seed", env=env)
    assert result.stdout.strip() == "Added 32 slot(s) for the next 2 business day(s)."


@pytest.mark.parametrize("days", ["0", "367", "lots"])
def test_seed_rejects_a_bad_day_count_as_the_environment_does(tmp_path, days):
    """The bounds of SCHEDULER_SEED_DAYS: --days 100000 would insert 1.6 million slots."""
    result = run("seed", "--days", days, env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 2
    assert "must be a whole number from 1 to 366" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_serve_flags_have_the_bounds_of_the_environment():
    for flag, value, expected in (("--workers", "65", "from 1 to 64"),
                                  ("--port", "0", "from 1 to 65535"),
                                  ("--graceful-timeout", "-1", "of at least 0")):
        result = run("serve", flag, value)
        assert result.returncode == 2, flag
        assert f"argument {flag}: must be a whole number {expected} (got '{value}')" in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_and_stops_cleanly(tmp_path, workers):
    server = Server("sqlite:///scheduler.db", workers=workers, cwd=tmp_path).start()
    try:
        server.wait_ready()
        status, body = request(server.port, "GET", "/availability")
        assert status == 200 and body[0]["id"] == 1
        assert (tmp_path / "scheduler.db").exists()
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output
    assert "Traceback" not in server.output


def test_startup_seeds_scheduler_seed_days_only_on_an_empty_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    for days, total in (("2", 32), ("3", 32)):  # the second start finds slots: no seeding
        server = Server(url, env={"SCHEDULER_SEED_DAYS": days}).start()
        try:
            server.wait_ready()
            assert request(server.port, "GET", "/ready")[1]["slots"]["total"] == total
        finally:
            server.stop()
