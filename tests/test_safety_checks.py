"""Every check has a case that trips it and a close case that does not."""

from __future__ import annotations

import pytest

from labbridge.safety import CODES, check_text

from .conftest import make_machine

OK_START = "G21 G90 M3 S1000\n"


def codes(program: str, machine=None, **kw) -> list[tuple[int, str, str]]:
    m = machine or make_machine(**kw)
    report = check_text(program, m, machine_id="t")
    return [(d.line, d.severity, d.code) for d in report.diagnostics]


def has(program, code, machine=None, **kw):
    return any(c == code for _, _, c in codes(program, machine, **kw))


LATHE = dict(controller="fanuc-lathe", envelope={"X": [-2, 100], "Z": [-200, 5]}, home={"X": 100, "Z": 5},
             spindle={"max_rpm": 3000}, tool_changer=True)
FANUC_MILL = dict(controller="fanuc-mill", tool_changer=True, tools={1: {"length": 50.0}},
                  envelope={"X": [-100, 100], "Y": [-100, 100], "Z": [-100, 100]})

# (code, program that trips it, program that does not, machine overrides)
CASES = [
    ("envelope", OK_START + "G0 X101\nM30\n", OK_START + "G0 X100\nM30\n", {}),
    # A full circle from (50,95) around (50,98): both ends inside, the arc's top at Y101 is not.
    ("envelope", OK_START + "G0 X50 Y95\nG1 F100\nG3 X50 Y95 I0 J3\nM30\n",
     OK_START + "G0 X50 Y95\nG1 F100\nG3 X50 Y95 I0 J2\nM30\n", {}),
    ("keep-out", OK_START + "G0 X0 Y0 Z-10\nG1 X40 F100\nM30\n", OK_START + "G0 X0 Y0 Z-1\nG1 X40 F100\nM30\n",
     {"keep_out": [{"name": "vise", "min": {"X": 20, "Y": -1, "Z": -50}, "max": {"X": 30, "Y": 1, "Z": -5}}]}),
    ("keep-out", OK_START + "G0 X10 Y0 Z-10\nG2 X30 Y0 I10 J0 F100\nM30\n",
     OK_START + "G0 X10 Y0 Z-10\nG3 X30 Y0 I10 J0 F100\nM30\n",
     {"envelope": {"X": [-100, 100], "Y": [-100, 100], "Z": [-50, 0]},
      "keep_out": [{"name": "clamp", "min": {"X": 19, "Y": 8, "Z": -50}, "max": {"X": 21, "Y": 12, "Z": 0}}]}),
    ("spindle-speed", "G21 M3 S10001\nM30\n", "G21 M3 S10000\nM30\n", {}),
    ("feed-rate", OK_START + "G1 X10 F1001\nM30\n", OK_START + "G1 X10 F1000\nM30\n", {}),
    ("feed-rate", OK_START + "G93 G1 X100 F11\nM30\n", OK_START + "G93 G1 X100 F10\nM30\n", {}),
    ("no-feed-rate", OK_START + "G1 X10\nM30\n", OK_START + "G1 X10 F100\nM30\n", {}),
    ("arc-radius-mismatch", OK_START + "G1 X10 F100\nG2 X20 Y1 I5 J0\nM30\n",
     OK_START + "G1 X10 F100\nG2 X20 Y0.001 I5 J0\nM30\n", {}),
    ("arc-zero-radius", OK_START + "G1 X10 F100\nG2 X10 Y0 I0 J0.0\nM30\n",
     OK_START + "G1 X10 F100\nG2 X10 Y0 I0 J1\nM30\n", {}),
    ("arc-impossible", OK_START + "G1 X10 F100\nG2 X40 R10\nM30\n", OK_START + "G1 X10 F100\nG2 X30 R10\nM30\n", {}),
    ("arc-impossible", OK_START + "G1 X10 F100\nG2 X10 R5\nM30\n", OK_START + "G1 X10 F100\nG2 X10 I5\nM30\n", {}),
    ("arc-no-offsets", OK_START + "G1 X10 F100\nG2 X20 K5\nM30\n", OK_START + "G1 X10 F100\nG2 X20 I5\nM30\n", {}),
    ("unsupported", OK_START + "G64\nM30\n", OK_START + "G61\nM30\n", {}),
    ("unsupported", OK_START + "O100 G0 X1\nM30\n", OK_START + "N100 G0 X1\nM30\n", {}),
    ("unsupported", OK_START + "#1=5\nM30\n", OK_START + "(#1=5)\nM30\n", {}),
    ("unsupported", OK_START + "G0 X[1+2]\nM30\n", OK_START + "G0 X3\nM30\n", {}),
    ("unsupported", OK_START + "M6 T1\nM30\n", OK_START + "T1\nM30\n", {}),
    ("unsupported-cycle", "G21 M3 S500\nG71 U1. R0.5\nM30\n", "G21 M3 S500\nG1 X10. F0.1\nM30\n", LATHE),
    ("unsupported-cycle", OK_START + "G81 X10 Z-5 R1 F100\nM30\n", OK_START + "G1 X10 F100\nM30\n", {}),
    ("line-too-long", OK_START + "G1 X1.00000 Y2.00000 Z-0.00001 F100.000 (long comments do not count)"
     + " S1000.00000000000000000000000000000000000000000\nM30\n",
     OK_START + "G1 X1.00000 Y2.00000 Z-0.00001 F100.000 (long comments do not count, only what GRBL keeps)"
     + "\nM30\n", {}),
    ("spindle-off-cut", "G21 G1 X10 F100\nM30\n", "G21 M3 S1000\nG1 X10 F100\nM30\n", {}),
    ("g96-no-clamp", "G21 G96 S100 M3\nG1 X10. F0.1\nM30\n", "G21 G50 S2000\nG96 S100 M3\nG1 X10. F0.1\nM30\n",
     LATHE),
    ("spindle-speed", "G21 G50 S4000\nG96 S100 M3\nM30\n", "G21 G50 S3000\nG96 S100 M3\nM30\n", LATHE),
    ("no-program-end", OK_START + "G0 X1\n", OK_START + "G0 X1\nM2\n", {}),
    ("tool-change", "G21 T2 M6\nM30\n", "G21 T2\nM30\n",
     {"controller": "fanuc-mill", "tool_changer": False, "tools": {}}),
    ("tool-change", "G21 T0202\nM30\n", "G21\nM30\n", {**LATHE, "tool_changer": False}),
    ("syntax", OK_START + "G1 X1.2.3 F100\nM30\n", OK_START + "G1 X1.23 F100\nM30\n", {}),
    ("syntax", OK_START + "G1 X F100\nM30\n", OK_START + "G1 X0 F100\nM30\n", {}),
    ("modal-conflict", OK_START + "G0 G1 X1 F100\nM30\n", OK_START + "G1 X1 F100\nM30\n", {}),
    ("modal-conflict", OK_START + "G92 X0 G0 X1\nM30\n", OK_START + "G92 X0\nG0 X1\nM30\n", {}),
    ("repeated-word", OK_START + "G0 X1 X2\nM30\n", OK_START + "G0 X2\nM30\n", {}),
    ("missing-word", OK_START + "G4\nM30\n", OK_START + "G4 P0.5\nM30\n", {}),
    ("invalid-value", OK_START + "G1 X1 F-100\nM30\n", OK_START + "G1 X1 F100\nM30\n", {}),
    ("unused-word", OK_START + "G0 X1 R5\nM30\n", OK_START + "G0 X1\nM30\n", {}),
    ("no-axis-words", OK_START + "G92\nM30\n", OK_START + "G92 X0\nM30\n", {}),
    ("forbidden-code", OK_START + "G53 G0 X1\nM30\n", OK_START + "G0 X1\nM30\n", {"forbidden_codes": ["G53"]}),
    ("after-end", OK_START + "M30\nG0 X1\n", OK_START + "G0 X1\nM30\n", {}),
    ("probe", OK_START + "G38.2 X0 F100\nM30\n", OK_START + "G38.2 X5 F100\nM30\n", {}),
]


