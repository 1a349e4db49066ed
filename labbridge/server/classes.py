"""Class mode: a trainer opens a class, students submit programs by its code, the trainer picks what runs.

Students have no account: a class is reached by a short code (6 characters from an
alphabet without look-alikes: no 0/O, 1/I/L, 2/Z, 5/S, 8/B) that is valid while the
class is open. Submissions are minors' data: they are kept only for the class's
trainer (and admins), never shown to other students, and deleted ``retention_days``
after the class closes (or expires). Limits keep one class, or one phone, from
flooding the gate: programs up to 256 KB, 60 submissions a minute per class and 6
per client.

This module is storage and rules only; ``labbridge.server.api.classes`` serves it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labbridge.i18n import _
from labbridge.server.store import Store

CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
MAX_PROGRAM_BYTES = 256 * 1024
PER_CODE_PER_MINUTE = 60
PER_CLIENT_PER_MINUTE = 6
MAX_STUDENT_NAME = 40
MIN_MINUTES, MAX_MINUTES = 5, 600
DEFAULT_RETENTION_DAYS = 30.0
COMMON_ERRORS = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_classes (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    machine TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    closed_at REAL,
    purged_at REAL
);
CREATE TABLE IF NOT EXISTS web_class_submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL REFERENCES web_classes(code),
    student TEXT NOT NULL,
    student_key TEXT NOT NULL,
    created_at REAL NOT NULL,
    text TEXT NOT NULL,
    ok INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    warnings INTEGER NOT NULL,
    first_error TEXT,
    error_codes TEXT NOT NULL,
    report TEXT NOT NULL,
    queue_entry INTEGER
);
CREATE INDEX IF NOT EXISTS web_class_submissions_code ON web_class_submissions(code, id);
"""


class ClassError(Exception):
    """A refusal with the HTTP status it maps to (404 unknown/closed, 409 state, 413/422 input)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def normalize_code(code: str) -> str:
    """Codes are typed by students: case and spaces do not matter."""
    return "".join(code.split()).upper()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _i in range(CODE_LENGTH))


def clean_student_name(name: str) -> str:
    """A student's name as shown to the trainer: trimmed, single spaces, no control characters."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ClassError(422, _("type your name so that your trainer knows whose program this is"))
    if len(cleaned) > MAX_STUDENT_NAME:
        raise ClassError(422, _("the name is too long: at most {n} characters").format(n=MAX_STUDENT_NAME))
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in cleaned):
        raise ClassError(422, _("the name contains characters that cannot be shown; use letters and digits"))
    return cleaned


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds per key, checked and counted atomically."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._events.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def admit(self, *limits: tuple[str, int]) -> float | None:
        """Count one event for every key if all are under their limit; else the seconds until one is free."""
        now = self.clock()
        with self._lock:
            if len(self._events) > 10_000:
                for key in [k for k, q in self._events.items() if not q or q[-1] <= now - self.window]:
                    del self._events[key]
            for key, limit in limits:
                q = self._recent(key, now)
                if len(q) >= limit:
                    return max(0.0, q[0] + self.window - now)
            for key, _limit in limits:
                self._events[key].append(now)
        return None


