"""What the web server keeps across restarts: users, tokens, programs, the queue, the audit log.

One SQLite file (:func:`labbridge.config.database_path`), shared with the job store. Every
table here has a name of its own so that the job store's tables never collide.
Programs are stored by the SHA-256 of their bytes, so a queued job names the exact
bytes that were checked.

Storage may fail (a full disk): writes go through :class:`labbridge.durable.Database`,
which keeps what cannot be written and writes it when space returns. Tokens, users
and queue states are also held in memory, so that sign-in checks never wait for the
disk and the states reported stay true while records wait to be written. The data
directory is private to the server's user (0700, database 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labbridge.config import database_path
from labbridge.durable import Database, StorageFull, StorageStatus, storage_problem

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS web_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    last_used REAL,
    scope TEXT NOT NULL DEFAULT 'full',
    label TEXT NOT NULL DEFAULT ''
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
    detail TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL DEFAULT 1,
    agg_key TEXT
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

MIGRATIONS = (  # columns added after the first release: (table, column, declaration)
    ("web_users", "must_change", "INTEGER NOT NULL DEFAULT 0"),
    ("web_tokens", "scope", "TEXT NOT NULL DEFAULT 'full'"),
    ("web_tokens", "label", "TEXT NOT NULL DEFAULT ''"),
    ("web_audit", "count", "INTEGER NOT NULL DEFAULT 1"),
    ("web_audit", "agg_key", "TEXT"),
)
AFTER_MIGRATIONS = "CREATE UNIQUE INDEX IF NOT EXISTS web_audit_agg ON web_audit(agg_key) WHERE agg_key IS NOT NULL;"

QUEUE_OPEN = ("queued", "running")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CACHE_SECONDS = 30.0
"""How long a token or user read from the database is trusted before it is read again (this process's own
changes update the cache at once; the re-read only catches another process's edits)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    created_at: float
    must_change: bool = False

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "disabled": self.disabled, "created_at": self.created_at,
                "must_change_password": self.must_change}


