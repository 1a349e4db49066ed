"""What the web server keeps across restarts: users, tokens, programs, the queue, the audit log.

One SQLite file (``<data_dir>/labbridge.sqlite``), shared with the job store. Every
table here has a name of its own so that the job store's tables never collide.
Programs are stored by the SHA-256 of their bytes, so a queued job names the exact
bytes that were checked. Calls are short and synchronous behind one lock; the
request handlers that call them run in FastAPI's thread pool or are quick enough
for the event loop.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "labbridge.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS web_program_blobs (
    hash TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL REFERENCES web_program_blobs(hash),
    name TEXT NOT NULL,
    username TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL,
    machine TEXT NOT NULL,
    ok INTEGER NOT NULL,
    report TEXT NOT NULL,
    username TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    machine TEXT NOT NULL,
    hash TEXT NOT NULL,
    name TEXT NOT NULL,
    check_id INTEGER NOT NULL,
    submitted_by TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    started_by TEXT,
    started_at REAL,
    finished_at REAL,
    job_id TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS web_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    username TEXT,
    machine TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS web_alarm_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    machine TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS web_audit_time ON web_audit(time);
CREATE INDEX IF NOT EXISTS web_alarm_machine ON web_alarm_log(machine, time);
"""

QUEUE_OPEN = ("queued", "running")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "disabled": self.disabled, "created_at": self.created_at}


