"""What the poll remembers: which study (by UID hash) was scored by which bundles (SQLite), the time of each
poll, and an append-only audit log. No identifier is stored: study UIDs only as salted hashes."""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS scored (study TEXT NOT NULL, bundles TEXT NOT NULL, sr_uid TEXT NOT NULL,
                                   harmonisation TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (study, bundles));
CREATE TABLE IF NOT EXISTS polls (time TEXT NOT NULL, day TEXT NOT NULL);
"""


def now() -> datetime:
    return datetime.now(UTC)


def uid_hash(uid: str, salt: str) -> str:
    """Pseudonym of a DICOM UID within a study (salted by the study name, so two studies' hashes differ)."""
    return hashlib.sha256(f"{salt}\0{uid}".encode()).hexdigest()[:16]


def bundles_key(bundle_hashes: list[str]) -> str:
    """One key for the set of bundles a study is scored by: a new bundle means a new score."""
    return hashlib.sha256("\n".join(sorted(bundle_hashes)).encode()).hexdigest()[:16]


def open_state(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    return conn


def is_done(conn: sqlite3.Connection, study: str, bundles: str) -> bool:
    return conn.execute("SELECT 1 FROM scored WHERE study = ? AND bundles = ?", (study, bundles)).fetchone() is not None


def mark_done(conn: sqlite3.Connection, study: str, bundles: str, sr_uid: str, harmonisation: str) -> None:
    """Recorded only after the SR is stored in the archive (a crash before leaves the study to the next poll)."""
    with conn:
        conn.execute("INSERT OR REPLACE INTO scored VALUES (?, ?, ?, ?, ?)",
                     (study, bundles, sr_uid, harmonisation, now().isoformat(timespec="seconds")))


def done_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM scored").fetchone()[0]


def last_poll_day(conn: sqlite3.Connection) -> str | None:
    """YYYYMMDD of the previous poll's start (query.since: last_poll)."""
    row = conn.execute("SELECT day FROM polls ORDER BY time DESC LIMIT 1").fetchone()
    return row[0] if row else None


def record_poll(conn: sqlite3.Connection, started: datetime) -> None:
    with conn:
        conn.execute("INSERT INTO polls VALUES (?, ?)", (started.isoformat(timespec="seconds"),
                                                         started.strftime("%Y%m%d")))


def audit(path: Path, study: str, models: list[str], outcome: str) -> None:
    """One tab-separated line: UTC time, study UID hash, models, outcome (ok, skipped, failed: reason ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = "\t".join([now().isoformat(timespec="seconds"), study, ",".join(models), outcome.replace("\n", " ")])
    with open(path, "a") as fh:
        fh.write(line + "\n")
