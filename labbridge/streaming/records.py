"""Job records and their event history in SQLite, so a crash or a lost cable leaves an honest trace.

GRBL and DNC jobs alike (the record's ``protocol`` says which). The file
(:func:`labbridge.config.database_path`) is shared with the web server's own
tables (``web_*``); this store owns ``jobs`` and ``job_events`` only. One
connection per store, WAL mode and a busy timeout, so the CLI and the server can
both write the same file. A database written by an older labbridge gets the
columns added since (never dropped or renamed).

A job's record never waits for the disk (a hold must not): saves and events go
through :class:`labbridge.durable.Database` without waiting, are written at once
by its writer thread, and are kept in memory, in order, while the disk is full.
Reads see the newest state either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from labbridge.config import DATA_DIR_ENV, DB_NAME, database_path
from labbridge.durable import Database
from labbridge.errors import ConfigError
from labbridge.streaming.job import Job, JobState

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    machine TEXT NOT NULL,
    program_path TEXT NOT NULL,
    program_name TEXT NOT NULL,
    program_sha256 TEXT NOT NULL,
    user TEXT,
    state TEXT NOT NULL,
    check_mode INTEGER NOT NULL DEFAULT 0,
    from_line INTEGER,
    lines_total INTEGER NOT NULL DEFAULT 0,
    lines_sent INTEGER NOT NULL DEFAULT 0,
    lines_acked INTEGER NOT NULL DEFAULT 0,
    last_acked_line INTEGER,
    error_code TEXT,
    error_message TEXT,
    error_line INTEGER,
    error_block TEXT,
    message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    estimated_seconds REAL,
    eta_seconds REAL,
    protocol TEXT NOT NULL DEFAULT 'grbl',
    last_sent_line INTEGER,
    executed_line INTEGER,
    owner TEXT,
    updated_at REAL
);
CREATE TABLE IF NOT EXISTS job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_machine ON jobs(machine, created_at);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id, id);
"""

_COLUMNS = tuple(Job.__dataclass_fields__)
#: Columns added after the first release: ``ALTER TABLE`` brings an older database up to date.
_ADDED_COLUMNS = {"protocol": "TEXT NOT NULL DEFAULT 'grbl'", "last_sent_line": "INTEGER",
                  "executed_line": "INTEGER", "owner": "TEXT", "updated_at": "REAL"}


def default_db_path() -> Path:
    """``$LABBRIDGE_DATA_DIR/labbridge.sqlite``, else ``./data/labbridge.sqlite``."""
    return database_path()


def resolve_db_path(path: str | os.PathLike[str] | None) -> Path:
    """A directory means the file ``labbridge.sqlite`` inside it; None means the default."""
    if path is None:
        return default_db_path()
    p = Path(path)
    if p.is_dir() or (not p.suffix and not p.exists()):
        return p / DB_NAME
    return p


class JobStore:
    """Typed access to the job tables; safe to call from several threads (one lock, one connection)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_db_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = Database(self.path, SCHEMA, timeout=10.0)
            self._db.ensure_columns(tuple(("jobs", name, decl) for name, decl in _ADDED_COLUMNS.items()))
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the job database: {exc} "
                              f"(set {DATA_DIR_ENV} to a writable directory)") from None
        self._unsaved: dict[str, Job] = {}  # the newest state of jobs whose save waits for the disk
        self._unsaved_events: list[tuple[str, dict[str, Any]]] = []

    @property
    def db(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # jobs ---------------------------------------------------------------------
    @staticmethod
    def _values(job: Job) -> list[Any]:
        values = []
        for name in _COLUMNS:
            value = getattr(job, name)
            if isinstance(value, JobState):
                value = value.value
            elif isinstance(value, bool):
                value = int(value)
            values.append(value)
        return values

    def _keep(self, job: Job) -> Any:
        snapshot = dataclasses.replace(job)

        def kept() -> Any:
            self._unsaved[job.id] = snapshot

            def written() -> None:
                if self._unsaved.get(job.id) is snapshot:
                    del self._unsaved[job.id]

            return written

        return kept

    def create(self, job: Job) -> Job:
        job.updated_at = time.time()
        marks = ",".join("?" for _ in _COLUMNS)
        self._db.write((f"INSERT INTO jobs({','.join(_COLUMNS)}) VALUES ({marks})", tuple(self._values(job))),
                       wait=False, what=f"job {job.id}", deferred=self._keep(job))
        return job

    def save(self, job: Job) -> None:
        """Write every field of ``job`` (the runner calls this on each state change and now and then)."""
        job.updated_at = time.time()
        sets = ",".join(f"{c}=?" for c in _COLUMNS if c != "id")
        values = [v for c, v in zip(_COLUMNS, self._values(job)) if c != "id"]
        self._db.write((f"UPDATE jobs SET {sets} WHERE id=?", (*values, job.id)), wait=False,
                       key=("job", job.id), what=f"job {job.id}", deferred=self._keep(job))

    def get(self, job_id: str) -> Job | None:
        row = self._db.one("SELECT * FROM jobs WHERE id=?", (job_id,))
        newer = self._unsaved.get(job_id)
        if newer is not None:
            return dataclasses.replace(newer)
        return Job.from_row(row) if row is not None else None

    def list_jobs(self, machine: str | None = None, *, states: tuple[JobState, ...] | None = None,
                  limit: int = 100) -> list[Job]:
        """Newest first."""
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if machine is not None:
            sql += " AND machine=?"
            args.append(machine)
        if states:
            sql += f" AND state IN ({','.join('?' for _ in states)})"
            args.extend(s.value for s in states)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        args.append(limit)
        jobs = {j.id: j for j in (Job.from_row(r) for r in self._db.all(sql, tuple(args)))}
        for job in list(self._unsaved.values()):
            if job.machine == machine or machine is None:
                jobs[job.id] = dataclasses.replace(job)
        found = [j for j in jobs.values() if not states or j.state in states]
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]

    # events -------------------------------------------------------------------
    def add_event(self, job_id: str, event: str, **detail: Any) -> None:
        now = time.time()
        entry = (job_id, {"time": now, "event": event, **json.loads(json.dumps(detail, default=str))})

        def kept() -> Any:
            self._unsaved_events.append(entry)
            return lambda: self._unsaved_events.remove(entry)

        self._db.write(("INSERT INTO job_events(job_id, time, event, detail) VALUES (?,?,?,?)",
                        (job_id, now, event, json.dumps(detail, default=str))),
                       wait=False, what=f"job {job_id} event {event}", deferred=kept)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._db.all("SELECT time, event, detail FROM job_events WHERE job_id=? ORDER BY id", (job_id,))
        written = [{"time": r["time"], "event": r["event"], **json.loads(r["detail"])} for r in rows]
        return written + [dict(e) for j, e in list(self._unsaved_events) if j == job_id]