class Store:
    """Thin, typed access to the web tables. Safe to call from several threads."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.programs_dir = self.data_dir / "programs"
        self.programs_dir.mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    # users -----------------------------------------------------------------
    def user_count(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM web_users")
        return int(row["n"]) if row else 0

    def add_user(self, username: str, password_hash: str, role: str) -> User:
        now = time.time()
        self._exec(
            "INSERT INTO web_users(username, password_hash, role, disabled, created_at) VALUES (?,?,?,0,?)",
            (username, password_hash, role, now),
        )
        return User(username, role, False, now)

    def get_user(self, username: str) -> tuple[User, str] | None:
        row = self._one("SELECT * FROM web_users WHERE username=?", (username,))
        if row is None:
            return None
        return User(row["username"], row["role"], bool(row["disabled"]), row["created_at"]), row["password_hash"]

    def list_users(self) -> list[User]:
        rows = self._all("SELECT * FROM web_users ORDER BY username")
        return [User(r["username"], r["role"], bool(r["disabled"]), r["created_at"]) for r in rows]

    def update_user(
        self, username: str, *, role: str | None = None, password_hash: str | None = None, disabled: bool | None = None
    ) -> None:
        if role is not None:
            self._exec("UPDATE web_users SET role=? WHERE username=?", (role, username))
        if password_hash is not None:
            self._exec("UPDATE web_users SET password_hash=? WHERE username=?", (password_hash, username))
        if disabled is not None:
            self._exec("UPDATE web_users SET disabled=? WHERE username=?", (int(disabled), username))

    def delete_user(self, username: str) -> None:
        self._exec("DELETE FROM web_users WHERE username=?", (username,))

    # tokens ----------------------------------------------------------------
    def add_token(self, token_id: str, token_hash: str, username: str, ttl: float) -> dict[str, Any]:
        now = time.time()
        self._exec(
            "INSERT INTO web_tokens(id, token_hash, username, created_at, expires_at) VALUES (?,?,?,?,?)",
            (token_id, token_hash, username, now, now + ttl),
        )
        return {"id": token_id, "username": username, "created_at": now, "expires_at": now + ttl}

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM web_tokens WHERE token_hash=?", (token_hash,))

    def token(self, token_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM web_tokens WHERE id=?", (token_id,))

    def touch_token(self, token_id: str) -> None:
        self._exec("UPDATE web_tokens SET last_used=? WHERE id=?", (time.time(), token_id))

    def list_tokens(self, username: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, username, created_at, expires_at, revoked_at, last_used FROM web_tokens"
        if username is None:
            return self._all(sql + " ORDER BY created_at DESC")
        return self._all(sql + " WHERE username=? ORDER BY created_at DESC", (username,))

    def revoke_token(self, token_id: str) -> bool:
        cur = self._exec(
            "UPDATE web_tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (time.time(), token_id)
        )
        return cur.rowcount > 0

    def revoke_user_tokens(self, username: str) -> list[str]:
        ids = [r["id"] for r in self._all(
            "SELECT id FROM web_tokens WHERE username=? AND revoked_at IS NULL", (username,))]
        self._exec("UPDATE web_tokens SET revoked_at=? WHERE username=? AND revoked_at IS NULL",
                   (time.time(), username))
        return ids

    # programs --------------------------------------------------------------
    def add_program(self, data: bytes, name: str, username: str, lines: int) -> dict[str, Any]:
        digest = sha256(data)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO web_program_blobs(hash, data, size, lines, created_at) VALUES (?,?,?,?,?)",
                (digest, data, len(data), lines, now),
            )
            cur = self._db.execute(
                "INSERT INTO web_uploads(hash, name, username, created_at) VALUES (?,?,?,?)",
                (digest, name, username, now),
            )
        return {"hash": digest, "name": name, "size": len(data), "lines": lines, "upload_id": cur.lastrowid,
                "uploaded_by": username, "created_at": now}

    def program_bytes(self, digest: str) -> bytes | None:
        row = self._one("SELECT data FROM web_program_blobs WHERE hash=?", (digest,))
        return None if row is None else bytes(row["data"])

    def program_info(self, digest: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT b.hash, b.size, b.lines, u.name, u.username AS uploaded_by, u.created_at "
            "FROM web_program_blobs b JOIN web_uploads u ON u.hash=b.hash WHERE b.hash=? "
            "ORDER BY u.id DESC LIMIT 1",
            (digest,),
        )
        return row

    def list_programs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._all(
            "SELECT u.id AS upload_id, u.hash, u.name, u.username AS uploaded_by, u.created_at, b.size, b.lines "
            "FROM web_uploads u JOIN web_program_blobs b ON b.hash=u.hash ORDER BY u.id DESC LIMIT ?",
            (limit,),
        )

    def program_file(self, digest: str) -> Path:
        """The program's bytes as a file (for the job runner), written once, verified by name."""
        path = self.programs_dir / f"{digest}.nc"
        if not path.exists():
            data = self.program_bytes(digest)
            if data is None:
                raise KeyError(digest)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    # checks ----------------------------------------------------------------
    def add_check(self, digest: str, machine: str, ok: bool, report: dict[str, Any], username: str) -> int:
        cur = self._exec(
            "INSERT INTO web_checks(hash, machine, ok, report, username, created_at) VALUES (?,?,?,?,?,?)",
            (digest, machine, int(ok), json.dumps(report), username, time.time()),
        )
        return int(cur.lastrowid or 0)

    def latest_check(self, digest: str, machine: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT * FROM web_checks WHERE hash=? AND machine=? ORDER BY id DESC LIMIT 1", (digest, machine)
        )
        if row is not None:
            row["report"] = json.loads(row["report"])
            row["ok"] = bool(row["ok"])
        return row

    # queue -----------------------------------------------------------------
    def enqueue(self, machine: str, digest: str, name: str, check_id: int, username: str, note: str) -> dict[str, Any]:
        cur = self._exec(
            "INSERT INTO web_queue(machine, hash, name, check_id, submitted_by, submitted_at, note, state) "
            "VALUES (?,?,?,?,?,?,?, 'queued')",
            (machine, digest, name, check_id, username, time.time(), note),
        )
        entry = self.queue_entry(int(cur.lastrowid or 0))
        assert entry is not None
        return entry

    def queue_entry(self, entry_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM web_queue WHERE id=?", (entry_id,))

    def list_queue(self, machine: str | None = None, include_done: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        where, args = [], []
        if machine:
            where.append("machine=?")
            args.append(machine)
        if not include_done:
            where.append("state IN ('queued','running')")
        sql = "SELECT * FROM web_queue" + (" WHERE " + " AND ".join(where) if where else "")
        return self._all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))

    def update_queue(self, entry_id: int, **fields: Any) -> None:
        allowed = {"state", "started_by", "started_at", "finished_at", "job_id", "message"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown queue fields {bad}")
        sets = ", ".join(f"{k}=?" for k in fields)
        self._exec(f"UPDATE web_queue SET {sets} WHERE id=?", (*fields.values(), entry_id))

    def interrupted_running(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM web_queue WHERE state='running'")

    # audit -----------------------------------------------------------------
    def audit(self, username: str | None, machine: str | None, action: str, outcome: str, detail: str = "") -> None:
        self._exec(
            "INSERT INTO web_audit(time, username, machine, action, outcome, detail) VALUES (?,?,?,?,?,?)",
            (time.time(), username, machine, action, outcome, detail[:2000]),
        )

    def audit_log(
        self, limit: int = 200, machine: str | None = None, username: str | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = [], []
        for col, val in (("machine", machine), ("username", username), ("action", action)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        sql = "SELECT * FROM web_audit" + (" WHERE " + " AND ".join(where) if where else "")
        return self._all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))

    # alarm history ---------------------------------------------------------
    def add_alarm(self, machine: str, code: str, message: str, source: str, at: float) -> None:
        self._exec(
            "INSERT INTO web_alarm_log(time, machine, code, message, source) VALUES (?,?,?,?,?)",
            (at, machine, code, message, source),
        )

    def alarms(self, machine: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._all(
            "SELECT time, code, message, source FROM web_alarm_log WHERE machine=? ORDER BY id DESC LIMIT ?",
            (machine, limit),
        )

    # tables of other server modules (classes, preferences) in the same file ------------------
    def ensure_tables(self, schema: str) -> None:
        """Create a module's own tables (``CREATE TABLE IF NOT EXISTS ...``) in this database."""
        with self._lock:
            self._db.executescript(schema)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._exec(sql, args)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._all(sql, args)

    def row(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        return self._one(sql, args)
