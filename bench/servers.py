"""The server processes of a run: the service and the references, each on its own port."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Process:
    """A server subprocess; ``startup`` is the time from spawning it to its first 200."""

    def __init__(self, name: str, args: list[str], env: dict, workers: int, log: Path):
        self.name = name
        self.args = args
        self.env = {**os.environ, **env}
        self.workers = workers
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.startup: float | None = None

    def start(self, probe: str = "/availability", seconds: float = 60) -> Process:
        with open(self.log, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                [*self.args, "--port", str(self.port), "--workers", str(self.workers)],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + seconds
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.output()}")
            try:
                if get(self.port, probe, timeout=2)[0] == 200:
                    self.startup = time.perf_counter() - started
                    return self
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} not answering after {seconds} s:\n{self.output()}")
            time.sleep(0.005)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def worker_pids(self) -> list[int]:
        """The processes that serve: the server itself, or its spawned workers."""
        if self.workers == 1:
            return [self.process.pid]
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def rss_mb(self) -> list[float]:
        """Resident memory of each worker, in MB (10^6 bytes)."""
        sizes = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) * 1024 / 1e6)
        return sizes

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def service(name: str, database_url: str, workers: int, log: Path) -> Process:
    """``scheduler-app serve``: the command next to this interpreter, else on PATH."""
    script = Path(sys.executable).with_name("scheduler-app")
    script = str(script) if script.exists() else shutil.which("scheduler-app") or "scheduler-app"
    env = {
        "DATABASE_URL": database_url,
        "SCHEDULER_TIMEZONE": TIMEZONE,
        "SCHEDULER_DB_WAIT_SECONDS": "10",
    }
    return Process(name, [script, "serve"], env, workers, log)


def reference(app: str, payload: Path, workers: int, log: Path) -> Process:
    args = [sys.executable, "-m", "bench.references", app]
    return Process(app, args, {"BENCH_PAYLOAD": str(payload)}, workers, log)


# Not UTC: pydantic writes UTC as "Z", the service as "+00:00"; with an offset
# the FastAPI reference's bytes are the service's.
TIMEZONE = "America/New_York"
