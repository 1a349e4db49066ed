"""SQLite records that survive a full or failing disk: a write that cannot land now is kept and lands later.

A lab laptop's disk fills (a phone backup, a runaway log), its SD card wears out, or
another process holds the database lock. None of that may stop a machine from being
held or cancelled, and none of it may lose the record of what happened. So:

- A write that fails for lack of storage (SQLITE_FULL, SQLITE_IOERR, read-only, locked)
  is kept in memory, in order, and retried until it lands; from then on every later
  write queues behind it, so records land in the order they were made.
- A write that cannot wait (an upload, a new user: the caller needs its row id or the
  bytes are too big to hold) raises :class:`StorageFull` instead, which the web server
  answers with 507.
- ``write(..., wait=False)`` never waits for the database at all: the stop path uses it
  so that a slow disk or a busy lock cannot delay a hold. A writer thread lands it
  within milliseconds when storage is healthy, and reads land it first.

Callers keep an overlay of what is not yet written (see ``Store`` and ``JobStore``) so
that the states they report stay true while storage is down.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labbridge.errors import LabbridgeError
from labbridge.log import get_logger

Statement = tuple[str, tuple[Any, ...]]

connection_factory: type[sqlite3.Connection] = sqlite3.Connection
"""The connection class every :class:`Database` opens (tests put a fault-injecting subclass here)."""

MAX_PENDING = 50_000
RETRY_MIN, RETRY_MAX = 0.5, 5.0
WRITER_IDLE = 10.0  # seconds the writer thread waits for more before it ends

# SQLite primary result codes that mean "storage cannot take this write now" (sqlite3.h).
_STORAGE_CODES = {5: "the database is locked by another process", 6: "the database table is locked",
                  8: "the data directory is read-only", 10: "disk I/O error", 13: "the disk is full",
                  14: "the database file cannot be opened"}
_STORAGE_WORDS = (("disk is full", 13), ("disk i/o error", 10), ("readonly", 8), ("read-only", 8),
                  ("database is locked", 5), ("unable to open", 14))

log = get_logger()


class StorageFull(LabbridgeError):
    """A record that cannot wait could not be written (HTTP 507); the message says why and what to do."""


def storage_problem(exc: BaseException) -> str | None:
    """What an SQLite error says about the storage ("the disk is full"), or None if it is a plain bug."""
    if isinstance(exc, OSError):
        return "the disk is full" if exc.errno == 28 else f"cannot write: {exc.strerror or exc}"
    if not isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError)):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _STORAGE_CODES:
        return _STORAGE_CODES[code & 0xFF]
    text = str(exc).lower()
    for words, primary in _STORAGE_WORDS:
        if words in text:
            return _STORAGE_CODES[primary]
    return None


@dataclass
class _Pending:
    statements: tuple[Statement, ...]
    key: Hashable | None
    what: str
    droppable: bool
    done: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class StorageStatus:
    ok: bool = True
    problem: str | None = None
    since: float | None = None
    pending: int = 0
    dropped: int = 0
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Database:
    """One SQLite connection whose writes are kept in memory, in order, while storage refuses them."""

    def __init__(self, path: str | Path, schema: str, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout,
                                   factory=connection_factory)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._db.executescript(schema)
        self._lock = threading.RLock()  # the connection
        self._qlock = threading.Lock()  # the pending list (never held while waiting for the database)
        self._pending: deque[_Pending] = deque()
        self._status = StorageStatus(path=str(self.path))
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN
        self.listeners: list[Callable[[StorageStatus], None]] = []

    def ensure_columns(self, columns: tuple[tuple[str, str, str], ...], after: str = "") -> None:
        """Add columns that a newer release introduced to a database an older one created."""
        with self._lock:
            for table, column, declaration in columns:
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if after:
                self._db.executescript(after)

    # reads ----------------------------------------------------------------------
    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            self._flush_locked(only_if_healthy=True)
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, args)
        return rows[0] if rows else None

    # writes ---------------------------------------------------------------------
    def write(self, *statements: Statement, wait: bool = True, defer: bool = True, key: Hashable | None = None,
              what: str = "record", droppable: bool = False,
              deferred: Callable[[], Callable[[], None] | None] | None = None) -> int | None:
        """Run ``statements`` as one transaction; returns the last row id, or None if it was kept for later.

        ``defer=False``: raise StorageFull rather than keep it. ``wait=False``: never wait for the
        database (the writer thread lands it). ``key``: a later pending write with the same key
        replaces this one (last-used stamps). ``deferred`` is called when the write is kept and may
        return a callback to run once it lands (to drop the caller's overlay).
        """
        item = _Pending(tuple(statements), key, what, droppable)
        if not wait:
            self._keep(item, deferred)
            return None
        with self._lock:
            self._flush_locked()
            if not self._has_pending():
                try:
                    return self._run(item.statements)
                except Exception as exc:
                    problem = storage_problem(exc)
                    if problem is None:
                        raise
                    self._trouble(problem, what)
            if not defer:
                raise StorageFull(self._full_message(what))
            self._keep(item, deferred)
            return None

    def _keep(self, item: _Pending, deferred: Callable[[], Callable[[], None] | None] | None) -> None:
        if deferred is not None:
            done = deferred()
            if done is not None:
                item.done.append(done)
        with self._qlock:
            if item.key is not None:
                for i, other in enumerate(self._pending):
                    if other.key == item.key:
                        item.done = other.done + item.done
                        self._pending[i] = item
                        break
                else:
                    self._pending.append(item)
            else:
                self._pending.append(item)
            if len(self._pending) > MAX_PENDING:
                self._drop_oldest_droppable()
            self._status.pending = len(self._pending)
        self._start_writer()

    def _drop_oldest_droppable(self) -> None:
        for i, other in enumerate(self._pending):
            if other.droppable:
                del self._pending[i]
                self._status.dropped += 1
                return

    def _has_pending(self) -> bool:
        with self._qlock:
            return bool(self._pending)

    def _run(self, statements: tuple[Statement, ...]) -> int | None:
        if len(statements) == 1:
            return self._db.execute(*statements[0]).lastrowid
        self._db.execute("BEGIN IMMEDIATE")
        try:
            last = None
            for sql, args in statements:
                last = self._db.execute(sql, args).lastrowid
            self._db.execute("COMMIT")
            return last
        except BaseException:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    # landing what was kept -----------------------------------------------------
    def flush(self) -> bool:
        """Try to land every kept write now; True when nothing is left."""
        with self._lock:
            self._retry_at = 0.0
            self._flush_locked()
            return not self._has_pending()

    def _flush_locked(self, only_if_healthy: bool = False) -> None:
        if not self._has_pending() or (only_if_healthy and not self._status.ok):
            return
        if time.monotonic() < self._retry_at:
            return
        while True:
            with self._qlock:
                if not self._pending:
                    break
                item = self._pending[0]
            try:
                self._run(item.statements)
            except Exception as exc:
                problem = storage_problem(exc)
                if problem is None:  # a bug, not the disk: log it, do not block every later record on it
                    log.error("record could not be written", what=item.what, error=str(exc))
                    self._pop(item)
                    continue
                self._trouble(problem, item.what)
                self._retry_at = time.monotonic() + self._retry_delay
                self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
                return
            self._pop(item)
            for done in item.done:
                done()
        self._recovered()

    def _pop(self, item: _Pending) -> None:
        with self._qlock:
            if self._pending and self._pending[0] is item:
                self._pending.popleft()
            self._status.pending = len(self._pending)

    def _trouble(self, problem: str, what: str) -> None:
        if self._status.ok or self._status.problem != problem:
            self._status.ok = False
            self._status.problem = problem
            self._status.since = self._status.since or time.time()
            log.error("storage refuses writes; records are kept in memory until it recovers",
                      path=str(self.path), problem=problem, record=what)
            self._notify()

    def _recovered(self) -> None:
        if self._status.ok:
            return
        dropped = self._status.dropped
        log.warning("storage recovered; kept records written", path=str(self.path), dropped=dropped,
                    outage_seconds=round(time.time() - (self._status.since or time.time()), 1))
        self._status = StorageStatus(path=str(self.path))
        self._retry_delay = RETRY_MIN
        self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener(self.status())
            except Exception as exc:
                log.warning("storage listener failed", error=str(exc))

    def _full_message(self, what: str) -> str:
        problem = self._status.problem or "storage refuses writes"
        return (f"{what} could not be saved: {problem} ({self.path.parent}); free space there and try again "
                "(stop commands still work, and records already made are kept until it can be written)")

    def status(self) -> StorageStatus:
        with self._qlock:
            return StorageStatus(**self._status.to_dict())

    # the writer thread ---------------------------------------------------------
    def _start_writer(self) -> None:
        with self._writer_lock:
            self._wake.set()
            if self._writer is not None and self._writer.is_alive():
                return
            self._writer = threading.Thread(target=self._write_loop, name=f"records-{self.path.name}", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        """Land kept writes as they come; retry with back-off while storage refuses; end after a quiet spell."""
        quiet_since = time.monotonic()
        while not self._closed:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._has_pending():
                with self._lock:
                    if self._closed:
                        return
                    self._flush_locked()
                quiet_since = time.monotonic()
                if self._has_pending():
                    time.sleep(max(0.0, min(self._retry_at - time.monotonic(), RETRY_MAX)))
                continue
            with self._writer_lock:  # decide to end under the lock _start_writer takes, so no write is stranded
                if time.monotonic() - quiet_since > WRITER_IDLE and not self._has_pending():
                    self._writer = None
                    return

    def close(self) -> None:
        """Land what can be landed, say what could not, and close."""
        with self._lock:
            self._retry_at = 0.0
            self._flush_locked()
            left = self.status().pending
            if left:
                log.error("records lost at shutdown: storage still refuses writes", path=str(self.path),
                          records=left, problem=self._status.problem)
            self._closed = True
            self._wake.set()
            self._db.close()
