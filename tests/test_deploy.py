"""deploy/: the systemd units verify, their ExecStart lines work as written, and the
env file and the nginx example agree with what the service reads and trusts."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from support import SCRIPT, Server, free_port, request

from scheduler_app.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["scheduler-app.service", "scheduler-app-seed.service", "scheduler-app-seed.timer"]
INSTALLED_SCRIPT = "/opt/scheduler-app/venv/bin/scheduler-app"  # where the README installs it
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DEPLOY / name)
    return parser


def read_env_file(path: Path) -> dict[str, str]:
    """VARIABLE=value lines as systemd's EnvironmentFile= reads them (no quotes used)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def exec_start(name: str) -> list[str]:
    """The unit's ExecStart as argv, with the installed script replaced by this venv's."""
    argv = shlex.split(unit(name)["Service"]["ExecStart"])
    assert argv[0] == INSTALLED_SCRIPT
    return [SCRIPT, *argv[1:]]


def service_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment systemd would give the unit: env.example with ``overrides``,
    written to a file and read back as EnvironmentFile= reads it."""
    values = {**read_env_file(DEPLOY / "env.example"), **overrides}
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **read_env_file(env_file)}


@pytest.fixture
def systemd_analyze():
    if not os.access(SYSTEMD_ANALYZE, os.X_OK):
        reason = "systemd-analyze is missing (Debian package systemd)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it, so CI must run this test")
        pytest.skip(reason)
    return SYSTEMD_ANALYZE


def test_units_pass_systemd_analyze_verify(tmp_path, systemd_analyze):
    # verify also checks that ExecStart's program exists: point it at this venv's.
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        (tmp_path / name).write_text(text.replace(INSTALLED_SCRIPT, SCRIPT))
    result = subprocess.run(
        [systemd_analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True, text=True, timeout=60,
    )
    # verify exits 0 on unknown keys and bad values too, only warning: any output fails.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_units_run_as_an_unprivileged_user_reading_the_env_file():
    for name in ("scheduler-app.service", "scheduler-app-seed.service"):
        service = unit(name)["Service"]
        assert service["User"] == "scheduler"
        assert service["EnvironmentFile"] == "/etc/scheduler-app/env"
        assert service["WorkingDirectory"] == f"/var/lib/{service['StateDirectory']}"
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert unit("scheduler-app.service")["Service"]["Restart"] == "on-failure"
    assert unit("scheduler-app-seed.timer")["Timer"]["Persistent"] == "true"


def test_the_service_exec_start_with_its_env_file_serves_ready(tmp_path):
    """The unit's ExecStart, word for word, with env.example as its EnvironmentFile
    (DATABASE_URL pointed at a SQLite file, a free port), in its working directory."""
    port = free_port()
    env = service_env(tmp_path, DATABASE_URL="sqlite:///scheduler.db", SCHEDULER_PORT=str(port))
    server = Server(env["DATABASE_URL"], cwd=tmp_path)
    server.args, server.env, server.port = exec_start("scheduler-app.service"), env, port
    try:
        server.start().wait_ready()
        status, body = request(port, "GET", "/ready")
        assert status == 200, body
        assert body["slots"]["total"] == 5 * 16  # SCHEDULER_SEED_DAYS=5 in env.example
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output
    assert (tmp_path / "scheduler.db").exists()  # relative to WorkingDirectory=


def test_the_seed_exec_start_adds_the_missing_days(tmp_path):
    env = service_env(tmp_path, DATABASE_URL="sqlite:///scheduler.db")
    argv = exec_start("scheduler-app-seed.service")
    runs = [subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
            for _ in range(2)]
    assert [r.stdout for r in runs] == [
        "Added 80 slot(s) for the next 5 business day(s).\n",
        "Added 0 slot(s) for the next 5 business day(s).\n",
    ], [r.stderr for r in runs]


class _Recording(dict):
    def __init__(self):
        super().__init__()
        self.read: set[str] = set()

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)


def test_env_example_sets_every_setting_and_they_are_valid():
    recording = _Recording()
    Settings.from_env(recording)
    example = read_env_file(DEPLOY / "env.example")
    assert sorted(example) == sorted(recording.read)
    text = (DEPLOY / "env.example").read_text()
    for name in example:  # each has a comment of its own or shares the one above
        assert re.search(rf"#[^\n]*\n(?:[A-Z_]+=[^\n]*\n)*{name}=", text), name
    Settings.from_env(example)


def test_nginx_forwards_the_headers_the_service_trusts_from_its_address():
    conf = (DEPLOY / "nginx.conf").read_text()
    headers = dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", conf))
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Request-ID"] == "$request_id"
    [upstream] = re.findall(r"upstream scheduler_app \{\s*server ([\d.]+):(\d+);", conf)
    env = read_env_file(DEPLOY / "env.example")
    assert upstream == (env["SCHEDULER_HOST"], env["SCHEDULER_PORT"])
    argv = exec_start("scheduler-app.service")
    assert "--proxy-headers" in argv
    assert argv[argv.index("--forwarded-allow-ips") + 1] == upstream[0]  # nginx connects from it
    assert re.search(r"listen 443 ssl", conf) and "ssl_certificate " in conf
    assert "proxy_pass http://scheduler_app;" in conf


# --- The README's "Deploying on a VM" section, run command by command ---------

README = DEPLOY.parent / "README.md"
NOT_HERE = {
    "useradd": "would add a user to this machine",
    "systemctl": "no systemd as PID 1 in the test container",
}


def readme_deploy_commands() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Deploying on a VM"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _sandboxed(command: str, root: Path, role: str, port: int) -> str:
    """The command with / standing at ``root``, the role and database ``role``, the port ``port``."""
    for path in ("/opt/scheduler-app", "/etc/scheduler-app", "/etc/systemd/system"):
        command = command.replace(path, f"{root}{path}")
    if command.startswith("sudo -u postgres "):
        command = re.sub(r"(?<![\w-])scheduler(?![\w-])", role, command)
    return command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


@pytest.fixture
def throwaway_role(postgres_url):
    """A role and database name for the README's commands; both dropped afterwards."""
    import psycopg2

    name = f"scheduler_readme_{os.getpid()}"
    yield name
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'DROP ROLE IF EXISTS "{name}"')
    admin.close()


