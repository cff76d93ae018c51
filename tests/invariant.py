"""The booking invariant, checked over a whole database with the plain driver.

Each slot is booked if and only if exactly one confirmed booking points at
it, with the slot's ``booked_by_email``; a free slot has no confirmed booking
and no email. Imported by name (``import invariant``), like ``support``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg2

# One query: the slots breaking the invariant, with what they hold.
VIOLATIONS = """
SELECT s.id, s.is_booked, s.booked_by_email, b.n, b.low, b.high
FROM time_slots s
LEFT JOIN (
    SELECT slot_id, COUNT(*) AS n, MIN(email) AS low, MAX(email) AS high
    FROM bookings WHERE status = 'confirmed' GROUP BY slot_id
) b ON b.slot_id = s.id
WHERE (s.is_booked AND (b.n IS NULL OR b.n <> 1 OR s.booked_by_email IS NULL
                        OR b.low <> s.booked_by_email))
   OR (NOT s.is_booked AND (b.n IS NOT NULL OR s.booked_by_email IS NOT NULL))
ORDER BY s.id
"""

_TABLES = {
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
              "AND name IN ('time_slots', 'bookings')",
    "postgres": "SELECT (to_regclass('public.time_slots') IS NOT NULL)::int "
                "+ (to_regclass('public.bookings') IS NOT NULL)::int",
}


def connect(url: str):
    """A plain connection to ``url``, or None when a SQLite file was never made."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            return None
        return sqlite3.connect(path, timeout=30), "sqlite"
    return psycopg2.connect(url, connect_timeout=5), "postgres"


def violations(url: str) -> list[tuple] | None:
    """The slots of the database at ``url`` that break the invariant; None when it
    has no ``time_slots`` or ``bookings`` table (a legacy or dropped schema)."""
    opened = connect(url)
    if opened is None:
        return None
    conn, kind = opened
    try:
        cursor = conn.cursor()
        cursor.execute(_TABLES[kind])
        if cursor.fetchone()[0] != 2:
            return None
        cursor.execute(VIOLATIONS)
        return cursor.fetchall()
    finally:
        conn.close()


def check(url: str) -> bool:
    """Assert the invariant over the database at ``url``; return whether it was
    checked (False: no bookings table to check)."""
    found = violations(url)
    if found is None:
        return False
    assert not found, (
        f"booking invariant broken on {len(found)} slot(s) (slot id, is_booked, "
        f"booked_by_email, confirmed bookings, min email, max email): {found[:10]}"
    )
    return True
