"""A fault-injecting SQLite connection: while ``Faults.full`` is set every write fails as on a full disk.

The real SQLite still runs underneath (reads work, and writes work again once the
flag is cleared); only the statements that would grow or change the file are
refused, with the error SQLite gives when the disk is full (SQLITE_FULL, code 13).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

READS = ("SELECT", "PRAGMA TABLE_INFO", "WITH")


class Faults:
    full = threading.Event()
    refused = 0


def _disk_full() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = 13  # type: ignore[attr-defined]
    exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return exc


def _is_write(sql: str) -> bool:
    head = sql.lstrip().upper()
    return not head.startswith(READS)


class FaultyConnection(sqlite3.Connection):
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        if Faults.full.is_set() and _is_write(sql) and not sql.lstrip().upper().startswith(("ROLLBACK", "BEGIN")):
            Faults.refused += 1
            raise _disk_full()
        return super().execute(sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:  # type: ignore[override]
        if Faults.full.is_set():
            Faults.refused += 1
            raise _disk_full()
        return super().executescript(script)
