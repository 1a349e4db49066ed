"""The simulated GRBL does what the firmware does with odd input, and the gate's rule holds against it: for a
grbl machine the gate's errors are on the lines where GRBL says error:N, with the same N, and where the gate
refuses a block GRBL would run (fail closed), its message says so."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.eta_accuracy import FACTORY_MACHINE, simulate
from labbridge.config import parse_config
from labbridge.protocols.grbl import clean_line
from labbridge.safety import check_program
from labbridge.safety.lexer import split_lines
from labbridge.safety.program import check_stream
from labbridge.sim.grbl.firmware import GrblFirmware
from labbridge.sim.grbl.settings import Eeprom

GOLDEN = Path(__file__).parent / "golden"


def machine():
    return parse_config({"machines": {"m": FACTORY_MACHINE}}, "test").machines["m"]


def answers(payload: bytes, fw: GrblFirmware | None = None, seconds: float = 30.0) -> tuple[list[str], GrblFirmware]:
    """Feed raw bytes (at most one RX buffer at a time) and run the firmware until it has answered them."""
    fw = fw or GrblFirmware(machine(), Eeprom())
    fw.take_output()
    replies: list[str] = []
    t, rest = 0.0, payload
    while t < seconds:
        if rest and len(fw.rx) < 64:
            fw.receive(rest[:64])
            rest = rest[64:]
        fw.step(t)
        replies += [r for r in fw.take_output().decode().split("\r\n") if r == "ok" or r.startswith("error")]
        if not rest and not fw.rx and fw.task is None and not fw.stepper.busy:
            break
        t += 0.005
    return replies, fw


def test_read_float_keeps_8_digits_so_a_tiny_feed_is_no_feed():
    replies, _ = answers(b"G21 G90\nG1 X5 F0.000000001\nG1 X5 F100.000000001\n")
    assert replies == ["ok", "error:22", "ok"]


def test_full_width_digits_are_dropped_by_the_serial_input_and_act_as_realtime_bytes():
    # U+FF11 is EF BC 91: 0x91 is the feed override +10 % realtime command, and the rest never reaches the line.
    replies, fw = answers("G1 F100 X\uff11\n".encode())
    assert replies == ["error:2"]
    assert fw.stepper.feed_override == 110


def test_cr_alone_ends_a_line():
    replies, fw = answers(b"G21\rG90\rG0 X5 Y5\rG0 Z-1\rG0 Z0\r")
    assert replies == ["ok"] * 5
    assert fw.stepper.position == pytest.approx([5.0, 5.0, 0.0])


def test_an_r_arc_whose_ends_meet_in_the_plane_is_accepted_as_grbl_accepts_it():
    replies, fw = answers(b"G21 G90\nG0 X10 Y10\nG2 X10 Y10 Z-5 R5 F100\n")
    assert replies == ["ok", "ok", "ok"]  # GRBL divides by zero and runs on a NaN centre
    assert fw.stepper.position == pytest.approx([10.0, 10.0, -5.0])
    report = check_stream(io.BytesIO(b"G21 G90\nG0 X10 Y10\nG2 X10 Y10 Z-5 R5 F100\nM30\n"), "m", machine(), "p")
    assert [(d.line, d.code) for d in report.errors] == [(3, "arc-impossible")]
    assert "GRBL 1.1 would accept" in report.errors[0].message


GRBL_GOLDEN = sorted(GOLDEN.glob("grbl-*.nc"))


@pytest.mark.parametrize("path", GRBL_GOLDEN, ids=[p.stem for p in GRBL_GOLDEN])
def test_gate_errors_are_where_grbl_says_error(path):
    """Line by line, as the streamer sends them: GRBL's error:N lines are the gate's lines with grbl_error N,
    up to the first block only the gate refuses (which must say that GRBL would run it)."""
    m = machine()
    data = path.read_bytes()
    report = check_program(data, m, machine_id="m")
    by_line: dict[int, list] = {}
    for d in report.errors:
        by_line.setdefault(d.line, []).append(d)
    replies, fw = answers(b"$C\n")  # check mode: GRBL's parser answers every line without moving the machine
    assert replies == ["ok"]
    for number, raw in enumerate(split_lines(data.decode("utf-8")), 1):
        text = clean_line(raw)
        if not text or text == "%":
            continue
        replies, fw = answers(text.encode() + b"\n", fw)
        grbl = [d.grbl_error for d in by_line.get(number, []) if d.grbl_error is not None]
        gate_only = [d for d in by_line.get(number, []) if d.grbl_error is None and d.code not in POLICY]
        if gate_only and replies == ["ok"]:
            assert "GRBL" in gate_only[0].message, gate_only[0]  # fail closed, and says so
            break
        expected = [f"error:{grbl[0]}"] if grbl else ["ok"]
        assert replies == expected, (number, raw, by_line.get(number))


POLICY = frozenset({"envelope", "keep-out", "feed-rate", "spindle-speed", "spindle-off-cut", "tool-change",
                    "forbidden-code", "arc-zero-radius"})


def test_the_simulator_takes_the_time_the_gate_estimates():
    lines = ["G21 G90 G94 G17", "M3 S500", "G0 X10 Y0", "G1 Z-1 F100", "F400", "G2 X-10 Y0 I-10 J0",
             "G1 X-10 Y20", "G3 X10 Y20 I10 J0", "G4 P0.3", "M8", "G1 X10 Y0", "M9", "M5", "M30"]
    report = check_stream(io.BytesIO(("\n".join(lines) + "\n").encode()), "m", machine(), "p")
    assert report.ok, report.diagnostics
    simulated = simulate(lines, machine(), 0.002, 0.002)
    assert report.estimated_seconds == pytest.approx(simulated, rel=0.01)
