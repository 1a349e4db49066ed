"""Store and forward: every lab event is written to SQLite first and published from there, in order.

The truck is often offline, so the outbox is the one path for events, online or not: ``append``
gives the event its ``seq`` and stores it; the link reads the oldest rows, publishes them (QoS 1)
and deletes them only once the broker has acknowledged them. After a crash or a lost connection
the unacknowledged rows are sent again, so none is lost; a replay repeats a ``seq`` and
headquarters drops it, so none is counted twice.

``seq`` is strictly increasing per lab and survives restarts: it is SQLite's AUTOINCREMENT, which
never reuses a number, seeded with the creation time in milliseconds so that a lab whose data
folder was wiped still continues above every number it sent before.

The outbox is bounded (``fleet.max_stored_events``). When it is full the oldest events are
dropped and replaced by one ``gap`` event that takes the last dropped ``seq`` and says how many
were lost (``dropped``, ``from_seq``, ``to_seq``); consecutive drops grow the same gap event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    machine TEXT,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Stored:
    seq: int
    payload: dict[str, Any]


class Outbox:
    """The lab's pending events. Thread-safe: the audit log may append from request threads."""

    def __init__(self, path: str | Path, max_events: int = 100_000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._seed_sequence()
        self._count = int(self._db.execute("SELECT COUNT(*) FROM fleet_outbox").fetchone()[0])
        self._inflight_upto = 0
        self.dropped_total = 0
        self.listeners: list[Any] = []
        """Called with no arguments after each append (the link wakes its sender)."""

    def _seed_sequence(self) -> None:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='fleet_outbox'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('fleet_outbox', ?)",
                                 (int(time.time() * 1000),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        return self._count

    # writing -------------------------------------------------------------------
    def append(self, kind: str, machine: str | None = None, **fields: Any) -> int:
        """Store one event; returns its ``seq``. Drops the oldest (into a gap event) when full."""
        now = time.time()
        body = json.dumps(fields, separators=(",", ":"), default=str)
        with self._lock:
            while self._count >= self.max_events and self._drop_oldest():
                pass
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("INSERT INTO fleet_outbox(time, kind, machine, body) VALUES (?,?,?,?)",
                                       (now, kind, machine, body))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1
            seq = int(cur.lastrowid or 0)
        for listener in list(self.listeners):
            listener()
        return seq

    def _drop_oldest(self) -> bool:
        """Replace the oldest events (1% of the bound, at least 2) by one gap event. Lock held."""
        batch = max(2, self.max_events // 100)
        rows = self._db.execute(
            "SELECT seq, kind, body FROM fleet_outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._inflight_upto, batch),
        ).fetchall()
        if len(rows) < 2:
            return False  # everything left is being sent right now; it leaves the outbox in a moment
        dropped, first = 0, rows[0][0]
        for seq, kind, body in rows:
            if kind == "gap":
                info = json.loads(body)
                dropped += int(info.get("dropped", 0))
                first = min(first, int(info.get("from_seq", seq)))
            else:
                dropped += 1
        last = rows[-1][0]
        gap = json.dumps({"dropped": dropped, "from_seq": first, "to_seq": last,
                          "message": f"{dropped} events were dropped: the lab was offline longer than its "
                                     f"store of {self.max_events} events holds"})
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM fleet_outbox WHERE seq >= ? AND seq < ?", (rows[0][0], last))
            self._db.execute("UPDATE fleet_outbox SET kind='gap', machine=NULL, body=?, time=? WHERE seq=?",
                             (gap, time.time(), last))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._count -= len(rows) - 1
        self.dropped_total += sum(1 for r in rows if r[1] != "gap")
        return True

    # forwarding ----------------------------------------------------------------
    def oldest(self, limit: int = 200) -> list[Stored]:
        """The next events to publish, oldest first, as their wire payload; marks them in flight."""
        with self._lock:
            rows = self._db.execute("SELECT seq, time, kind, machine, body FROM fleet_outbox ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
            if rows:
                self._inflight_upto = rows[-1][0]
        out = []
        for seq, at, kind, machine, body in rows:
            payload = {"seq": seq, "time": at, "machine": machine, "kind": kind}
            payload.update(json.loads(body))
            out.append(Stored(seq, payload))
        return out

    def acknowledged(self, upto: int) -> None:
        """The broker has every event up to ``upto``: forget them."""
        with self._lock:
            cur = self._db.execute("DELETE FROM fleet_outbox WHERE seq <= ?", (upto,))
            self._count -= cur.rowcount
            self._inflight_upto = 0

    def released(self) -> None:
        """Sending stopped before the acknowledgements came: the rows stay for the next try."""
        with self._lock:
            self._inflight_upto = 0

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='fleet_outbox'").fetchone()
        return int(row[0]) if row else 0
