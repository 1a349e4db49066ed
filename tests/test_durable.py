"""labbridge.durable on its own: what storage refuses is kept in order, lands once space returns, and says so."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labbridge import durable
from labbridge.durable import Database, StorageFull, StorageStatus, storage_problem
from tests.storage_faults import Faults, FaultyConnection

SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, k TEXT UNIQUE);"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(durable, "connection_factory", FaultyConnection)
    monkeypatch.setattr(durable, "RETRY_MIN", 0.05)
    Faults.full.clear()
    database = Database(tmp_path / "x.sqlite", SCHEMA)
    yield database
    Faults.full.clear()
    database.close()


def values(path: Path) -> list[str]:
    with sqlite3.connect(path) as raw:
        return [v for (v,) in raw.execute("SELECT v FROM t ORDER BY id")]


def test_kept_writes_land_in_order_when_space_returns(db: Database) -> None:
    seen: list[StorageStatus] = []
    db.listeners.append(seen.append)
    assert db.write(("INSERT INTO t(v) VALUES (?)", ("a",))) == 1
    Faults.full.set()
    assert db.write(("INSERT INTO t(v) VALUES (?)", ("b",))) is None  # kept
    db.write(("INSERT INTO t(v) VALUES (?)", ("c",)), wait=False)
    status = db.status()
    assert not status.ok and status.problem == "the disk is full" and status.pending == 2
    assert seen and not seen[-1].ok
    with pytest.raises(StorageFull, match="free space"):
        db.write(("INSERT INTO t(v) VALUES (?)", ("big upload",)), defer=False)
    assert values(db.path) == ["a"]
    Faults.full.clear()
    assert db.flush()
    assert values(db.path) == ["a", "b", "c"]
    assert db.status().ok and seen[-1].ok and seen[-1].pending == 0


def test_a_later_write_queues_behind_kept_ones(db: Database) -> None:
    Faults.full.set()
    db.write(("INSERT INTO t(v) VALUES (?)", ("first",)))
    Faults.full.clear()
    db._retry_at = time.monotonic() + 60  # not yet retried: the next write must not jump the queue
    assert db.write(("INSERT INTO t(v) VALUES (?)", ("second",))) is None
    assert db.flush() and values(db.path) == ["first", "second"]


def test_writes_with_one_key_coalesce(db: Database) -> None:
    Faults.full.set()
    for i in range(100):
        db.write(("INSERT INTO t(k, v) VALUES ('stamp', ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (str(i),)),
                 key=("stamp",))
    assert db.status().pending == 1
    Faults.full.clear()
    assert db.flush() and values(db.path) == ["99"]


def test_write_behind_lands_by_itself_and_reads_see_it(db: Database) -> None:
    db.write(("INSERT INTO t(v) VALUES (?)", ("behind",)), wait=False)
    assert [r["v"] for r in db.all("SELECT v FROM t")] == ["behind"]  # a read lands it first
    Faults.full.set()
    db.write(("INSERT INTO t(v) VALUES (?)", ("later",)), wait=False)
    deadline = time.monotonic() + 10
    while db.status().ok and time.monotonic() < deadline:
        time.sleep(0.02)  # the writer thread tries and finds the disk full
    assert not db.status().ok
    Faults.full.clear()
    while db.status().pending and time.monotonic() < deadline + 10:
        time.sleep(0.05)  # ... and retries on its own until it lands
    assert values(db.path) == ["behind", "later"]


def test_memory_is_bounded_by_dropping_the_oldest_droppable(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "MAX_PENDING", 10)
    Faults.full.set()
    db.write(("INSERT INTO t(v) VALUES (?)", ("keep me",)))
    for i in range(20):
        db.write(("INSERT INTO t(v) VALUES (?)", (f"audit {i}",)), droppable=True)
    status = db.status()
    assert status.pending == 10 and status.dropped == 11
    Faults.full.clear()
    assert db.flush()
    assert values(db.path)[0] == "keep me" and values(db.path)[-1] == "audit 19"


def test_storage_problems_are_named() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    assert storage_problem(full) == "the disk is full"
    assert storage_problem(sqlite3.OperationalError("disk I/O error")) == "disk I/O error"
    assert storage_problem(sqlite3.OperationalError("database is locked")).startswith("the database is locked")
    assert storage_problem(OSError(28, "No space left on device")) == "the disk is full"
    assert storage_problem(sqlite3.OperationalError("no such table: x")) is None  # a bug is not the disk
