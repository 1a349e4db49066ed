"""One owner per machine: lock files in the data dir, exclusive serial ports, real processes refused (exit 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from labbridge.config import Connection, SerialConnection
from labbridge.streaming.ownership import MachineBusy, MachineLock
from labbridge.transports import exclusive
from tests.jobs_support import long_program, mill, write_program
from tests.test_stream_cli import Sim, write_config

HOLDER = """
import sys, time
from labbridge.config import Connection, SerialConnection
from labbridge.streaming.ownership import MachineLock
lock = MachineLock(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None,
                   command="labbridge serve --data-dir somewhere").take()
print("held", flush=True)
time.sleep(120)
"""


def hold_in_process(data_dir: Path, machine_id: str, port: str | None = None) -> subprocess.Popen[str]:
    """Another process that owns the machine until killed."""
    args = [sys.executable, "-c", HOLDER, str(data_dir), machine_id] + ([port] if port else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def stream(tmp_path: Path, *args: str, data: Path | None = None, wait: bool = True):
    env = {**os.environ, "LABBRIDGE_DATA_DIR": str(data or tmp_path / "data")}
    cmd = [sys.executable, "-m", "labbridge.cli.main", "stream", *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env, stdin=subprocess.DEVNULL,
                          cwd=tmp_path)


def test_a_second_claim_is_refused_naming_the_owner_and_freed_on_release(tmp_path: Path) -> None:
    first = MachineLock(tmp_path, "mill-1", command="labbridge stream a.nc -m mill-1").take()
    with pytest.raises(MachineBusy) as caught:
        MachineLock(tmp_path, "mill-1").take()
    assert caught.value.owner is not None and caught.value.owner.pid == os.getpid()
    assert f"pid {os.getpid()} (labbridge stream a.nc -m mill-1) since " in str(caught.value)
    assert MachineLock(tmp_path, "mill-1").holder() == first.owner
    first.release()
    assert MachineLock(tmp_path, "mill-1").holder() is None
    MachineLock(tmp_path, "mill-1").take().release()


def test_two_machine_ids_on_one_port_are_one_owner(tmp_path: Path) -> None:
    target = tmp_path / "ttyUSB0"
    target.touch()
    link = tmp_path / "by-id"
    link.symlink_to(target)
    with MachineLock(tmp_path, "mill-1", str(target)):
        with pytest.raises(MachineBusy, match=r"mill-2's port .*by-id is in use by pid"):
            MachineLock(tmp_path, "mill-2", str(link)).take()
        assert MachineLock(tmp_path, "mill-2").holder() is None  # the failed claim left nothing held


def test_a_killed_owner_frees_the_machine(tmp_path: Path) -> None:
    holder = hold_in_process(tmp_path, "mill-1")
    with pytest.raises(MachineBusy, match=rf"pid {holder.pid} \(labbridge serve --data-dir somewhere\)"):
        MachineLock(tmp_path, "mill-1").take()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    MachineLock(tmp_path, "mill-1").take().release()


def test_second_stream_is_refused_before_touching_the_port(tmp_path: Path) -> None:
    sim = Sim(mill(), time_scale=2.0)
    try:
        config = write_config(tmp_path, mill())
        program = write_program(tmp_path, "long.nc", long_program(400))
        first = stream(tmp_path, str(program), "-m", "mill-1", "--config", str(config), "--port", sim.port,
                       "--yes", wait=False)
        deadline = time.monotonic() + 60
        while len(sim.received.program_lines()) < 10:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never streamed"
            time.sleep(0.05)
        before = bytes(sim.received.data), bytes(sim.received.realtime)
        second = stream(tmp_path, str(program), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
        assert second.returncode == 3, second.stderr
        assert f"mill-1 is in use by pid {first.pid} (labbridge stream {program}" in second.stderr
        assert "nothing was sent" in second.stderr
        received = bytes(sim.received.data)
        assert received.startswith(before[0]) and b"$I" not in received[len(before[0]):]  # no second handshake
        assert b"\x18" not in bytes(sim.received.realtime)[len(before[1]):]  # and no reset
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    finally:
        sim.close()


def test_a_port_held_elsewhere_is_refused_naming_the_holder(tmp_path: Path) -> None:
    sim = Sim(mill())
    holder = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.1, exclusive=True)
    try:
        with pytest.raises(serial.SerialException) as caught:
            serial.serial_for_url(sim.port, baudrate=115200, timeout=0.1, exclusive=True)
        assert exclusive.is_lock_failure(caught.value)
        config = write_config(tmp_path, mill())
        program = write_program(tmp_path, "p.nc", long_program(5))
        result = stream(tmp_path, str(program), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes")
        assert result.returncode == 3, result.stderr
        assert f"is in use by another program (pid {os.getpid()} (" in result.stderr
        assert "nothing was sent" in result.stderr
    finally:
        holder.close()
        sim.close()


def test_state_refuses_a_machine_owned_by_a_server(tmp_path: Path) -> None:
    sim = Sim(mill())
    try:
        config = write_config(tmp_path, mill(connection=Connection(serial=SerialConnection(port=sim.port))))
        holder = hold_in_process(tmp_path / "data", "mill-1")
        try:
            env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}
            result = subprocess.run([sys.executable, "-m", "labbridge.cli.main", "state", "mill-1", "--config",
                                     str(config), "--json"], capture_output=True, text=True, timeout=60, env=env)
            assert result.returncode == 3
            assert f"in use by pid {holder.pid} (labbridge serve --data-dir somewhere)" in result.stderr
            assert sim.sim.snapshot()["bytes_in"] == 0
        finally:
            holder.kill()
            holder.wait(10)
    finally:
        sim.close()
