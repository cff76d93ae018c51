"""deploy/: the systemd units verify, their ExecStart lines work as written, and the
env file and the nginx example agree with what the service reads and trusts, and a
real nginx with the example serves the API over TLS."""

from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from support import SCRIPT, Server, free_port, request, unavailable

from scheduler_app.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["scheduler-app.service", "scheduler-app-seed.service", "scheduler-app-seed.timer",
         "scheduler-app-relay.service"]
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


def _tool(path: str, package: str) -> str:
    """``path`` if it can be run; else the test skips, or fails under CI."""
    if not os.access(path, os.X_OK):
        unavailable(f"{path} is missing (Debian package {package})")
    return path


@pytest.fixture
def systemd_analyze():
    return _tool(SYSTEMD_ANALYZE, "systemd")


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
    for name in ("scheduler-app.service", "scheduler-app-seed.service",
                 "scheduler-app-relay.service"):
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


# --- deploy/nginx.conf, run by a real nginx in front of the unit's ExecStart -----

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once"
    return text.replace(old, new)


def nginx_site(tmp_path: Path, upstream: int, http: int, https: int) -> str:
    """deploy/nginx.conf as written, but on this machine's free ports, IPv4 only,
    with a certificate made for the test (for scheduler.example.com and 127.0.0.1)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [_tool(shutil.which("openssl") or "/usr/bin/openssl", "openssl"), "req", "-x509",
         "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=scheduler.example.com",
         "-addext", "subjectAltName=DNS:scheduler.example.com,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    site = (DEPLOY / "nginx.conf").read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("/etc/ssl/certs/scheduler.example.com.pem", str(cert)),
        ("/etc/ssl/private/scheduler.example.com.key", str(key)),
    ):
        site = _replace_once(site, old, new)
    return site


@pytest.fixture
def nginx(tmp_path):
    """``nginx(site)`` runs nginx in the foreground with ``site`` in its http block;
    stopped after the test."""
    binary = _tool(NGINX, "nginx")
    processes = []

    def start(site: str) -> Path:
        temp = tmp_path / "nginx"
        temp.mkdir()
        (temp / "site.conf").write_text(site)
        paths = "".join(f"    {kind}_temp_path {temp / kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (temp / "nginx.conf").write_text(
            f"daemon off;\nmaster_process off;\npid {temp / 'nginx.pid'};\n"
            f"error_log {temp / 'error.log'} warn;\nevents {{}}\n"
            f"http {{\n    access_log {temp / 'access.log'};\n{paths}"
            f"    include {temp / 'site.conf'};\n}}\n"
        )
        check = subprocess.run([binary, "-t", "-c", str(temp / "nginx.conf")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        assert "[warn]" not in check.stderr, check.stderr
        processes.append(subprocess.Popen([binary, "-c", str(temp / "nginx.conf")]))
        return temp

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _https(port: int, cafile: Path, method: str, path: str, body: bytes | None = None):
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _wait_for(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def test_nginx_conf_serves_the_api_over_tls_in_front_of_the_unit(tmp_path, nginx):
    """A real nginx with deploy/nginx.conf in front of the unit's ExecStart: TLS,
    the redirect from http, the forwarded scheme and request id the service trusts,
    a booking, and nginx's own refusals as JSON."""
    upstream, http_port, https_port = free_port(), free_port(), free_port()
    env = service_env(tmp_path, DATABASE_URL="sqlite:///scheduler.db",
                      SCHEDULER_PORT=str(upstream))
    server = Server(env["DATABASE_URL"], cwd=tmp_path)
    server.args, server.env, server.port = exec_start("scheduler-app.service"), env, upstream
    cert = tmp_path / "cert.pem"
    try:
        server.start().wait_ready()
        logs = nginx(nginx_site(tmp_path, upstream, http_port, https_port))
        _wait_for(https_port)

        status, headers, body = _https(https_port, cert, "GET", "/availability")
        assert status == 200, body
        slots = json.loads(body)
        assert len(slots) == 80  # SCHEDULER_SEED_DAYS=5 in env.example
        request_id = headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, kept by the service

        # The service builds its redirect from X-Forwarded-Proto: https, not http.
        status, headers, _ = _https(https_port, cert, "GET", "/availability/")
        assert status == 307 and headers["location"].startswith("https://"), headers

        status, headers, body = _https(
            https_port, cert, "POST", "/book",
            json.dumps({"slot_id": slots[0]["id"], "email": "lead@example.com"}).encode())
        assert status == 200, body
        booking_id = headers["x-request-id"]

        status, headers, body = _https(https_port, cert, "POST", "/book", b"x" * 20_000)
        assert status == 413 and headers["content-type"] == "application/json", (status, body)
        assert json.loads(body)["detail"].startswith("Request body too large")

        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        conn.request("GET", "/availability", headers={"Host": "scheduler.example.com"})
        response = conn.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == "https://scheduler.example.com/availability"
        conn.close()
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    by_id = {}
    for line in lines:  # env.example asks for JSON lines
        by_id.setdefault(line["request_id"], []).append(line)
    assert request_id in by_id  # nginx's id on the service's lines of that request
    [booked] = [line for line in by_id[booking_id] if line["logger"] == "scheduler_app.booking"]
    assert (booked["slot_id"], booked["outcome"]) == (slots[0]["id"], "booked")

    # With the service gone, nginx's 502 becomes the service's JSON 503.
    status, headers, body = _https(https_port, cert, "GET", "/availability")
    assert status == 503 and headers["retry-after"] == "5", (status, body)
    assert json.loads(body)["detail"].startswith("The service is temporarily unavailable")
    assert (logs / "access.log").read_text().count("/availability") >= 3