@pytest.mark.postgres
def test_the_readme_deploy_section_runs_top_to_bottom(tmp_path, postgres_url, throwaway_role,
                                                      systemd_analyze):
    from urllib.parse import urlsplit

    server_url = urlsplit(postgres_url)
    root, checkout, bin_dir = tmp_path / "root", tmp_path / "checkout", tmp_path / "bin"
    for folder in (root / "etc/systemd/system", bin_dir):  # as on any Debian machine
        folder.mkdir(parents=True)
    shutil.copytree(DEPLOY.parent, checkout, ignore=shutil.ignore_patterns(
        ".git", ".tox", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.db*"))
    # `sudo` runs the command as this (root or not) user; `-u postgres` means the
    # PostgreSQL superuser on the test server.
    (bin_dir / "sudo").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -u ]; then shift 2; export PGUSER=postgres '
        f"PGHOST={server_url.hostname} PGPORT={server_url.port or 5432}; fi\n"
        'exec "$@"\n'
    )
    (bin_dir / "sudo").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    port = free_port()
    database_url = (f"postgresql://{throwaway_role}:change-me@{server_url.hostname}:"
                    f"{server_url.port or 5432}/{throwaway_role}")
    installed = root / "opt/scheduler-app/venv/bin/scheduler-app"
    server = None
    ran = []
    try:
        for command in readme_deploy_commands():
            program = command.split()[1] if command.startswith("sudo ") else command.split()[0]
            if program in NOT_HERE:
                ran.append(f"skipped ({NOT_HERE[program]}): {command}")
                if command.endswith("enable --now scheduler-app.service scheduler-app-seed.timer"):
                    # What systemd would start: the installed unit's ExecStart, its env file.
                    unit_file = root / "etc/systemd/system/scheduler-app.service"
                    argv = shlex.split(re.search(r"^ExecStart=(.*)$", unit_file.read_text(), re.M)[1])
                    assert argv[0] == INSTALLED_SCRIPT
                    server = Server(database_url, cwd=tmp_path)
                    server.args = [str(installed), *argv[1:]]
                    server.env = {"PATH": os.environ["PATH"],
                                  **read_env_file(root / "etc/scheduler-app/env")}
                    server.port = port
                    server.start().wait_ready(60)
                continue
            sandboxed = _sandboxed(command, root, throwaway_role, port)
            result = subprocess.run(["bash", "-ec", sandboxed], cwd=checkout, env=env,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{sandboxed}\n{result.stdout}\n{result.stderr}"
            ran.append(f"ran: {command}")
            if command.endswith("/etc/scheduler-app/env"):  # installed: the edit the README asks for
                env_file = root / "etc/scheduler-app/env"
                assert oct(env_file.stat().st_mode & 0o777) == "0o600"
                text = re.sub(r"^DATABASE_URL=.*$", f"DATABASE_URL={database_url}",
                              env_file.read_text(), flags=re.M)
                env_file.write_text(text.replace("SCHEDULER_PORT=8000", f"SCHEDULER_PORT={port}"))
            if command.startswith("sudo install -m 0644 deploy/scheduler-app.service"):
                units = root / "etc/systemd/system"
                for name in UNITS:
                    unit_file = units / name
                    (tmp_path / name).write_text(
                        unit_file.read_text().replace(INSTALLED_SCRIPT, str(installed)))
                verify = subprocess.run([systemd_analyze, "verify", *(str(tmp_path / n) for n in UNITS)],
                                        capture_output=True, text=True, timeout=60)
                assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
            if command.startswith("curl "):
                assert json.loads(result.stdout)["status"] == "ready", result.stdout
            if "init-db" in command:
                assert "time_slots" in result.stdout
            if "pg_dump" in command:
                [dump] = checkout.glob("scheduler-*.dump")
                assert dump.read_bytes().startswith(b"PGDMP")
    finally:
        if server is not None:
            server.stop()
    print("\n".join(ran))
    assert sum(line.startswith("ran: ") for line in ran) == len(ran) - 4  # useradd, 3 x systemctl
