"""Settings changes asked for over the fleet link wait here until someone at the machine decides.

Remote changes need someone at the machine: a technician at headquarters sends a
``settings-change`` request, the lab keeps it as a pending approval and shows it on the dashboard,
and an operator (the people who may start motion there) accepts or refuses it. Accepting writes
the setting exactly as asked, only while the machine is idle; every step is audited and sent to
headquarters as an event.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from labbridge.i18n import _
from labbridge.server.auth import Action

APPROVE = Action.JOB_START
"""Who may accept: whoever may start motion at the machine (operators and admins)."""

KEY = re.compile(r"\$?[A-Za-z0-9_.]{1,32}")
VALUE = re.compile(r"[-+0-9A-Za-z.]{1,80}")
"""One token: no spaces or line ends, so a value can never carry a second controller command."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    machine TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL,
    request_id TEXT NOT NULL,
    requested_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_at REAL,
    result TEXT NOT NULL DEFAULT ''
);
"""


class ApprovalError(ValueError):
    """A settings-change request or decision that cannot be taken; the text says why."""


class ApprovalNotFound(ApprovalError):
    """No settings-change request has that number (HTTP 404)."""


def validate_change(key: Any, value: Any) -> tuple[str, str]:
    key, value = str(key if key is not None else ""), str(value if value is not None else "")
    if not KEY.fullmatch(key):
        raise ApprovalError(_("setting {key} is not a setting name such as $110").format(key=repr(key[:40])))
    if not VALUE.fullmatch(value):
        raise ApprovalError(_("value {value} is not one number or word (at most 80 characters, no spaces)").format(
            value=repr(value[:40])))
    return key, value


class Approvals:
    """The pending and decided settings changes (in the lab's SQLite file)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, machine: str, key: str, value: str, reason: str, requested_by: str, request_id: str) -> dict[str, Any]:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO fleet_approvals(machine, key, value, reason, requested_by, request_id, requested_at) "
                "VALUES (?,?,?,?,?,?,?)", (machine, key, value, reason[:500], requested_by, request_id, time.time()))
        found = self.get(int(cur.lastrowid or 0))
        assert found is not None
        return found

    def get(self, approval_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM fleet_approvals WHERE id=?", (approval_id,)).fetchone()
        return dict(row) if row is not None else None

    def list(self, pending_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT * FROM fleet_approvals" + (" WHERE state='pending'" if pending_only else "")
        with self._lock:
            return [dict(r) for r in self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()]

    def claim(self, approval_id: int, user: str) -> dict[str, Any]:
        """Take a pending approval for deciding (so two operators cannot both apply it)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE fleet_approvals SET state='deciding', decided_by=? WHERE id=? AND state='pending'",
                (user, approval_id))
        row = self.get(approval_id)
        if row is None:
            raise ApprovalNotFound(_("no settings-change request #{id}").format(id=approval_id))
        if cur.rowcount == 0:
            raise ApprovalError(_("settings-change request #{id} is already {state}").format(
                id=approval_id, state=row["state"]))
        return row

    def finish(self, approval_id: int, state: str, user: str, result: str) -> dict[str, Any]:
        with self._lock:
            self._db.execute("UPDATE fleet_approvals SET state=?, decided_by=?, decided_at=?, result=? WHERE id=?",
                             (state, user, time.time(), result[:500], approval_id))
        row = self.get(approval_id)
        assert row is not None
        return row
