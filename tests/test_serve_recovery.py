"""``labbridge serve`` killed by SIGKILL mid-job and started again, against the GRBL simulator on a real pty:
the record, the queue, the machine's notice, stopping spindle and coolant, resuming from a line — and one owner
per machine (a CLI run is refused while serve owns it; serve leaves alone a machine a CLI run owns)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from labbridge.config import Connection, SerialConnection
from labbridge.protocols.grbl import clean_line
from tests.jobs_support import mill, write_program
from tests.test_crash_recovery import program
from tests.test_ownership import hold_in_process
from tests.test_stream_cli import Sim, write_config
from tests.web_support import ROOT, ServerProcess, admin_first_sign_in, wait_for


def serve(config: Path, data: Path, *extra: str) -> ServerProcess:
    return ServerProcess(["serve", "--config", str(config), "--port", "0", "--data-dir", str(data), *extra],
                         cwd=ROOT)


@contextmanager
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        token = admin_first_sign_in(c, server.password)
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def start_program(c: httpx.Client, path: Path) -> dict:
    info = c.post("/api/programs", files={"file": (path.name, path.read_bytes(), "text/plain")}).json()
    assert c.post(f"/api/programs/{info['hash']}/check", json={"machine": "mill-1"}).json()["report"]["ok"]
    entry = c.post("/api/queue", json={"program": info["hash"], "machine": "mill-1"}).json()
    r = c.post(f"/api/queue/{entry['id']}/start")
    assert r.status_code == 200, r.text
    return entry


def state(c: httpx.Client) -> dict:
    return c.get("/api/machines/mill-1").json()["state"]


@pytest.mark.slow
def test_serve_killed_mid_job_then_restarted_reports_stops_and_resumes(tmp_path: Path) -> None:
    sim = Sim(mill(), time_scale=4.0, reset_on_open=False)
    data = tmp_path / "data"
    server = None
    try:
        config = write_config(tmp_path, mill(connection=Connection(serial=SerialConnection(port=sim.port))))
        lines = program(120)
        path = write_program(tmp_path, "part.nc", lines)
        server = serve(config, data)
        with client(server) as c:
            wait_for(lambda: state(c)["connected"], 60, what="serve to connect")
            entry = start_program(c, path)
            jobs = wait_for(lambda: [j for j in c.get("/api/jobs").json() if (j["executed_line"] or 0) >= 30], 60,
                            what="an executed line in the record")
            # While serve owns the machine a CLI run is refused before it touches the port, naming serve.
            env = {**os.environ, "LABBRIDGE_DATA_DIR": str(data)}
            cli = subprocess.run([sys.executable, "-m", "labbridge.cli.main", "stream", str(path), "-m", "mill-1",
                                  "--config", str(config), "--yes"], capture_output=True, text=True, timeout=90,
                                 env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
            assert cli.returncode == 3
            assert f"mill-1 is in use by pid {server.proc.pid} (labbridge serve --config" in cli.stderr
        job_id = jobs[0]["id"]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        wait_for(lambda: sim.sim.snapshot()["state"] == "Idle", 60, what="the controller to run dry")
        assert sim.sim.firmware.spindle[0] == 3  # still turning

        server = serve(config, data, "--reset-admin")
        with client(server) as c:
            job = next(j for j in c.get("/api/jobs").json() if j["id"] == job_id)
            assert job["state"] == "interrupted" and "the bridge stopped at" in job["message"]
            assert job["last_sent_line"] >= job["last_acked_line"] >= job["executed_line"] >= 30
            queue = c.get("/api/queue", params={"all": True}).json()
            assert next(e for e in queue if e["id"] == entry["id"])["state"] == "interrupted"
            st = wait_for(lambda: (s := state(c))["connected"] and s["spindle"]["direction"] and s, 60,
                          what="the machine to report its spindle")
            assert st["job"]["state"] == "interrupted" and st["job"]["job_id"] == job_id
            assert st["job"]["line_number"] == job["executed_line"]  # the suggested line
            assert st["spindle"]["direction"] == "cw" and st["coolant"] == "flood"

            r = c.post("/api/machines/mill-1/spindle-coolant-off")
            assert r.status_code == 200 and r.json()["result"] == "spindle and coolant stopped (M5 M9)"
            wait_for(lambda: sim.sim.firmware.spindle[0] == 5 and not sim.sim.firmware.coolant[0], 10,
                     what="the spindle to stop")
            assert state(c)["job"]["state"] == "interrupted"  # the notice stays until resumed or dismissed

            line = job["executed_line"]
            r = c.post(f"/api/jobs/{job_id}/resume", json={"from_line": line})
            assert r.status_code == 200, r.text
            resumed = wait_for(lambda: [j for j in c.get("/api/jobs").json()
                                        if j["from_line"] == line and j["state"] == "completed"], 120,
                               what="the resumed job to complete")
            assert resumed[0]["program_sha256"] == job["program_sha256"]
            tail = [clean_line(t) for t in lines[line - 1:]]
            assert sim.received.program_lines()[-len(tail):] == tail
            events = [e["event"] for e in c.get(f"/api/jobs/{job_id}/events").json()]
            assert "job_interrupted" in events and events[-1] == "interruption_acknowledged"
            assert "spindle_coolant_stopped" in events
            audit = c.get("/api/audit").json()
            assert any(a["action"] == "job.resume_from" and a["outcome"] == "ok" for a in audit)
    finally:
        if server is not None:
            server.stop()
        sim.close()


@pytest.mark.slow
def test_serve_leaves_alone_a_machine_a_cli_run_owns(tmp_path: Path) -> None:
    sim = Sim(mill())
    data = tmp_path / "data"
    holder = hold_in_process(data, "mill-1", sim.port)
    server = None
    try:
        config = write_config(tmp_path, mill(connection=Connection(serial=SerialConnection(port=sim.port))))
        server = serve(config, data)
        with client(server) as c:
            fault = wait_for(lambda: state(c)["fault"], 30, what="a fault naming the owner")
            assert f"in use by pid {holder.pid} (labbridge serve --data-dir somewhere)" in fault
            time.sleep(1.0)
            assert sim.sim.snapshot()["bytes_in"] == 0  # not a byte, so no reset
            holder.kill()
            holder.wait(10)
            wait_for(lambda: state(c)["connected"], 60, what="serve to connect once the owner is gone")
    finally:
        holder.kill()
        if server is not None:
            server.stop()
        sim.close()
