"""Inputs that never end: FIFOs without writers, /dev/zero, endless pipes, progress on a terminal, read once."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labbridge.errors import ProgramReadError
from labbridge.safety.source import ProgramSource, parse_size
from tests.jobs_support import long_program, mill
from tests.test_stream_cli import Sim, write_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "machines.yaml"


def labbridge(tmp_path: Path, *args: str, timeout: float = 60.0, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "labbridge.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path, **kw)


def fifo(tmp_path: Path, name: str = "prog.nc") -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def feed(path: Path, chunks: list[bytes], pause: float = 0.0) -> threading.Thread:
    """A writer on another thread: opens the FIFO (waiting for the reader), writes, pauses between chunks."""
    def run() -> None:
        with open(path, "wb") as fh:
            for i, chunk in enumerate(chunks):
                if i and pause:
                    time.sleep(pause)
                try:
                    fh.write(chunk)
                    fh.flush()
                except BrokenPipeError:
                    return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def program_bytes(moves: int = 40) -> bytes:
    return ("\n".join(long_program(moves)) + "\n").encode()


def test_sizes_read_as_people_write_them() -> None:
    assert parse_size("100") == parse_size("100MB") == parse_size("100 MiB") == 100 * 1024 * 1024
    assert parse_size("512K") == 512 * 1024 and parse_size("1.5GB") == int(1.5 * 1024 ** 3)
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_check_of_a_fifo_nobody_writes_ends_with_a_message(tmp_path: Path) -> None:
    path = fifo(tmp_path)
    started = time.monotonic()
    result = labbridge(tmp_path, "check", str(path), "-m", "mill-1", "--config", str(CONFIG), "--pipe-timeout", "1")
    assert result.returncode == 2, result.stderr
    assert "nothing has been written to this pipe for 1 s (--pipe-timeout)" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 30


def test_check_of_dev_zero_is_binary_at_once(tmp_path: Path) -> None:
    result = labbridge(tmp_path, "check", "/dev/zero", "-m", "mill-1", "--config", str(CONFIG), "--json", timeout=30)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [d["code"] for d in report["diagnostics"]] == ["binary"]
    assert "no line end in the first 64 KiB" in report["diagnostics"][0]["message"]


def test_an_endless_pipe_is_refused_beyond_max_size(tmp_path: Path) -> None:
    path = fifo(tmp_path)
    line = b"G1 X10 Y10 F500\nG1 X0 Y0\n"
    feed(path, [line * 4096] * 200)  # ~20 MB if nobody stopped it
    result = labbridge(tmp_path, "check", str(path), "-m", "mill-1", "--config", str(CONFIG), "--max-size", "1MB")
    assert result.returncode == 2, result.stderr
    assert "more than 1 MB arrived from this pipe and reading stopped" in result.stderr


def test_a_pipe_that_goes_silent_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = fifo(tmp_path)
    writer = open_writer_later(path)
    result = labbridge(tmp_path, "check", str(path), "-m", "mill-1", "--config", str(CONFIG), "--pipe-timeout", "1")
    writer.set()
    assert result.returncode == 2, result.stderr
    assert "the pipe went silent after" in result.stderr


def open_writer_later(path: Path) -> threading.Event:
    """A writer that writes one line and then keeps the pipe open, silent, until released."""
    done = threading.Event()

    def run() -> None:
        with open(path, "wb") as fh:
            fh.write(b"G21 G90\n")
            fh.flush()
            done.wait(30)

    threading.Thread(target=run, daemon=True).start()
    return done


def test_check_shows_progress_on_a_terminal_only_after_two_seconds(tmp_path: Path) -> None:
    data = program_bytes(400)
    half = len(data) // 2
    outputs = {}
    for terminal in (True, False):
        path = fifo(tmp_path, f"slow-{terminal}.nc")
        feed(path, [data[:half], data[half:]], pause=3.0)
        master, slave = pty.openpty() if terminal else os.pipe()[::-1]
        env = {**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "100"}
        proc = subprocess.Popen([sys.executable, "-m", "labbridge.cli.main", "check", str(path), "-m", "mill-1",
                                 "--config", str(CONFIG)], stdout=subprocess.PIPE, stderr=slave, env=env,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "check hung"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the pty's other side closed
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and b"OK for mill-1" in out
        outputs[terminal] = seen.decode(errors="replace")
    assert "checking slow-True.nc" in outputs[True]
    assert outputs[False] == ""


def test_the_spool_keeps_the_checked_bytes_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "p.nc"
    original = program_bytes(5)
    path.write_bytes(original)
    source = ProgramSource(path, spool=True)
    while source.read(7):
        pass
    path.write_bytes(b"G0 X500\n")  # replaced after the check
    assert source.data() == original
    import hashlib
    assert source.sha256 == hashlib.sha256(original).hexdigest()
    source.close()
    with pytest.raises(ProgramReadError, match="is a directory"):
        ProgramSource(tmp_path)


def test_stream_from_a_fifo_checks_once_homes_and_sends_exactly_the_checked_bytes(tmp_path: Path) -> None:
    sim = Sim(mill(homing_required=True), time_scale=50.0)
    try:
        config = write_config(tmp_path, mill(homing_required=True))
        path = fifo(tmp_path)
        data = program_bytes(30)
        feed(path, [data])
        result = labbridge(tmp_path, "stream", str(path), "-m", "mill-1", "--config", str(config), "--port",
                           sim.port, "--yes", "--home", timeout=120)
        assert result.returncode == 0, result.stderr
        lines = [ln for ln in data.decode().splitlines() if ln]
        assert sim.received.program_lines() == [ln.replace(" ", "") for ln in lines]
        assert sim.received.lines().count("$H") == 1
    finally:
        sim.close()


@pytest.mark.parametrize("case", ["no writer", "rejected"])
def test_stream_from_a_bad_fifo_never_opens_the_port(tmp_path: Path, case: str) -> None:
    sim = Sim(mill(homing_required=True))
    try:
        config = write_config(tmp_path, mill(homing_required=True))
        path = fifo(tmp_path)
        if case == "rejected":
            feed(path, [b"G21 G90\nG0 X500\nM30\n"])
        result = labbridge(tmp_path, "stream", str(path), "-m", "mill-1", "--config", str(config), "--port",
                           sim.port, "--yes", "--home", "--pipe-timeout", "1")
        assert result.returncode == (2 if case == "no writer" else 1), result.stderr
        time.sleep(0.3)
        assert sim.sim.snapshot()["bytes_in"] == 0  # not a byte: no homing, no reset
    finally:
        sim.close()
