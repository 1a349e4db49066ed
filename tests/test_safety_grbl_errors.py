"""The interpreter rejects exactly what real GRBL 1.1h rejected in the recorded session, with its error number.

The GRBL simulator answers ``error:N`` from these diagnostics, so this is also what holds the simulator to the
firmware for G-code blocks.
"""

from __future__ import annotations

import ast
import re

import pytest

from labbridge.safety import Interpreter

from .conftest import TRACES, make_machine


def recorded_invalid_commands() -> list[tuple[str, str]]:
    text = (TRACES / "grbl-1.1h-transcript.txt").read_text()
    section = text.split("===== invalid commands =====", 1)[1].split("=====", 1)[0]
    pairs = []
    for line in section.splitlines():
        m = re.match(r"^('.*') -> (\[.*\])$", line)
        if m:
            pairs.append((ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))[0]))
    return pairs


PAIRS = recorded_invalid_commands()


def test_trace_section_was_found():
    assert len(PAIRS) >= 12


@pytest.mark.parametrize("command, reply", [p for p in PAIRS if not p[0].startswith("$")])
def test_interpreter_matches_real_grbl(command, reply):
    machine = make_machine(envelope={"X": [-1e9, 1e9], "Y": [-1e9, 1e9], "Z": [-1e9, 1e9]})
    result = Interpreter(machine).execute(command, 1)
    if reply == "ok":
        assert result.ok, result.diagnostics
    else:
        assert not result.ok
        assert f"error:{result.diagnostics[0].grbl_error}" == reply, result.diagnostics


@pytest.mark.parametrize(
    "block, error",
    [
        ("G1.5 X1", 23), ("M3.5", 23), ("T256", 38), ("N10000001 G0 X1", 27), ("G10 L2 P7 X0", 29),
        ("G10 L3 P1 X0", 20), ("G10 P1 X0", 20), ("G10 X0", 28), ("G53 G2 X1 I1 F10", 30), ("G80 X1", 31),
        ("G43.1 X1", 37), ("G0 X1 I5", 36), ("G2 Z5 I1 F10", 32), ("G2 X0 Y0 R5 F10", 33),
        ("G2 X30 R5 F10", 34), ("G2 X1 Y0 I5 J0 F10", 33), ("G43 H1", 20), ("G7", 20), ("M7", 20),
        ("G38.2 X0 Y0 Z0 F10", 33), ("G38.6 X1 F10", 20), ("A5", 20), ("G0 X1 Y1 G43.1 Z1", 24),
    ],
)
def test_more_grbl_errors(block, error):
    result = Interpreter(make_machine()).execute(block, 1)
    assert not result.ok and result.diagnostics[0].grbl_error == error, result.diagnostics


def test_program_end_resets_modes_like_grbl():
    interp = Interpreter(make_machine())
    for block in ("G20 G91 G18 G55 M3 S1000 M8 G2 X2 I1 F10", "M30"):
        assert interp.execute(block, 1).ok
    # G1 G17 G90 G94 G54 M5 M9 restored; units, feed and speed kept (GRBL 1.1 gc_execute_line).
    # $G reports the feed in mm/min unless $13 asks for inches: F10 in/min is F254.
    assert interp.modal_words() == "G1 G54 G17 G20 G90 G94 M5 M9 T0 F254 S1000"


def test_modal_words_look_like_grbl_dollar_g():
    interp = Interpreter(make_machine())
    assert interp.modal_words() == "G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0"


# gc_execute_line (gcode.c), step 2 reads word by word: the first faulty word decides, and for a G word the
# axis-command conflict (24) comes before its decimals (20/23) and before the modal-group check (21).
@pytest.mark.parametrize(
    "block, error",
    [
        ("G1 X1 X2 Y", 25), ("G5 X", 20), ("G1 X1 Y", 2), ("T1 T300", 38), ("G0 G1 X1", 24),
        ("G28 G92 X1", 24), ("G43.1 G49", 24), ("G0 X1 G43", 24), ("G28.1 G30.1", 21), ("G4 G53", 21),
        ("G0 X1 G80", 21), ("G59.1", 23), ("G54.1", 23), ("G10.1 L2 P1 X1", 23), ("G2.1 X1", 23), ("G28.2", 20),
        ("G61.1", 20), ("G90.1", 20), ("G43", 20), ("G38.6 X1", 20), ("M3 M4 S-1", 21), ("G-0.5 X1", 23),
        # [2] the G93 feed check comes before [10] the G4 P check
        ("G4 G93 G1 X1", 22),
        # [19] G10 fails for missing L/P only when both are missing; no L reads as L0
        ("G10 X0", 28), ("G10 P1 X0", 20),
        # [20] under G80 any axis word is refused, even G43.1's
        ("G80 G43.1 Z1", 31), ("G80 G92 X1", 31),
    ],
)
def test_gc_execute_line_order_of_checks(block, error):
    result = Interpreter(make_machine()).execute(block, 1)
    assert not result.ok and result.diagnostics[0].grbl_error == error, result.diagnostics


@pytest.mark.parametrize("block", ["G10 L2 X5", "G10 L20 X0", "G49.5", "N10000000.5", "G28.1 X1", "G92.1"])
def test_blocks_gc_execute_line_accepts(block):
    """gcode.c: G10 without P is P0 (the active system); G49's decimals are never checked; N is truncated
    before the limit; G28.1/G92.1 leave axis words to an implicit motion."""
    assert Interpreter(make_machine()).execute(block, 1).ok


def test_g10_without_p_sets_the_active_offset_and_says_so():
    interp = Interpreter(make_machine())
    assert interp.execute("G55", 1).ok
    result = interp.execute("G10 L2 X5", 2)
    assert result.ok and interp.work_offsets["G55"][0] == 5.0 and interp.work_offsets["G54"][0] == 0.0
    assert [d.code for d in result.diagnostics if d.severity == "warning"] == ["missing-word"]


@pytest.mark.parametrize("block", ["G1 X1 F10!", "G0 X1?", "G0 ~X1"])
def test_realtime_characters_are_refused_without_claiming_a_grbl_error(block):
    # serial.c takes ? ! ~ out of the stream (and acts on them): gc_execute_line never sees them, so GRBL
    # answers no error:1; the gate still refuses the block (a '!' would hold the machine).
    result = Interpreter(make_machine()).execute(block, 1)
    assert not result.ok and result.diagnostics[0].grbl_error is None
    assert "realtime command" in result.diagnostics[0].message