@pytest.mark.parametrize("code, bad, good, machine", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_trips_and_does_not(code, bad, good, machine):
    assert has(bad, code, **machine), codes(bad, **machine)
    assert not has(good, code, **machine), codes(good, **machine)


def test_every_stable_code_is_exercised():
    exercised = {c[0] for c in CASES} | {"binary", "too-many-diagnostics"}
    assert set(CODES) == exercised


def test_binary_input_is_a_diagnostic_not_a_crash():
    from labbridge.safety import check_program

    m = make_machine()
    report = check_program(b"G0 X1\n\x00\x01\x02\xff\xfe\n" * 10, m)
    assert not report.ok and {d.code for d in report.errors} == {"binary"}
    report = check_program("G0 X1\n".encode() + "é".encode("latin-1") + b"\n", m)
    assert [d.line for d in report.errors] == [2] and report.errors[0].code == "binary"


def test_too_many_diagnostics_are_capped_but_still_counted():
    from labbridge.safety.program import MAX_DIAGNOSTICS

    m = make_machine()
    report = check_text(OK_START + "G0 X200\n" * (MAX_DIAGNOSTICS + 50) + "M30\n", m)
    assert len(report.diagnostics) == MAX_DIAGNOSTICS + 1
    assert report.diagnostics[-1].code == "too-many-diagnostics"
    assert report.error_count == MAX_DIAGNOSTICS + 50 and not report.ok


def test_failing_block_changes_no_modal_state():
    from labbridge.safety import Interpreter

    interp = Interpreter(make_machine())
    assert interp.execute("G21 G90 G1 X1 F100", 1).ok
    before = interp.modal_words()
    result = interp.execute("G91 G20 G2 X5 F50", 2)  # no centre: rejected
    assert not result.ok and result.diagnostics[0].grbl_error == 35
    assert interp.modal_words() == before
    assert interp.position == [1.0, 0.0, 0.0]


def test_envelope_message_speaks_machine_and_work_coordinates():
    m = make_machine(work_offsets={"G54": {"X": 50, "Y": 0, "Z": 0}})
    report = check_text(OK_START + "G54 G0 X60\nM30\n", m, machine_id="mill-9")
    (d,) = report.errors
    assert d.line == 2 and "X110.000 (machine)" in d.message and "X60.000 in work coordinates" in d.message
    assert "mill-9" in d.message


def test_feed_message_tells_the_student_how_to_fix_it():
    report = check_text(OK_START + "G1 X10\nM30\n", make_machine(max_feed=2000))
    (d,) = report.errors
    assert d.message == "G1 needs a feed rate: add F200 to this line or an earlier one"


def test_grbl_only_constructs_allowed_on_fanuc_style():
    mill = make_machine(**FANUC_MILL)
    program = "%\nO1234\nG21 G17 G90 G94\nT1 M6\nG43 H1 Z10.\nS1000 M3\nG1 X10. F100.\nG80\nM30\n%\n"
    report = check_text(program, mill)
    assert report.ok, report.diagnostics


def test_fanuc_macro_and_subprogram_rejected_by_name():
    mill = make_machine(**FANUC_MILL)
    report = check_text("G21\nM98 P1000\n#100=1\nG65 P9000\nM30\n", mill)
    messages = [d.message for d in report.errors]
    assert any("M98" in m for m in messages) and any("macro" in m for m in messages)
    assert any("G65" in m for m in messages)


def test_lathe_gcode_system_a_feed_modes_and_cycles():
    lathe = make_machine(**LATHE)  # system A by default, like most Fanuc lathes
    # G99: F is mm per revolution (0.2 mm/rev at 1000 rpm is 200 mm/min); G98: mm per minute.
    assert check_text("G21 G99 G97 S1000 M3\nG1 X50. F0.2\nM30\n", lathe).ok
    per_rev = check_text("G21 G99 G97 S1000 M3\nG1 X50. F2.\nM30\n", lathe)
    assert [d.code for d in per_rev.errors] == ["feed-rate"]  # 2 mm/rev x 1000 rpm = 2000 mm/min > 1000
    assert check_text("G21 G98 G97 S1000 M3\nG1 X50. F200.\nM30\n", lathe).ok
    turning_cycle = check_text("G21 G97 S1000 M3\nG90 X40. Z-20. F0.2\nM30\n", lathe)
    assert [d.code for d in turning_cycle.errors] == ["unsupported-cycle"]
    assert "single turning cycle" in turning_cycle.errors[0].message
    assert [d.code for d in check_text("G21 G91 G0 U1.\nM30\n", lathe).errors] == ["unsupported"]


def test_lathe_gcode_system_b_is_configurable():
    lathe = make_machine(**LATHE, gcode_system="B")
    report = check_text("G21 G90 G95 G97 S1000 M3\nG1 X50. F0.2\nG91 G1 W-5.\nM30\n", lathe)
    assert report.ok, report.diagnostics
    assert report.bounds["min"]["Z"] == 0.0 and report.bounds["max"]["X"] == 100.0
