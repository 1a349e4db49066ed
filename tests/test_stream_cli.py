"""``labbridge stream`` run as a real subprocess against simulators on real ptys: output and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from labbridge.config import Connection, Machine, load_config
from labbridge.protocols.grbl import clean_line
from labbridge.sim.grbl.port import GrblSimulator
from labbridge.streaming.job import JobState
from labbridge.streaming.records import JobStore
from tests.jobs_support import Received, long_program, mill, write_program

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMEPLATE = EXAMPLES / "mill-1-nameplate.nc"


def write_config(tmp_path: Path, machine: Machine, machine_id: str = "mill-1") -> Path:
    path = tmp_path / "machines.yaml"
    path.write_text(yaml.safe_dump({"machines": {machine_id: machine.model_dump(mode="json")}}))
    return path


def cli(tmp_path: Path, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "labbridge.cli.main", "stream", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)


class Sim:
    """An in-process GRBL simulator whose received bytes are recorded."""

    def __init__(self, machine: Machine, **opts: object) -> None:
        self.sim = GrblSimulator("mill-1", machine, **opts)
        self.received = Received()
        self.sim.firmware.receive = self.received.hook(self.sim.firmware.receive)  # type: ignore[method-assign]
        self.port = self.sim.start()

    def close(self) -> None:
        self.sim.close()


@pytest.fixture
def grbl_sim():
    sims: list[Sim] = []

    def make(machine: Machine | None = None, **opts: object) -> Sim:
        opts.setdefault("time_scale", 50.0)
        sim = Sim(machine or mill(), **opts)
        sims.append(sim)
        return sim

    yield make
    for s in sims:
        s.close()


def jobs(tmp_path: Path) -> list:
    with JobStore(tmp_path / "data") as store:
        return store.list_jobs()


@pytest.mark.slow
def test_stream_completes_with_progress_and_summary(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim()
    config = write_config(tmp_path, mill())
    result = cli(tmp_path, str(NAMEPLATE), "--machine", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
    assert result.returncode == 0, result.stderr
    lines = [c for c in (clean_line(t) for t in NAMEPLATE.read_text().splitlines()) if c]
    assert "OK for mill-1" in result.stdout  # the gate's verdict, as `labbridge check` prints it
    assert f"completed: {len(lines)}/{len(lines)} lines acknowledged" in result.stdout
    assert f"{len(lines)}/{len(lines)} lines" in result.stderr and "100%" in result.stderr  # the progress bar
    assert sim.received.program_lines() == lines
    (job,) = jobs(tmp_path)
    assert job.state == JobState.COMPLETED and job.id in result.stdout and job.lines_acked == len(lines)


def test_check_mode_streams_without_motion_and_leaves_check_mode(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim(time_scale=1.0)
    config = write_config(tmp_path, mill())
    result = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(config), "--port", sim.port,
                 "--check-mode", "--yes")
    assert result.returncode == 0, result.stderr
    assert "in check mode" in result.stdout
    assert sim.received.lines().count("$C") == 2
    snap = sim.sim.snapshot()
    assert snap["position"] == (0.0, 0.0, 0.0) and snap["state"] == "Idle"


def test_gate_rejection_exits_1_and_never_opens_the_port(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim()
    config = write_config(tmp_path, mill())
    bad = write_program(tmp_path, "bad.nc", ["G21 G90 G54", "G0 X500 Y10", "M30"])
    result = cli(tmp_path, str(bad), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
    assert result.returncode == 1, result.stderr
    assert "bad.nc:2: error[envelope]" in result.stdout and "REJECTED" in result.stdout
    time.sleep(0.3)  # the simulator pump would have recorded anything written by now
    assert sim.received.lines() == [] and sim.sim.snapshot()["bytes_in"] == 0


def test_controller_error_exits_3_naming_the_line_and_the_words(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim(mill(), time_scale=20.0)
    config = write_config(tmp_path, mill(line_buffer=120))  # the config is wrong: GRBL has 79
    lines = long_program(30)
    lines.insert(15, "G1 X1.0000000000 Y1.0000000000 Z-1.0000000000 F600.0000000000 S8000.000000000000000000000")
    program = write_program(tmp_path, "long.nc", lines)
    result = cli(tmp_path, str(program), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
    assert result.returncode == 3, result.stderr
    assert "line 16" in result.stderr and "error:11" in result.stderr and "line overflow" in result.stderr
    (job,) = jobs(tmp_path)
    assert job.state == JobState.FAILED and job.error_line == 16


def test_interlock_refusal_exits_3_and_names_it(tmp_path: Path, grbl_sim) -> None:
    homing = mill(homing_required=True)
    sim = grbl_sim(homing)
    config = write_config(tmp_path, homing)
    result = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
    assert result.returncode == 3
    assert "'alarm' interlock" in result.stderr and "nothing was sent" in result.stderr
    assert sim.received.program_lines() == []


def test_home_option_homes_a_locked_machine_then_streams(tmp_path: Path, grbl_sim) -> None:
    homing = mill(homing_required=True)
    sim = grbl_sim(homing)
    config = write_config(tmp_path, homing)
    result = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes",
                 "--home")
    assert result.returncode == 0, result.stderr
    assert "homing ($H)" in result.stderr
    sent = sim.received.lines()
    program = [c for c in (clean_line(t) for t in NAMEPLATE.read_text().splitlines()) if c]
    assert "$H" in sent and sent.index("$H") < sent.index(program[0])
    assert sim.received.program_lines() == program


def test_connection_lost_exits_3_with_the_last_acknowledged_line(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim(time_scale=5.0)
    config = write_config(tmp_path, mill())
    program = write_program(tmp_path, "long.nc", long_program(300))
    env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labbridge.cli.main", "stream", str(program), "-m", "mill-1", "--config", str(config),
         "--port", sim.port, "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(sim.received.program_lines()) < 30:
            assert time.monotonic() < deadline and proc.poll() is None, "the stream did not get going"
            time.sleep(0.05)
        sim.sim.unplug()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    (job,) = jobs(tmp_path)
    assert job.state == JobState.INTERRUPTED and job.last_acked_line
    assert "connection lost" in err and f"line {job.last_acked_line}" in err


def test_usage_errors_exit_2(tmp_path: Path, grbl_sim) -> None:
    sim = grbl_sim()
    config = write_config(tmp_path, mill())
    no_tty = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(config), "--port", sim.port)
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    unknown = cli(tmp_path, str(NAMEPLATE), "-m", "mill-9", "--config", str(config), "--yes")
    assert unknown.returncode == 2 and "mill-9" in unknown.stderr
    missing = cli(tmp_path, "nope.nc", "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
    assert missing.returncode == 2 and "nope.nc" in missing.stderr
    no_port = write_config(tmp_path, mill(connection=Connection()))
    result = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(no_port), "--yes")
    assert result.returncode == 2 and "--port" in result.stderr
    assert sim.received.lines() == []
    assert "Traceback" not in no_tty.stderr + unknown.stderr + missing.stderr + result.stderr


def test_against_labbridge_sim_grbl_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, mill())
    sim = subprocess.Popen([sys.executable, "-m", "labbridge.cli.main", "sim", "grbl", "--config", str(config),
                            "--time-scale", "50"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = sim.stdout.readline().strip()
        assert port.startswith("/dev/")
        result = cli(tmp_path, str(NAMEPLATE), "-m", "mill-1", "--config", str(config), "--port", port, "--yes")
        assert result.returncode == 0, result.stderr
        assert "completed" in result.stdout
    finally:
        sim.terminate()
        sim.wait(timeout=10)


async def test_fanuc_machine_streams_by_dnc(tmp_path: Path) -> None:
    from labbridge.sim.fanuc.launch import start_fanuc_sim

    lathe = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
    async with await start_fanuc_sim("lathe-1", lathe, modbus=False, time_scale=50.0) as sim:
        config = tmp_path / "machines.yaml"
        config.write_text(yaml.safe_dump({"machines": {"lathe-1": sim.machine.model_dump(mode="json")}}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "labbridge.cli.main", "stream", str(EXAMPLES / "lathe-1-shaft.nc"),
            "-m", "lathe-1", "--config", str(config), "--yes",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")})
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err.decode()
        assert "completed" in out.decode() and "blocks sent by DNC" in out.decode()
    (job,) = jobs(tmp_path)
    assert job.state == JobState.COMPLETED and job.machine == "lathe-1" and job.lines_acked > 0
    assert job.protocol == "dnc" and job.lines_acked == job.lines_total and job.program_sha256
    listed = subprocess.run([sys.executable, "-m", "labbridge.cli.main", "jobs", "--json", "--data-dir",
                             str(tmp_path / "data")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert record["id"] == job.id and record["state"] == "completed" and record["protocol"] == "dnc"
    table = subprocess.run([sys.executable, "-m", "labbridge.cli.main", "jobs", "-m", "lathe-1"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path,
                           env={**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")})
    assert table.returncode == 0 and job.id in table.stdout and "dnc" in table.stdout
