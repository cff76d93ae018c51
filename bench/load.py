"""Drive load with wrk (one thread, keep-alive) and read back what bench/load.lua reports."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed (Debian: apt-get install wrk)")
    return path


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    counted: int | None = None  # requests the rate is computed from (book, hot: the POSTs)

    @property
    def rate(self) -> float:
        return (self.counted if self.counted is not None else self.requests) / self.seconds

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")


def run(port: int, mode: str, args: list, seconds: float, connections: int) -> Result:
    """One wrk run against 127.0.0.1:``port``; ``mode`` and ``args`` as in load.lua.

    ``book`` and ``hot`` modes end when every booking is answered (``seconds``
    is only a cap); ``get`` runs for ``seconds``.
    """
    command = [
        wrk_path(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(SCRIPT), f"http://127.0.0.1:{port}", "--", mode, *map(str, args),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stderr: list[str] = []

    def watch() -> None:
        for line in process.stderr:
            if line.strip() == "done":
                process.send_signal(signal.SIGINT)  # wrk prints its summary and exits
            else:
                stderr.append(line)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout = process.stdout.read()
    process.wait()
    watcher.join()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("result ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout}{''.join(stderr)}")
    data = json.loads(line.removeprefix("result "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses=data["statuses"],
        errors=data["errors"],
        counted=args[1] if mode == "book" else args[2] if mode == "hot" else None,
    )
