"""``labbridge demo`` brings up the whole simulated lab; a Fanuc-style lathe runs a queued job over DNC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web_support import ROOT, ServerProcess, admin_first_sign_in, lab_config, running_app, wait_for

pytestmark = pytest.mark.slow


def test_demo_command_starts_a_simulated_lab(tmp_path: Path) -> None:
    server = ServerProcess(["demo", "--port", "0", "--data-dir", str(tmp_path / "demo")], cwd=ROOT)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.password and len(server.password) >= 12
        # generous: signing in hashes with argon2's full cost, while three simulators start on a shared CPU
        with httpx.Client(base_url=server.url, timeout=90) as client:
            assert client.get("/api/machines").status_code == 401  # nothing without signing in
            auth = {"Authorization": f"Bearer {admin_first_sign_in(client, server.password)}"}

            def all_connected() -> bool:
                machines = client.get("/api/machines", headers=auth).json()
                return all(m["state"]["connected"] and m["simulated"] for m in machines) and len(machines) == 3

            wait_for(all_connected, 90, interval=0.5, what="every simulated machine to connect")
            assert client.get("/docs").status_code == 200
            assert "labbridge" in client.get("/").text
    finally:
        server.stop()
    # a second start of the demo prints a fresh one-time password for the same data dir
    again = ServerProcess(["demo", "--port", "0", "--data-dir", str(tmp_path / "demo")], cwd=ROOT)
    try:
        assert again.password and again.password != server.password
    finally:
        again.stop()


@pytest.fixture
def lathe(tmp_path: Path) -> Any:
    with running_app(tmp_path, lab_config(("lathe-1",), unreachable=False), demo=True,
                     sim_options={"fanuc-lathe": {"time_scale": 50.0}}) as api:
        wait_for(lambda: api.call("viewer", "GET", "/api/machines/lathe-1").json()["state"]["connected"], 60,
                 what="lathe-1 simulator")
        yield api


def test_lathe_job_goes_out_over_dnc(lathe: Any) -> None:
    api = lathe
    text = (ROOT / "examples" / "lathe-1-shaft.nc").read_text()
    h = api.call("trainer", "POST", "/api/programs/text", json={"name": "shaft.nc", "text": text}).json()["hash"]
    entry = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": "lathe-1"})
    assert entry.status_code == 201, entry.text
    entry_id = entry.json()["id"]
    r = api.call("operator", "POST", f"/api/queue/{entry_id}/start")
    assert r.status_code == 200, r.text
    wait_for(lambda: api.ctx.store.queue_entry(entry_id)["state"] not in ("queued", "running"), 120,
             what="the DNC job to end")
    done = api.ctx.store.queue_entry(entry_id)
    assert done["state"] == "completed", done
    job = api.call("viewer", "GET", "/api/machines/lathe-1").json()["state"]["job"]
    assert job["program"] == "shaft.nc" and job["state"] == "completed" and job["lines_acked"] > 0
    (record,) = api.call("trainer", "GET", "/api/jobs?machine=lathe-1").json()  # DNC jobs are recorded too
    assert record["id"] == job["job_id"] == done["job_id"] and record["protocol"] == "dnc"
    assert record["state"] == "completed" and record["lines_acked"] == record["lines_total"] > 0
    events = [e["event"] for e in api.call("technician", "GET", f"/api/jobs/{record['id']}/events").json()]
    assert events[0] == "job_created" and "job_started" in events and events[-1] == "job_completed"
    r = api.call("operator", "POST", "/api/machines/lathe-1/jog", json={"x": 1.0, "feed": 100})
    assert r.status_code == 409  # a Fanuc-style lathe has no remote jog; the reply says why


def test_serve_fails_cleanly(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "labbridge.cli.main", "serve", "--data-dir", str(tmp_path / "d")]
    r = subprocess.run([*cmd, "--config", str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "config file not found" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*cmd, "--port", str(port)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
