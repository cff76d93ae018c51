"""Smoke test of the benchmark (bench/): one short round runs, and checks itself.

No figure is asserted (the machine may be busy); what must hold is that the
run completes, that every booking answered 200 was booked in the database and
no other (the benchmark verifies it and reports ``..._book_rows_equal_200s=1``),
and that it ends with the ``key=value`` line scripts read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support import unavailable

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_and_its_bookings_match_the_table():
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (Debian: apt-get install wrk)",
                    "the benchmark smoke test")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    facts = dict(pair.split("=", 1) for pair in lines[-1].split())
    assert facts["ok"] == "1"
    assert facts["sqlite_book_rows_equal_200s"] == "1"
    assert int(facts["sqlite_w1_book_200s"]) > 0
    for key in ("sqlite_w1_get16_rps", "sqlite_w1_get16_x_fastapi", "sqlite_w1_get16_x_bare",
                "sqlite_w1_get16_x_fastapi_sync",
                "sqlite_w1_book_p99_ms", "sqlite_w1_startup_s", "sqlite_w1_rss_mb"):
        assert float(facts[key]) > 0, key
    assert any(line.startswith("GET /availability, 16 seeded slots") for line in lines)