@dataclass
class ClassBook:
    """Classes and their submissions, in the server's SQLite file."""

    store: Store
    retention_days: float = DEFAULT_RETENTION_DAYS
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.store.ensure_tables(SCHEMA)

    # classes -----------------------------------------------------------------
    def open(self, name: str, machine: str, minutes: int, owner: str) -> dict[str, Any]:
        now = self.clock()
        for _attempt in range(20):
            code = new_code()
            if self.store.row("SELECT code FROM web_classes WHERE code=?", (code,)) is None:
                break
        else:  # pragma: no cover - 25^6 codes
            raise ClassError(503, "no free class code; try again")
        self.store.execute(
            "INSERT INTO web_classes(code, name, machine, owner, created_at, expires_at) VALUES (?,?,?,?,?,?)",
            (code, name, machine, owner, now, now + minutes * 60.0))
        found = self.get(code)
        assert found is not None
        return found

    def get(self, code: str) -> dict[str, Any] | None:
        row = self.store.row("SELECT * FROM web_classes WHERE code=?", (normalize_code(code),))
        return None if row is None else self._describe(row)

    def _describe(self, row: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        if row["purged_at"] is not None:
            state = "purged"
        elif row["closed_at"] is not None:
            state = "closed"
        elif row["expires_at"] <= now:
            state = "expired"
        else:
            state = "open"
        ended = row["closed_at"] if row["closed_at"] is not None else row["expires_at"]
        delete_after = ended + self.retention_days * 86400.0
        return {**row, "state": state, "delete_after": delete_after}

    def open_class(self, code: str) -> dict[str, Any]:
        """The class a student submits to; unknown, closed and expired codes all look the same (404)."""
        found = self.get(code)
        if found is None or found["state"] != "open":
            raise ClassError(404, _("there is no open class with code {code}; check the code with your trainer")
                             .format(code=normalize_code(code)[:12]))
        return found

    def close(self, code: str) -> dict[str, Any]:
        found = self.get(code)
        if found is None:
            raise ClassError(404, _("there is no class with code {code}").format(code=normalize_code(code)[:12]))
        if found["closed_at"] is None:
            self.store.execute("UPDATE web_classes SET closed_at=? WHERE code=?",
                               (min(self.clock(), found["expires_at"]), found["code"]))
        closed = self.get(code)
        assert closed is not None
        return closed

    def list_classes(self, owner: str | None) -> list[dict[str, Any]]:
        sql = ("SELECT c.*, (SELECT COUNT(*) FROM web_class_submissions s WHERE s.code=c.code) AS submissions "
               "FROM web_classes c")
        rows = self.store.rows(sql + " ORDER BY created_at DESC LIMIT 100") if owner is None else \
            self.store.rows(sql + " WHERE owner=? ORDER BY created_at DESC LIMIT 100", (owner,))
        return [self._describe(r) for r in rows]

    # submissions -------------------------------------------------------------
    def add_submission(self, code: str, student: str, text: str, report: dict[str, Any]) -> dict[str, Any]:
        errors = [d for d in report.get("diagnostics", []) if d.get("severity") == "error"]
        warnings = sum(1 for d in report.get("diagnostics", []) if d.get("severity") == "warning")
        first = errors[0] if errors else None
        codes = sorted({str(d.get("code")) for d in errors})
        cur = self.store.execute(
            "INSERT INTO web_class_submissions(code, student, student_key, created_at, text, ok, errors, warnings, "
            "first_error, error_codes, report) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (code, student, student.casefold(), self.clock(), text, int(bool(report.get("ok"))), len(errors),
             warnings, json.dumps(first) if first else None, json.dumps(codes), json.dumps(report)))
        found = self.submission(code, int(cur.lastrowid or 0))
        assert found is not None
        return self.public_row(found)

    @staticmethod
    def public_row(row: dict[str, Any]) -> dict[str, Any]:
        """What the trainer's list shows of one attempt (no program text, no full report)."""
        first = row["first_error"]
        return {"id": row["id"], "student": row["student"], "time": row["created_at"], "ok": bool(row["ok"]),
                "errors": row["errors"], "warnings": row["warnings"],
                "first_error": json.loads(first) if isinstance(first, str) else first,
                "queue_entry": row["queue_entry"]}

    def submissions(self, code: str) -> list[dict[str, Any]]:
        rows = self.store.rows("SELECT * FROM web_class_submissions WHERE code=? ORDER BY id DESC",
                               (normalize_code(code),))
        return [self.public_row(r) for r in rows]

    def submission(self, code: str, submission_id: int) -> dict[str, Any] | None:
        row = self.store.row("SELECT * FROM web_class_submissions WHERE code=? AND id=?",
                             (normalize_code(code), submission_id))
        if row is None:
            return None
        return {**row, "ok": bool(row["ok"]), "report": json.loads(row["report"]),
                "error_codes": json.loads(row["error_codes"])}

    def set_queue_entry(self, submission_id: int, entry_id: int) -> None:
        self.store.execute("UPDATE web_class_submissions SET queue_entry=? WHERE id=?", (entry_id, submission_id))

    def summary(self, code: str) -> dict[str, Any]:
        """Per student: attempts and whether the latest passes; and the class's most common error codes."""
        rows = self.store.rows(
            "SELECT id, student, student_key, created_at, ok, errors, error_codes, queue_entry "
            "FROM web_class_submissions WHERE code=? ORDER BY id", (normalize_code(code),))
        students: dict[str, dict[str, Any]] = {}
        by_code: Counter[str] = Counter()
        students_by_code: dict[str, set[str]] = {}
        for r in rows:
            s = students.setdefault(r["student_key"], {"student": r["student"], "attempts": 0, "approved": 0})
            s.update(student=r["student"], attempts=s["attempts"] + 1, latest_id=r["id"],
                     latest_time=r["created_at"], latest_ok=bool(r["ok"]), latest_errors=r["errors"])
            s["approved"] += 1 if r["queue_entry"] is not None else 0
            for error_code in json.loads(r["error_codes"]):
                by_code[error_code] += 1
                students_by_code.setdefault(error_code, set()).add(r["student_key"])
        common = sorted(by_code, key=lambda c: (-len(students_by_code[c]), -by_code[c], c))[:COMMON_ERRORS]
        return {
            "attempts": len(rows),
            "students": sorted(students.values(), key=lambda s: s["student"].casefold()),
            "common_errors": [{"code": c, "attempts": by_code[c], "students": len(students_by_code[c])}
                              for c in common],
        }

    # retention ---------------------------------------------------------------
    def purge(self) -> list[str]:
        """Delete the submissions of classes that ended more than ``retention_days`` ago; their codes."""
        cutoff = self.clock() - self.retention_days * 86400.0
        due = self.store.rows(
            "SELECT code FROM web_classes WHERE purged_at IS NULL AND COALESCE(closed_at, expires_at) <= ?",
            (cutoff,))
        codes = [r["code"] for r in due]
        for code in codes:
            self.store.execute("DELETE FROM web_class_submissions WHERE code=?", (code,))
            self.store.execute("UPDATE web_classes SET purged_at=? WHERE code=?", (self.clock(), code))
        return codes


def too_large() -> str:
    """Why a class program was refused for its size (in the student's language)."""
    return _("the program is larger than {kb} KB; a class program must be shorter").format(
        kb=MAX_PROGRAM_BYTES // 1024)