def private_dir(path: Path) -> None:
    """Create ``path`` readable by this user only (0700); tighten it if it exists and is ours."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 before SQLite opens it (its -wal and -shm files copy the mode)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o600)


class Store:
    """Typed access to the web tables. Safe to call from several threads; writes survive a full disk."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        private_dir(self.data_dir)
        self.path = database_path(self.data_dir)
        self.programs_dir = self.data_dir / "programs"
        private_dir(self.programs_dir)
        private_file(self.path)
        self.db = Database(self.path, SCHEMA)
        self.db.ensure_columns(MIGRATIONS, AFTER_MIGRATIONS)
        # In memory: token and user rows (by token hash / user name) with the time they were read, and how
        # many of their writes still wait for the disk (a row with writes waiting is never re-read).
        self._tokens: dict[str, tuple[dict[str, Any], float]] = {}
        self._users: dict[str, tuple[dict[str, Any], float]] = {}
        self._queue: dict[int, dict[str, Any]] = {}
        self._waiting: dict[tuple[str, str | int], int] = {}
        self.audit_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Told of every audit entry as it is made (the fleet link forwards them); must not block."""

    def close(self) -> None:
        self.db.close()

    def storage(self) -> StorageStatus:
        return self.db.status()

    def _hold(self, key: tuple[str, str | int]) -> Any:
        """Mark ``key``'s in-memory row as ahead of the disk; the returned callback releases it once written."""

        def kept() -> Any:
            self._waiting[key] = self._waiting.get(key, 0) + 1

            def written() -> None:
                left = self._waiting.get(key, 1) - 1
                if left <= 0:
                    self._waiting.pop(key, None)
                    if key[0] == "queue":
                        self._queue.pop(int(key[1]), None)
                else:
                    self._waiting[key] = left

            return written

        return kept

    # users -----------------------------------------------------------------
    def user_count(self) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM web_users")
        return int(row["n"]) if row else 0

    def add_user(self, username: str, password_hash: str, role: str, must_change: bool = False) -> User:
        now = time.time()
        self.db.write(("INSERT INTO web_users(username, password_hash, role, disabled, created_at, must_change) "
                       "VALUES (?,?,?,0,?,?)", (username, password_hash, role, now, int(must_change))),
                      defer=False, what=f"user {username}")
        self._users.pop(username, None)
        return User(username, role, False, now, must_change)

    def _user_row(self, username: str) -> dict[str, Any] | None:
        cached = self._users.get(username)
        if cached is not None and (time.monotonic() - cached[1] < CACHE_SECONDS):
            return cached[0]
        row = self.db.one("SELECT * FROM web_users WHERE username=?", (username,))
        if row is not None:
            self._users[username] = (row, time.monotonic())
        else:
            self._users.pop(username, None)
        return row

    def get_user(self, username: str) -> tuple[User, str] | None:
        row = self._user_row(username)
        if row is None:
            return None
        return _user(row), row["password_hash"]

    def list_users(self) -> list[User]:
        return [_user(r) for r in self.db.all("SELECT * FROM web_users ORDER BY username")]

    def update_user(self, username: str, *, role: str | None = None, password_hash: str | None = None,
                    disabled: bool | None = None, must_change: bool | None = None) -> None:
        fields = {k: v for k, v in (("role", role), ("password_hash", password_hash),
                                     ("disabled", None if disabled is None else int(disabled)),
                                     ("must_change", None if must_change is None else int(must_change)))
                  if v is not None}
        if not fields:
            return
        sets = ", ".join(f"{k}=?" for k in fields)
        self.db.write((f"UPDATE web_users SET {sets} WHERE username=?", (*fields.values(), username)),
                      defer=False, what=f"the change to user {username}")
        self._users.pop(username, None)

    def delete_user(self, username: str) -> None:
        self.db.write(("DELETE FROM web_users WHERE username=?", (username,)), defer=False,
                      what=f"deleting user {username}")
        self._users.pop(username, None)

    # tokens ----------------------------------------------------------------
    def add_token(self, token_id: str, token_hash: str, username: str, ttl: float, scope: str = "full",
                  label: str = "") -> dict[str, Any]:
        """Record a new token; when the disk is full it is kept in memory and works at once."""
        now = time.time()
        row = {"id": token_id, "token_hash": token_hash, "username": username, "created_at": now,
               "expires_at": now + ttl, "revoked_at": None, "last_used": None, "scope": scope, "label": label}
        self._tokens[token_hash] = (row, time.monotonic())
        self.db.write(("INSERT INTO web_tokens(id, token_hash, username, created_at, expires_at, scope, label) "
                       "VALUES (?,?,?,?,?,?,?)", (token_id, token_hash, username, now, now + ttl, scope, label)),
                      what=f"token of {username}", deferred=self._hold(("token", token_hash)))
        return {k: row[k] for k in ("id", "username", "created_at", "expires_at", "scope", "label")}

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        cached = self._tokens.get(token_hash)
        if cached is not None and (("token", token_hash) in self._waiting
                                   or time.monotonic() - cached[1] < CACHE_SECONDS):
            return dict(cached[0])
        row = self.db.one("SELECT * FROM web_tokens WHERE token_hash=?", (token_hash,))
        if row is None:
            self._tokens.pop(token_hash, None)
            return None
        self._tokens[token_hash] = (row, time.monotonic())
        return dict(row)

    def token(self, token_id: str) -> dict[str, Any] | None:
        for row, _ in list(self._tokens.values()):
            if row["id"] == token_id:
                return dict(row)
        return self.db.one("SELECT * FROM web_tokens WHERE id=?", (token_id,))

    def _update_cached_tokens(self, match: Any, **fields: Any) -> None:
        for token_hash, (row, loaded) in list(self._tokens.items()):
            if match(row):
                self._tokens[token_hash] = ({**row, **fields}, loaded)

    def touch_token(self, token_id: str, when: float | None = None) -> None:
        """Record ``last_used`` (never waits for the disk; repeated stamps of one token coalesce)."""
        now = when or time.time()
        self._update_cached_tokens(lambda r: r["id"] == token_id, last_used=now)
        self.db.write(("UPDATE web_tokens SET last_used=? WHERE id=?", (now, token_id)), wait=False,
                      key=("touch", token_id), what="token last use", droppable=True)

    def list_tokens(self, username: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, username, created_at, expires_at, revoked_at, last_used, scope, label FROM web_tokens"
        rows = (self.db.all(sql + " ORDER BY created_at DESC") if username is None
                else self.db.all(sql + " WHERE username=? ORDER BY created_at DESC", (username,)))
        by_id = {r["id"]: r for r in rows}
        for row, _ in list(self._tokens.values()):  # what memory knows is newer than the disk
            if username is None or row["username"] == username:
                if row["id"] in by_id or ("token", row["token_hash"]) in self._waiting:
                    by_id[row["id"]] = {k: row[k] for k in ("id", "username", "created_at", "expires_at",
                                                             "revoked_at", "last_used", "scope", "label")}
        return sorted(by_id.values(), key=lambda r: r["created_at"], reverse=True)

    def revoke_token(self, token_id: str) -> bool:
        row = self.token(token_id)
        if row is None or row["revoked_at"] is not None:
            return False
        now = time.time()
        self._update_cached_tokens(lambda r: r["id"] == token_id, revoked_at=now)
        self.db.write(("UPDATE web_tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (now, token_id)),
                      what=f"revoking token {token_id}", deferred=self._hold(("token", row["token_hash"])))
        return True

    def revoke_user_tokens(self, username: str) -> list[str]:
        ids = [r["id"] for r in self.list_tokens(username) if r["revoked_at"] is None]
        for token_id in ids:
            self.revoke_token(token_id)
        return ids

    # programs --------------------------------------------------------------
    def add_program(self, data: bytes, name: str, username: str, lines: int) -> dict[str, Any]:
        """Store an upload (raises StorageFull when it cannot: programs are too big to hold in memory)."""
        digest = sha256(data)
        now = time.time()
        upload_id = self.db.write(
            ("INSERT OR IGNORE INTO web_program_blobs(hash, data, size, lines, created_at) VALUES (?,?,?,?,?)",
             (digest, data, len(data), lines, now)),
            ("INSERT INTO web_uploads(hash, name, username, created_at) VALUES (?,?,?,?)",
             (digest, name, username, now)),
            defer=False, what=f"the upload {name}")
        return {"hash": digest, "name": name, "size": len(data), "lines": lines, "upload_id": upload_id,
                "uploaded_by": username, "created_at": now}

    def program_bytes(self, digest: str) -> bytes | None:
        row = self.db.one("SELECT data FROM web_program_blobs WHERE hash=?", (digest,))
        return None if row is None else bytes(row["data"])

    def program_info(self, digest: str) -> dict[str, Any] | None:
        return self.db.one(
            "SELECT b.hash, b.size, b.lines, u.name, u.username AS uploaded_by, u.created_at "
            "FROM web_program_blobs b JOIN web_uploads u ON u.hash=b.hash WHERE b.hash=? "
            "ORDER BY u.id DESC LIMIT 1",
            (digest,),
        )

    def list_programs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.db.all(
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
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")  # two threads may write it at once
            try:
                tmp.write_bytes(data)
                tmp.replace(path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise StorageFull(f"the program file could not be written: {storage_problem(exc)} "
                                  f"({self.programs_dir}); free space there and start again") from None
        return path

    # checks ----------------------------------------------------------------
    def add_check(self, digest: str, machine: str, ok: bool, report: dict[str, Any], username: str) -> int:
        check_id = self.db.write(
            ("INSERT INTO web_checks(hash, machine, ok, report, username, created_at) VALUES (?,?,?,?,?,?)",
             (digest, machine, int(ok), json.dumps(report), username, time.time())),
            defer=False, what="the check report")
        return int(check_id or 0)

    def latest_check(self, digest: str, machine: str) -> dict[str, Any] | None:
        row = self.db.one(
            "SELECT * FROM web_checks WHERE hash=? AND machine=? ORDER BY id DESC LIMIT 1", (digest, machine)
        )
        if row is not None:
            row["report"] = json.loads(row["report"])
            row["ok"] = bool(row["ok"])
        return row

    # queue -----------------------------------------------------------------
    def enqueue(self, machine: str, digest: str, name: str, check_id: int, username: str, note: str) -> dict[str, Any]:
        entry_id = self.db.write(
            ("INSERT INTO web_queue(machine, hash, name, check_id, submitted_by, submitted_at, note, state) "
             "VALUES (?,?,?,?,?,?,?, 'queued')", (machine, digest, name, check_id, username, time.time(), note)),
            defer=False, what="the queue entry")
        entry = self.queue_entry(int(entry_id or 0))
        assert entry is not None
        return entry

    def _with_queue_overlay(self, row: dict[str, Any]) -> dict[str, Any]:
        newer = self._queue.get(int(row["id"]))
        return {**row, **newer} if newer else row

    def queue_entry(self, entry_id: int) -> dict[str, Any] | None:
        row = self.db.one("SELECT * FROM web_queue WHERE id=?", (entry_id,))
        return None if row is None else self._with_queue_overlay(row)

    def list_queue(self, machine: str | None = None, include_done: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        where, args = [], []
        if machine:
            where.append("machine=?")
            args.append(machine)
        if not include_done:  # entries whose newer state waits in memory are judged by that state below
            kept = list(self._queue)
            where.append(f"(state IN ('queued','running') OR id IN ({','.join('?' * len(kept)) or 'NULL'}))")
            args.extend(kept)
        sql = "SELECT * FROM web_queue" + (" WHERE " + " AND ".join(where) if where else "")
        rows = [self._with_queue_overlay(r) for r in self.db.all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))]
        return rows if include_done else [r for r in rows if r["state"] in QUEUE_OPEN]

    def update_queue(self, entry_id: int, **fields: Any) -> None:
        """Change a queue entry; when the disk is full the change is kept (and reported) until it can be written."""
        allowed = {"state", "started_by", "started_at", "finished_at", "job_id", "message"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown queue fields {bad}")
        sets = ", ".join(f"{k}=?" for k in fields)
        hold = self._hold(("queue", entry_id))

        def kept() -> Any:
            self._queue[entry_id] = {**self._queue.get(entry_id, {}), **fields}
            return hold()

        self.db.write((f"UPDATE web_queue SET {sets} WHERE id=?", (*fields.values(), entry_id)),
                      what=f"queue entry #{entry_id}", deferred=kept)

    def interrupted_running(self) -> list[dict[str, Any]]:
        return self.db.all("SELECT * FROM web_queue WHERE state='running'")

    # audit -----------------------------------------------------------------
    def audit(self, username: str | None, machine: str | None, action: str, outcome: str, detail: str = "",
              *, agg_key: str | None = None, count: int = 1) -> None:
        """One audit row (never waits for the disk). Rows with an ``agg_key`` are one row per key: a later
        call replaces its count and detail (repeated failed sign-ins from one source in one minute)."""
        now = time.time()
        if agg_key is None or count == 1:  # an aggregated row is told once, when it starts
            entry = {"time": now, "username": username, "machine": machine, "action": action,
                     "outcome": outcome, "detail": detail[:2000]}
            for listener in list(self.audit_listeners):
                listener(entry)
        if agg_key is None:
            self.db.write(("INSERT INTO web_audit(time, username, machine, action, outcome, detail) "
                           "VALUES (?,?,?,?,?,?)", (now, username, machine, action, outcome, detail[:2000])),
                          wait=False, what="audit entry", droppable=True)
            return
        self.db.write(("INSERT INTO web_audit(time, username, machine, action, outcome, detail, count, agg_key) "
                       "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(agg_key) WHERE agg_key IS NOT NULL DO UPDATE SET "
                       "time=excluded.time, detail=excluded.detail, count=excluded.count, username=excluded.username",
                       (now, username, machine, action, outcome, detail[:2000], count, agg_key)),
                      wait=False, key=("audit", agg_key), what="audit entry", droppable=True)

    def audit_log(
        self, limit: int = 200, machine: str | None = None, username: str | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = [], []
        for col, val in (("machine", machine), ("username", username), ("action", action)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        sql = ("SELECT id, time, username, machine, action, outcome, detail, count FROM web_audit"
               + (" WHERE " + " AND ".join(where) if where else ""))
        return self.db.all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))

    # alarm history ---------------------------------------------------------
    def add_alarm(self, machine: str, code: str, message: str, source: str, at: float) -> None:
        self.db.write(("INSERT INTO web_alarm_log(time, machine, code, message, source) VALUES (?,?,?,?,?)",
                       (at, machine, code, message, source)), wait=False, what="alarm record")

    def alarms(self, machine: str, limit: int = 100) -> list[dict[str, Any]]:
        return self.db.all(
            "SELECT time, code, message, source FROM web_alarm_log WHERE machine=? ORDER BY id DESC LIMIT ?",
            (machine, limit),
        )


def _user(row: dict[str, Any]) -> User:
    return User(row["username"], row["role"], bool(row["disabled"]), row["created_at"],
                bool(row.get("must_change", 0)))
