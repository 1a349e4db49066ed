"""A full disk mid-job: stop commands answer truthfully, uploads get 507, sign-in works, nothing is lost.

Two ways to fill the disk: a fault-injecting SQLite connection (every write refused
with SQLITE_FULL while a flag is set), and — where this user may mount — a real
1 MB tmpfs filled to the last byte.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labbridge import durable
from tests.storage_faults import Faults, FaultyConnection
from tests.test_api_machines import post, queue_job, state
from tests.web_support import PASSWORD, Api, lab_config, running_app, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Faults]]:
    monkeypatch.setattr(durable, "connection_factory", FaultyConnection)
    Faults.full.clear()
    yield Faults
    Faults.full.clear()


def on_disk(api: Api, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """What the database file really holds (a connection of its own, no overlay)."""
    with sqlite3.connect(api.ctx.store.path) as db:
        return db.execute(sql, args).fetchall()


def start_job(api: Api) -> tuple[int, str]:
    entry = queue_job(api)
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/start")
    assert r.status_code == 200, r.text
    wait_for(lambda: (state(api)["job"] or {}).get("lines_acked", 0) > 0, 30, what="job progress")
    return int(entry["id"]), str(api.ctx.store.queue_entry(entry["id"])["job_id"])


def storage(api: Api) -> dict[str, Any]:
    r = api.call("operator", "GET", "/api/server/storage")
    assert r.status_code == 200, r.text
    return dict(r.json())


def stop_commands_while_full(api: Api, entry_id: int, job_id: str) -> None:
    """Hold, resume, hold and cancel on a full disk: each answers 200 with what happened, and it happened."""
    r = post(api, "trainer", "hold")
    assert r.status_code == 200 and r.json()["result"] == "job held", r.text
    wait_for(lambda: state(api)["state"] == "Hold", 90, what="Hold")
    r = post(api, "operator", "resume")
    assert r.status_code == 200 and r.json()["result"] == "job resumed", r.text
    wait_for(lambda: state(api)["state"] == "Run", 90, what="Run again")
    r = post(api, "technician", "cancel")
    assert r.status_code == 200 and r.json()["result"] == "job cancelled", r.text
    wait_for(lambda: state(api)["state"] in ("Idle", "Alarm"), 90, what="machine stopped")
    # the states reported are the true ones although the disk has none of them yet
    wait_for(lambda: api.ctx.store.queue_entry(entry_id)["state"] == "cancelled", 30, what="entry cancelled")
    listed = {e["id"]: e["state"] for e in api.call("operator", "GET", "/api/queue?all=true").json()}
    assert listed[entry_id] == "cancelled"
    jobs = {j["id"]: j["state"] for j in api.call("operator", "GET", "/api/jobs").json()}
    assert jobs[job_id] == "cancelled"


def refusals_while_full(api: Api) -> None:
    r = api.call("trainer", "POST", "/api/programs/text", json={"name": "new.nc", "text": "G0 X-1\nM30\n"})
    assert r.status_code == 507, r.text
    assert "disk is full" in r.json()["detail"] and "free space" in r.json()["detail"]
    r = api.call("trainer", "POST", "/api/programs", files={"file": ("f.nc", b"G0 X-1\nM30\n", "text/plain")})
    assert r.status_code == 507 and "free space" in r.json()["detail"]
    # signing in still works (the token is kept in memory) and the token is good at once
    token = api.login("viewer", PASSWORD)["token"]
    assert api.client.get("/api/machines", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # a wrong password is a clean 401, not a 500
    r = api.client.post("/api/auth/login", json={"username": "viewer", "password": "not it at all"})
    assert r.status_code == 401


def test_full_disk_mid_job_with_a_faulty_sqlite(tmp_path: Path, faulty: type[Faults]) -> None:
    pytest.importorskip("labbridge.drivers.grbl")
    with running_app(tmp_path, lab_config(("mill-1",), unreachable=False), demo=True, poll_hz=10.0) as api:
        wait_for(lambda: state(api)["connected"], 30, what="mill-1 simulator to connect")
        entry_id, job_id = start_job(api)
        with api.client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": api.tokens["operator"]})
            assert ws.receive_json()["type"] == "hello"
            ws.send_json({"type": "subscribe", "machines": ["mill-1"]})
            faulty.full.set()
            stop_commands_while_full(api, entry_id, job_id)
            banner = next(m for m in iter(ws.receive_json, None) if m["type"] == "storage")
        assert banner["ok"] is False and banner["full"] and "storage full" in banner["message"]
        refusals_while_full(api)
        status = storage(api)
        assert status["full"] and status["pending"] > 0 and faulty.refused > 0
        # nothing of it is on disk yet: the file still says running
        assert on_disk(api, "SELECT state FROM web_queue WHERE id=?", (entry_id,)) == [("running",)]
        assert on_disk(api, "SELECT state FROM jobs WHERE id=?", (job_id,))[0][0] in ("running", "checking")

        faulty.full.clear()  # space returns
        wait_for(lambda: storage(api)["ok"], 30, what="storage to recover")
        assert storage(api)["pending"] == 0
        assert on_disk(api, "SELECT state FROM web_queue WHERE id=?", (entry_id,)) == [("cancelled",)]
        assert on_disk(api, "SELECT state FROM jobs WHERE id=?", (job_id,)) == [("cancelled",)]
        events = [e for (e,) in on_disk(api, "SELECT event FROM job_events WHERE job_id=? ORDER BY id", (job_id,))]
        assert {"job_held", "job_resumed", "job_cancelled"} <= set(events)
        audit = on_disk(api, "SELECT username, action, outcome FROM web_audit ORDER BY id")
        assert ("trainer", "hold", "ok") in audit and ("operator", "resume", "ok") in audit
        assert ("technician", "cancel", "ok") in audit
        assert ("trainer", "POST /api/programs/text", "storage-full") in audit  # the refusal is audited too
        assert any(a[1] == "job.finished" and a[2] == "cancelled" for a in audit)
        assert ("viewer", "login", "ok") in audit
        # uploads work again
        r = api.call("trainer", "POST", "/api/programs/text", json={"name": "new.nc", "text": "G0 X-1\nM30\n"})
        assert r.status_code == 201, r.text


def _mount_tmpfs(path: Path) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(path)], capture_output=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _fill(path: Path) -> Path:
    """Fill the file system under ``path`` to the last byte; returns the filler (delete it to free space)."""
    filler = path / "filler.bin"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_on_a_real_tmpfs(tmp_path: Path) -> None:
    pytest.importorskip("labbridge.drivers.grbl")
    mount = tmp_path / "small-disk"
    if not _mount_tmpfs(mount):
        pytest.skip("mounting a tmpfs needs root; the faulty-SQLite test covers the same path")
    try:
        with running_app(mount / "data", lab_config(("mill-1",), unreachable=False), demo=True,
                         poll_hz=10.0) as api:
            wait_for(lambda: state(api)["connected"], 30, what="mill-1 simulator to connect")
            entry_id, job_id = start_job(api)
            filler = _fill(mount)
            stop_commands_while_full(api, entry_id, job_id)
            refusals_while_full(api)
            assert storage(api)["full"]
            filler.unlink()
            time.sleep(0.5)
            wait_for(lambda: storage(api)["ok"], 30, what="storage to recover")
            assert on_disk(api, "SELECT state FROM web_queue WHERE id=?", (entry_id,)) == [("cancelled",)]
            assert on_disk(api, "SELECT state FROM jobs WHERE id=?", (job_id,)) == [("cancelled",)]
            audit = on_disk(api, "SELECT username, action, outcome FROM web_audit ORDER BY id")
            assert ("trainer", "hold", "ok") in audit and ("technician", "cancel", "ok") in audit
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)
