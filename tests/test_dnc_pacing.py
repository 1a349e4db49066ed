"""DNC: at most dc3_slack characters reach the control after its DC3 — on a modelled line and on a real pty."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from labbridge.config import load_config
from labbridge.protocols import dnc as dp
from labbridge.protocols.dnc_pacing import Pacing, char_time, plan_pacing

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = [f"G1 X{i % 50 + 1} Z-{i % 7 + 1} F0.1" for i in range(300)]
TAPE = dp.frame_program(PROGRAM)


def after_dc3_on_a_line(pacing: Pacing | None, c: float, reaction: float, dc3_at: float,
                        chunk_size: int = 16) -> int:
    """Characters that reach the control after it sends DC3 at ``dc3_at`` (seconds after its DC1).

    The sender writes as early as its pacing allows and sees the DC3 only ``c + reaction`` later (the
    worst case it is built for); the line carries one character per ``c`` seconds, in order.
    """
    sender = dp.DncSender(TAPE, chunk_size=chunk_size, pacing=pacing, now=0.0)
    sender.receive_data(bytes([dp.DC1]), 0.0)
    seen_at = dc3_at + c + reaction
    now, line_free, after = 0.0, 0.0, 0
    while sender.state == dp.SendState.SENDING:
        if seen_at <= now:
            sender.receive_data(bytes([dp.DC3]), now)
            break
        chunk = sender.next_chunk(now)
        for _ in chunk:
            line_free = max(line_free, now) + c
            after += line_free > dc3_at  # this character arrives after the DC3 left the control
        # the old transport waited the chunk's line time; a paced sender says when it may write again
        now += sender.time_until_write(now) if pacing else len(chunk) * c
    return after


@settings(max_examples=80, deadline=None)
@given(baud=st.sampled_from([1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]),
       slack=st.integers(1, 40), reaction=st.floats(0.0005, 0.05), phase=st.floats(0.0, 1.0))
def test_the_worst_case_stays_within_the_slack_on_a_modelled_line(baud: int, slack: int, reaction: float,
                                                                   phase: float) -> None:
    c = char_time(baud, 7, "E", 2)
    pacing = plan_pacing(c, slack, reaction)
    assert pacing.worst_after_dc3 <= slack and 1 <= pacing.chunk <= slack
    for k in range(25):  # DC3 at many phases of the write cycle, some while a chunk is on the wire
        dc3_at = 0.02 + (k + phase) * pacing.period / 5
        assert after_dc3_on_a_line(pacing, c, reaction, dc3_at) <= slack


def test_sixteen_byte_chunks_overran_the_slack_and_the_pacing_uses_the_line() -> None:
    c = char_time(9600, 7, "E", 2)
    old = max(after_dc3_on_a_line(None, c, 0.002, 0.05 + i * c / 3) for i in range(60))
    assert old >= 16  # the tape-reader peer counted 16: at least a whole chunk followed a DC3
    default = plan_pacing(c, 10, 0.01)  # 9600 baud, the default slack and reaction: most of the line's rate
    assert default.worst_after_dc3 <= 10 and default.throughput > 0.7
    slow_reaction = plan_pacing(c, 10, 0.05)  # a slower reaction costs throughput, never the bound
    assert slow_reaction.gap > 0 and slow_reaction.worst_after_dc3 <= 10 and slow_reaction.throughput < 0.5
    with pytest.raises(ValueError):
        plan_pacing(c, 0)


PEER = r"""
import json, os, random, select, sys, time, tty
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
rng, pauses = random.Random(int(sys.argv[1])), int(sys.argv[2])
buf, counts = bytearray(), []

def read(timeout):
    ready, _, _ = select.select([master], [], [], timeout)
    return os.read(master, 4096) if ready else b""

while not buf:  # DC1 until the sender has opened the port and answers with the tape
    os.write(master, b"\x11")
    buf += read(0.1)
next_pause = rng.randint(80, 200)
while buf.count(b"%") < 2 or not buf.endswith(b"\n"):
    data = read(5.0)
    if not data:
        break
    buf += data
    if len(counts) < pauses and len(buf) >= next_pause:
        while data := read(0):  # everything that arrived before the DC3 goes out
            buf += data
        os.write(master, b"\x13")
        after, end = 0, time.monotonic() + 0.25
        while (left := end - time.monotonic()) > 0:
            data = read(left)
            after += len(data)
            buf += data
        counts.append(after)
        os.write(master, b"\x11")
        next_pause = len(buf) + rng.randint(80, 200)
print(json.dumps({"counts": counts, "received": len(buf)}), flush=True)
sys.stdin.read()  # keep the line open until the test is done (the sender still listens for a late NAK)
"""


@pytest.mark.slow
def test_a_pty_tape_reader_counts_at_most_ten_characters_after_each_dc3(tmp_path: Path) -> None:
    lathe = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
    program = tmp_path / "long.nc"
    program.write_text("%\nO0100\nG21 G18 G99\nG97 S600 M3\n" + "\n".join(PROGRAM[:120]) + "\nM30\n%\n")
    peer = subprocess.Popen([sys.executable, "-c", PEER, str(random.randrange(1 << 30)), "8"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout is not None
        port = peer.stdout.readline().strip()
        data = lathe.model_dump(mode="json")
        # 9600 baud, the default slack; the reaction allowance is generous so that a loaded test machine
        # stays within what the pacing was planned for.
        data["connection"]["dnc"].update(port=port, baudrate=9600, dc3_reaction=0.03)
        config = tmp_path / "machines.yaml"
        config.write_text(yaml.safe_dump({"machines": {"lathe-1": data}}))
        result = subprocess.run([sys.executable, "-m", "labbridge.cli.main", "stream", str(program), "-m", "lathe-1",
                                 "--config", str(config), "--yes"], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "LABBRIDGE_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        report = json.loads(peer.stdout.readline())
    finally:
        peer.kill()
        peer.wait(10)
    tape = dp.frame_program(program.read_text().splitlines())
    assert len(report["counts"]) == 8 and report["received"] == len(tape.data)
    assert max(report["counts"]) <= 10, report
