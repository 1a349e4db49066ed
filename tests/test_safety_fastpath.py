"""The C fast path and the Python interpreter must agree on every program: same diagnostics, bounds, estimate."""

from __future__ import annotations

import io
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labbridge.safety.program import _fastcheck, check_stream

from .conftest import EXAMPLES, make_machine

pytestmark = pytest.mark.skipif(_fastcheck is None, reason="the C fast path was not built (no compiler)")


def both(program: bytes, machine, machine_id="m"):
    fast = check_stream(io.BytesIO(program), machine_id, machine, "p", fast=True)
    slow = check_stream(io.BytesIO(program), machine_id, machine, "p", fast=False)
    return fast, slow


def assert_same(fast, slow):
    a, b = fast.to_json(), slow.to_json()
    assert a["diagnostics"] == b["diagnostics"]
    assert a["ok"] == b["ok"] and a["lines"] == b["lines"]
    if b["bounds"] is None:
        assert a["bounds"] is None
    else:
        for side in ("min", "max"):
            for axis, v in b["bounds"][side].items():
                assert a["bounds"][side][axis] == pytest.approx(v, abs=1e-9)
    assert fast.estimated_seconds == pytest.approx(slow.estimated_seconds, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name, machine_id", [("mill-1-nameplate.nc", "mill-1"), ("lathe-1-shaft.nc", "lathe-1"),
                                              ("mill-2-drill-plate.nc", "mill-2"),
                                              ("student-first-try.nc", "mill-1")])
def test_examples_agree(lab, name, machine_id):
    fast, slow = both((EXAMPLES / name).read_bytes(), lab.machines[machine_id], machine_id)
    assert_same(fast, slow)


def test_fast_path_really_takes_plain_lines(lab):
    """Guard against a fast path that silently punts everything: it must own the plain motion lines."""
    from labbridge.safety.program import ProgramChecker

    lines = ["G21 G90 G54", "M3 S8000"] + [f"G1 X{10 + (i % 40)} Y{10 + (i % 7)} F500" for i in range(2000)] + ["M30"]
    pc = ProgramChecker("mill-1", lab.machines["mill-1"], "p")
    pc.read(io.BytesIO(("\n".join(lines) + "\n").encode()))
    report = pc.finish()
    assert report.ok and report.lines == len(lines)
    assert pc.interpreted_lines <= 4, pc.interpreted_lines  # the header, the first G1 (sets F), M30


MOTION = st.one_of(
    st.tuples(st.sampled_from(["G0", "G1", "", "g1"]), st.floats(-20, 120), st.floats(-20, 120), st.floats(-60, 5))
    .map(lambda t: f"{t[0]} X{t[1]:.3f} Y{t[2]:.3f} Z{t[3]:.3f}"),
    st.tuples(st.sampled_from(["G2", "G3"]), st.floats(0.5, 30), st.floats(0, 2 * math.pi), st.booleans())
    .map(lambda t: ("ARC", t)),
    st.sampled_from(["F300", "F2500", "G1 X10", "M5", "M3 S1000", "G91", "G90", "G20", "G21", "G17", "G18", "G19",
                     "(comment)", "G54", "G55", "G92 X0 Y0", "G92.1", "G0 Z5 (retract)", "G4 P0.1", "N10 G1 Y5",
                     "G1 X10 R5", "G93 G1 X5 F10", "G94", "G2 X0 R0", "G1 X1 Y1 Z1 F", "M30", "G1 X2.5.5",
                     "G1 X5 (unclosed", "G1 X6 ; cut", "(a) G1 (b) X7 (c)", "G1 X8 (Fräsen)", "G1 X9 (MSG, hi)",
                     "G0 X3 (x) Y4;(y)", "(only a comment)"]),
)


def render(items) -> bytes:
    out, x, y = [], 0.0, 0.0
    for item in items:
        if isinstance(item, tuple):
            _, (code, r, angle, full) = item
            # An arc from the current XY around a centre r away; full circle or an end point on the circle.
            cx, cy = x + r, y
            if full:
                out.append(f"{code} X{x:.4f} Y{y:.4f} I{r:.4f} J0")
            else:
                ex, ey = cx + r * math.cos(math.pi + angle), cy + r * math.sin(math.pi + angle)
                out.append(f"{code} X{ex:.4f} Y{ey:.4f} I{r:.4f} J0")
        else:
            out.append(item)
    return ("\n".join(["G21 G90 M3 S1000 F500"] + out) + "\n").encode()


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(MOTION, max_size=40))
def test_random_programs_agree(items):
    machine = make_machine(
        envelope={"X": [-50, 150], "Y": [-50, 150], "Z": [-80, 10]}, max_feed=2000,
        keep_out=[{"name": "clamp", "min": {"X": 40, "Y": 40, "Z": -80}, "max": {"X": 50, "Y": 50, "Z": -30}}],
    )
    assert_same(*both(render(items), machine))


@pytest.mark.slow
def test_long_program_agrees_across_chunk_boundaries(lab, monkeypatch):
    from bench.check_speed import generate  # the benchmark's own program generator

    monkeypatch.setattr("labbridge.safety.program.CHUNK_BYTES", 777)  # many lines split between chunks

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.ngc"
        generate(path, 30_000)
        data = path.read_bytes()
    machine = lab.machines["mill-1"]
    fast, slow = both(data, machine, "mill-1")
    assert_same(fast, slow)
    assert fast.lines == 30_000 and fast.ok


def test_comments_with_bad_bytes_are_judged_by_python_on_both_paths():
    machine = make_machine()
    program = b"G21 G90 M3 S1000 F500\nG1 X1 (ok)\nG1 X2 (\xff\xfe)\nG1 X3 ; \xc3\x28\nG1 X4 (\x00)\nM30\n"
    fast, slow = both(program, machine)
    assert_same(fast, slow)
    assert [d.line for d in fast.errors] == [3, 4, 5] and {d.code for d in fast.errors} == {"binary"}


def test_fast_path_names_modal_values_as_python_does():
    from labbridge.safety.modal import MotionMode, Plane

    for name, value in [("MOTION_RAPID", MotionMode.RAPID), ("MOTION_LINEAR", MotionMode.LINEAR),
                        ("MOTION_ARC_CW", MotionMode.ARC_CW), ("MOTION_ARC_CCW", MotionMode.ARC_CCW),
                        ("PLANE_XY", Plane.XY), ("PLANE_ZX", Plane.ZX), ("PLANE_YZ", Plane.YZ)]:
        assert getattr(_fastcheck, name) == value, name
