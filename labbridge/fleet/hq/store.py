"""What headquarters keeps across restarts: every lab, each machine's last state, events by seq, jobs.

Its own SQLite file (``<data_dir>/fleet.sqlite``) beside the users' and tokens' file the web server
uses. Events are keyed by (lab, seq): a replayed event (the lab sent it again because the
acknowledgement was lost) is ignored, so each event is stored exactly once. Jobs across labs are
folded from the ``job.*`` events.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

DB_NAME = "fleet.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_labs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    online INTEGER NOT NULL DEFAULT 0,
    since REAL,
    last_seen REAL,
    version TEXT NOT NULL DEFAULT '',
    machines TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS fleet_machine_state (
    lab TEXT NOT NULL,
    machine TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (lab, machine)
);
CREATE TABLE IF NOT EXISTS fleet_events (
    lab TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    machine TEXT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (lab, seq)
);
CREATE INDEX IF NOT EXISTS fleet_events_recent ON fleet_events(received_at);
CREATE TABLE IF NOT EXISTS fleet_jobs (
    lab TEXT NOT NULL,
    machine TEXT NOT NULL,
    job TEXT NOT NULL,
    program TEXT,
    state TEXT NOT NULL,
    percent INTEGER,
    line INTEGER,
    lines_total INTEGER,
    message TEXT NOT NULL DEFAULT '',
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (lab, machine, job)
);
"""


class FleetStore:
    """Thread-safe access to headquarters' tables (one connection behind one lock)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # labs and states -------------------------------------------------------------
    def save_lab(self, lab: str, name: str, online: bool, since: float | None, last_seen: float, version: str,
                 machines: list[str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO fleet_labs(id, name, online, since, last_seen, version, machines) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET name=excluded.name, online=excluded.online, since=excluded.since, "
                "last_seen=excluded.last_seen, version=excluded.version, machines=excluded.machines",
                (lab, name, int(online), since, last_seen, version, json.dumps(machines)))

    def save_states(self, rows: list[tuple[str, str, dict[str, Any], float]]) -> None:
        """(lab, machine, state, received_at) for each machine whose state changed since the last save."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO fleet_machine_state(lab, machine, state, received_at) VALUES (?,?,?,?) "
                "ON CONFLICT(lab, machine) DO UPDATE SET state=excluded.state, received_at=excluded.received_at",
                [(lab, machine, json.dumps(state), at) for lab, machine, state, at in rows])
            self._db.execute("COMMIT")

    def labs(self) -> list[dict[str, Any]]:
        labs = self._all("SELECT * FROM fleet_labs ORDER BY id")
        for lab in labs:
            lab["machines"] = json.loads(lab["machines"])
            lab["online"] = bool(lab["online"])
        return labs

    def states(self) -> list[tuple[str, str, dict[str, Any], float]]:
        return [(r["lab"], r["machine"], json.loads(r["state"]), r["received_at"])
                for r in self._all("SELECT * FROM fleet_machine_state")]

    # events and jobs ------------------------------------------------------------------
    def add_event(self, lab: str, event: dict[str, Any]) -> bool:
        """Store one event; False if this (lab, seq) was already stored (a replay)."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO fleet_events(lab, seq, time, machine, kind, body, received_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (lab, event["seq"], event["time"], event.get("machine"), event["kind"], json.dumps(event), now))
            fresh = cur.rowcount > 0
            if fresh and str(event["kind"]).startswith("job."):
                self._fold_job(lab, event)
        return fresh

    def _fold_job(self, lab: str, e: dict[str, Any]) -> None:
        """Keep one row per job from its events (lock held)."""
        kind, machine = e["kind"], e.get("machine") or ""
        job_id = e.get("job_id")
        job = str(job_id) if job_id else (f"entry-{e['entry']}" if e.get("entry") is not None else "")
        if kind == "job.queued" or not job:
            return
        state = {"job.started": "running", "job.progress": "running"}.get(kind, str(e.get("outcome") or "finished"))
        percent = e.get("percent") if kind == "job.progress" else (100 if kind == "job.finished" and state in (
            "done", "completed") else None)
        self._db.execute(
            "INSERT INTO fleet_jobs(lab, machine, job, program, state, percent, line, lines_total, message, "
            "started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(lab, machine, job) DO UPDATE SET "
            "program=COALESCE(excluded.program, program), state=excluded.state, "
            "percent=COALESCE(excluded.percent, percent), line=COALESCE(excluded.line, line), "
            "lines_total=COALESCE(excluded.lines_total, lines_total), message=excluded.message, "
            "finished_at=COALESCE(excluded.finished_at, finished_at)",
            (lab, machine, job, e.get("program"), state, percent, e.get("line"), e.get("lines_total"),
             str(e.get("message") or ""), e["time"] if kind == "job.started" else None,
             e["time"] if kind == "job.finished" else None))

    def events(self, lab: str | None = None, machine: str | None = None, kind: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        where, args = [], []
        for col, val in (("lab", lab), ("machine", machine)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        if kind:
            where.append("kind LIKE ?")
            args.append(kind.replace("*", "%"))
        sql = "SELECT lab, body, received_at FROM fleet_events" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._all(sql + " ORDER BY time DESC, seq DESC LIMIT ?", (*args, limit))
        return [{"lab": r["lab"], **json.loads(r["body"]), "received_at": r["received_at"]} for r in rows]

    def seqs(self, lab: str) -> list[int]:
        return [r["seq"] for r in self._all("SELECT seq FROM fleet_events WHERE lab=? ORDER BY seq", (lab,))]

    def jobs(self, lab: str | None = None, machine: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = [], []
        for col, val in (("lab", lab), ("machine", machine)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        sql = "SELECT * FROM fleet_jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return self._all(sql + " ORDER BY COALESCE(started_at, finished_at) DESC LIMIT ?", (*args, limit))
