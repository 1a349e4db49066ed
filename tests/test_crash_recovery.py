"""Crash and restart with real processes: ``labbridge stream`` killed by SIGKILL mid-job, then run again;
a stream stopped by SIGSTOP mid-cut. Against the GRBL simulator on a real pty."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labbridge.protocols.grbl import clean_line
from labbridge.safety import Interpreter
from labbridge.streaming.job import JobState
from labbridge.streaming.records import JobStore
from tests.jobs_support import mill, write_program
from tests.test_stream_cli import Sim, write_config


def program(moves: int, step: float = 4.0, feed: int = 600) -> list[str]:
    """Spindle and flood coolant on, then short feed moves back and forth in the stock area."""
    lines = ["G21 G90 G94 G17 G54", "G0 Z5", "M3 S8000", "M8", "G0 X0 Y0", "G1 Z-1 F200"]
    for i in range(moves):
        lines.append(f"G1 X{step if i % 2 == 0 else 0.0:.3f} Y{(i % 20) * 0.5:.3f} F{feed}")
    return lines + ["G0 Z5", "M9", "M5", "M30"]


def stream(tmp_path: Path, *args: str, wait: bool = True, timeout: float = 120):
    env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "labbridge.cli.main", "stream", *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
                          cwd=tmp_path)


def only_job(tmp_path: Path):
    with JobStore(tmp_path / "data") as store:
        jobs = store.list_jobs()
        return jobs, {j.id: store.events(j.id) for j in jobs}


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_job_is_recorded_reported_made_safe_and_resumed(tmp_path: Path) -> None:
    sim = Sim(mill(), time_scale=2.0, reset_on_open=False)  # a board whose port open does not reset it
    try:
        config = write_config(tmp_path, mill())
        lines = program(120)
        path = write_program(tmp_path, "part.nc", lines)
        first = stream(tmp_path, str(path), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes",
                       wait=False)

        def recorded() -> bool:
            jobs, _ = only_job(tmp_path) if (tmp_path / "data").exists() else ([], {})
            return bool(jobs) and (jobs[0].executed_line or 0) >= 30

        wait_until(recorded, what="the first run to record an executed line")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        (job,), _ = only_job(tmp_path)
        assert job.state == JobState.RUNNING  # what a crash leaves behind, until someone looks
        wait_until(lambda: sim.sim.snapshot()["state"] == "Idle", what="the controller to run dry")
        assert sim.sim.firmware.spindle[0] == 3 and sim.sim.firmware.coolant[0]  # left turning, coolant on

        second = stream(tmp_path, str(path), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes",
                        "--from-line", str(job.executed_line))
        assert second.returncode == 0, second.stderr
        err = second.stderr
        assert f"job {job.id} on mill-1 (part.nc) was left running by a process that is gone" in err
        assert "mill-1: the last job was interrupted: part.nc" in err and "the bridge stopped at" in err
        assert (f"last sent line {job.last_sent_line}, acknowledged line {job.last_acked_line}, executed line "
                f"{job.executed_line}") in err
        assert "mill-1 now: Idle, spindle ON (CW, 8000 rpm), coolant FLOOD" in err
        assert "spindle and coolant stopped (M5 M9)" in err
        # The controller ran on with what it had buffered: its position says it ran every line sent.
        assert (f"it ran every line sent (up to line {job.last_sent_line}): resume with --from-line "
                f"{job.last_sent_line + 1}") in err
        jobs, events = only_job(tmp_path)
        cut = next(j for j in jobs if j.id == job.id)
        resumed = next(j for j in jobs if j.id != job.id)
        assert cut.state == JobState.INTERRUPTED and "the bridge stopped at" in cut.message
        assert [e["event"] for e in events[cut.id]][-2:] == ["job_interrupted", "interruption_acknowledged"]
        assert resumed.state == JobState.COMPLETED and resumed.from_line == job.executed_line
        # The resumed stream: a preamble that rebuilds the modal state, then the program from that line on.
        sent = sim.received.program_lines()
        preamble_at = sent.index("M5M9") + 1
        assert sent[preamble_at] == "G21G90G94G17"
        tail = [clean_line(t) for t in lines[job.executed_line - 1:]]
        assert sent[-len(tail):] == tail
    finally:
        sim.close()


@pytest.mark.slow
def test_sigstop_mid_cut_is_recorded_as_starvation_at_the_line_where_the_tool_stood(tmp_path: Path) -> None:
    sim = Sim(mill(), time_scale=1.0)
    try:
        config = write_config(tmp_path, mill())
        lines = program(160, step=2.0, feed=1000)
        path = write_program(tmp_path, "part.nc", lines)
        proc = stream(tmp_path, str(path), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes",
                      wait=False)
        wait_until(lambda: len(sim.received.program_lines()) >= 40, what="40 lines streamed")
        proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: sim.sim.snapshot()["state"] == "Idle", what="the planner to run dry", timeout=30)
            stood = sim.sim.snapshot()["position"]
            last_line = len(sim.received.program_lines())  # each program line is one line on the wire here
            time.sleep(2.0)
        finally:
            proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        (job,), events = only_job(tmp_path)
        starved = [e for e in events[job.id] if e["event"] == "stream_starved"]
        assert len(starved) == 1 and starved[0]["seconds"] >= 2.0
        assert starved[0]["line"] == last_line
        assert f"no data for {starved[0]['seconds']:.1f} s at line {last_line} — check the surface there" in err
        assert f"at line {last_line} — check the surface there" in job.message
        interp = Interpreter(mill(), machine_id="mill-1")
        motions = [interp.execute(text, n).motions for n, text in enumerate(lines[:last_line], 1)][-1]
        assert math.dist(motions[-1].end, stood) < 0.05  # the tool stood at the end of that line
    finally:
        sim.close()