def _read_frames(response, until: str, seconds: float = 10) -> str:
    """Read a streamed response until ``until`` appears (within ``seconds``)."""
    text, deadline = "", time.monotonic() + seconds
    while until not in text:
        assert time.monotonic() < deadline, f"no {until!r} in {text!r}"
        chunk = response.read1(65536)
        assert chunk, f"the stream ended before {until!r}: {text!r}"
        text += chunk.decode()
    return text


def test_nginx_conf_streams_the_live_feed_unbuffered_and_over_http2(tmp_path, nginx):
    """The stream's location as deployed: each event passes nginx at once (nothing
    buffered), an idle stream outlives the pings, and browsers get HTTP/2."""
    conf = (DEPLOY / "nginx.conf").read_text()
    location = re.search(r"location = /availability/stream \{(.*?)\}", conf, re.S)[1]
    assert "proxy_buffering off;" in location and "proxy_http_version 1.1;" in location
    assert int(re.search(r"proxy_read_timeout (\d+)s;", location)[1]) > 15  # the ping interval

    upstream, http_port, https_port = free_port(), free_port(), free_port()
    env = service_env(tmp_path, DATABASE_URL="sqlite:///scheduler.db",
                      SCHEDULER_PORT=str(upstream))
    server = Server(env["DATABASE_URL"], cwd=tmp_path)
    server.args, server.env, server.port = exec_start("scheduler-app.service"), env, upstream
    cert = tmp_path / "cert.pem"
    try:
        server.start().wait_ready()
        nginx(nginx_site(tmp_path, upstream, http_port, https_port))
        _wait_for(https_port)
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=10)
        conn.request("GET", "/availability/stream")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        assert "event: ping" in _read_frames(response, "\n\n")

        _, _, body = _https(https_port, cert, "GET", "/availability")
        slot_id = json.loads(body)[0]["id"]
        status, _, body = _https(https_port, cert, "POST", "/book", json.dumps(
            {"slot_id": slot_id, "email": "lead@example.com"}).encode())
        assert status == 200, body
        frames = _read_frames(response, '"state":"booked"')
        assert f'"id":{slot_id},' in frames and "event: slot" in frames
        conn.close()

        curl = _tool(shutil.which("curl") or "/usr/bin/curl", "curl")
        result = subprocess.run(
            [curl, "--http2", "-sS", "-i", "-N", "--max-time", "3", "--cacert", str(cert),
             f"https://127.0.0.1:{https_port}/availability/stream"],
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 28, result.stderr  # still streaming when curl gave up
        assert result.stdout.startswith("HTTP/2 200"), result.stdout[:200]
        assert "event: ping" in result.stdout
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output[-2000:]


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
            if "init-db" in command:  # creates the schema, then (upgrading) finds it current
                assert ("Created the time_slots table" in result.stdout
                        or result.stdout.startswith("The schema is up to date")), result.stdout
            if "pg_dump" in command:
                [dump] = checkout.glob("scheduler-*.dump")
                assert dump.read_bytes().startswith(b"PGDMP")
    finally:
        if server is not None:
            server.stop()
    print("\n".join(ran))
    assert sum(line.startswith("ran: ") for line in ran) == len(ran) - 4  # useradd, 3 x systemctl
