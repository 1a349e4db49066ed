"""Property tests: any input gives a report (never an exception), and arc bounds are exact."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labbridge.safety import check_program, check_text

from .conftest import make_machine

MACHINES = {
    "grbl": make_machine(),
    "fanuc-mill": make_machine(controller="fanuc-mill", tool_changer=True),
    "fanuc-lathe": make_machine(controller="fanuc-lathe", envelope={"X": [-10, 200], "Z": [-300, 10]},
                                spindle={"max_rpm": 3000}),
}
HUGE = {"X": [-1e6, 1e6], "Y": [-1e6, 1e6], "Z": [-1e6, 1e6]}


def assert_sane(report) -> None:
    assert isinstance(report.ok, bool)
    assert report.ok == (report.error_count == 0)
    for d in report.diagnostics:
        assert d.severity in ("error", "warning") and d.code and d.message
    if report.bounds is not None:
        for axis, low in report.bounds["min"].items():
            assert low <= report.bounds["max"][axis]
    assert report.estimated_seconds >= 0 and math.isfinite(report.estimated_seconds)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), dialect=st.sampled_from(sorted(MACHINES)))
def test_random_bytes_never_raise(data, dialect):
    assert_sane(check_program(data, MACHINES[dialect]))


LETTERS = st.sampled_from(list("GMXYZIJKRFSTPLNQHOUWDABC#[(;%/$ "))
NUMBERS = st.one_of(
    st.integers(-100, 400).map(str),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: f"{f:.4f}"),
    st.sampled_from(["", ".", "-", "1.2.3", "38.2", "91.1", "28.1", "43.1", "92.1", "1e5", "nan"]),
)
WORD = st.tuples(LETTERS, NUMBERS).map(lambda t: t[0] + t[1])
LINE = st.lists(WORD, max_size=8).map(" ".join)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(LINE, max_size=30), dialect=st.sampled_from(sorted(MACHINES)))
def test_random_gcode_never_raises(lines, dialect):
    assert_sane(check_text("\n".join(lines), MACHINES[dialect]))


PLANES = {"G17": (0, 1, 2, "IJ"), "G18": (2, 0, 1, "KI"), "G19": (1, 2, 0, "JK")}


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    plane=st.sampled_from(sorted(PLANES)),
    clockwise=st.booleans(),
    radius=st.floats(0.5, 200),
    start_angle=st.floats(-math.pi, math.pi),
    sweep=st.one_of(st.floats(0.05, 2 * math.pi - 0.05), st.just(2 * math.pi)),
    center=st.tuples(st.floats(-300, 300), st.floats(-300, 300), st.floats(-300, 300)),
    helix=st.floats(-20, 20),
)
def test_arc_bounds_contain_dense_samples_and_are_tight(plane, clockwise, radius, start_angle, sweep, center, helix):
    a, b, n, ij = PLANES[plane]
    signed = -sweep if clockwise else sweep
    start = [0.0, 0.0, 0.0]
    end = [0.0, 0.0, 0.0]
    start[a] = center[a] + radius * math.cos(start_angle)
    start[b] = center[b] + radius * math.sin(start_angle)
    start[n] = center[n]
    full = sweep == 2 * math.pi
    end_angle = start_angle + signed
    end[a] = start[a] if full else center[a] + radius * math.cos(end_angle)
    end[b] = start[b] if full else center[b] + radius * math.sin(end_angle)
    end[n] = center[n] + helix
    # GRBL keeps 8 digits of a number: write 4 decimals and work with the numbers as written.
    start = [round(v, 4) for v in start]
    end = [round(v, 4) for v in end]
    offsets = {a: round(center[a] - start[a], 4), b: round(center[b] - start[b], 4)}
    center = list(center)
    center[a], center[b] = start[a] + offsets[a], start[b] + offsets[b]
    radius = math.hypot(offsets[a], offsets[b])
    start_angle = math.atan2(start[b] - center[b], start[a] - center[a])
    tol = 2e-4  # the end point as written is up to 1e-4 off the circle

    def num(v: float) -> str:
        return f"{v:.4f}"

    words = " ".join(f"{'XYZ'[i]}{num(end[i])}" for i in range(3))
    centre_words = f"{ij[0]}{num(offsets[a])} {ij[1]}{num(offsets[b])}"
    program = (f"{plane} G90 G21 M3 S1000\nG0 X{num(start[0])} Y{num(start[1])} Z{num(start[2])}\n"
               f"{'G2' if clockwise else 'G3'} {words} {centre_words} F500\nM30\n")
    machine = make_machine(envelope=HUGE, max_feed=1000, line_buffer=1000)
    report = check_text(program, machine)
    assert report.ok, report.diagnostics
    lo, hi = report.bounds["min"], report.bounds["max"]
    samples = 4000
    seen_lo = [min(0.0, start[i]) for i in range(3)]  # the origin is the program's start position
    seen_hi = [max(0.0, start[i]) for i in range(3)]
    for k in range(samples + 1):
        t = k / samples
        ang = start_angle + signed * t
        p = [0.0, 0.0, 0.0]
        p[a] = center[a] + radius * math.cos(ang)
        p[b] = center[b] + radius * math.sin(ang)
        p[n] = start[n] + helix * t
        for i in range(3):
            axis = "XYZ"[i]
            assert lo[axis] - tol <= p[i] <= hi[axis] + tol, (axis, p[i], lo[axis], hi[axis])
            seen_lo[i] = min(seen_lo[i], p[i])
            seen_hi[i] = max(seen_hi[i], p[i])
    # Tight: the reported extremes are reached by the sampled path (to within the sampling resolution).
    resolution = radius * (1 - math.cos(math.pi / samples)) + tol
    for i in range(3):
        axis = "XYZ"[i]
        assert lo[axis] >= seen_lo[i] - resolution and hi[axis] <= seen_hi[i] + resolution
