"""Golden programs with hand-computed bounds: arcs in every quadrant and plane, helical, G91, G20, G10, G92,
G28 with an intermediate point, G53. The test mill's machine and work coordinates coincide unless a program
sets offsets, so every expected number below can be checked with pencil and paper."""

from __future__ import annotations

import pytest

from labbridge.safety import check_text

from .conftest import make_machine

BIG = {"X": [-500, 500], "Y": [-500, 500], "Z": [-500, 500]}


def bounds(program: str, **machine) -> dict:
    m = make_machine(envelope=BIG, **machine)
    report = check_text(program, m, machine_id="t")
    errors = [d for d in report.diagnostics if d.severity == "error"]
    assert not errors, errors
    return report.bounds


def approx(b: dict, lo: tuple, hi: tuple) -> None:
    got_lo = tuple(b["min"][a] for a in "XYZ")
    got_hi = tuple(b["max"][a] for a in "XYZ")
    assert got_lo == pytest.approx(lo, abs=1e-6) and got_hi == pytest.approx(hi, abs=1e-6), (got_lo, got_hi)


def test_straight_moves_include_start():
    b = bounds("G0 X10 Y20 Z-5\nG1 X30 F100\nM30\n")
    approx(b, (0, 0, -5), (30, 20, 0))


def test_no_motion_means_null_bounds():
    m = make_machine(envelope=BIG)
    assert check_text("G21 G90\nM30\n", m).bounds is None


@pytest.mark.parametrize(
    "arc, lo, hi",
    [
        # Start (10,0) around centre (0,0), radius 10.
        ("G3 X0 Y10 I-10 J0", (0, 0, 0), (10, 10, 0)),  # first quadrant, no crossing beyond end points
        ("G3 X-10 Y0 I-10 J0", (-10, 0, 0), (10, 10, 0)),  # crosses +Y: Y reaches 10
        ("G3 X0 Y-10 I-10 J0", (-10, -10, 0), (10, 10, 0)),  # crosses +Y and -X
        ("G2 X0 Y10 I-10 J0", (-10, -10, 0), (10, 10, 0)),  # clockwise the long way: crosses -Y, -X
        ("G2 X0 Y-10 I-10 J0", (0, -10, 0), (10, 0, 0)),  # clockwise a quarter: no crossing
        ("G3 X10 Y0 I-10 J0", (-10, -10, 0), (10, 10, 0)),  # full circle
    ],
)
def test_arc_quadrants_xy(arc, lo, hi):
    b = bounds(f"G0 X10 Y0\nG1 F100\n{arc}\nM30\n")
    # G0 X10 from the origin also passes through the start position (0,0,0).
    lo = tuple(min(a, 0.0) for a in lo)
    approx(b, lo, hi)


def test_helical_arc_reaches_true_extremes_and_z_is_linear():
    b = bounds("G0 X5 Y0 Z0\nG2 X-5 Y0 Z-3 I-5 J0 F100\nM30\n")
    # Clockwise from angle 0 to pi passes -Y: Y reaches -5, never +5.
    approx(b, (-5, -5, -3), (5, 0, 0))


def test_arc_in_g18_zx_plane():
    # G18: plane axes (Z, X). Start X0 Z10, centre Z0 X0 (K-10), G3 to Z-10 X0 is a half circle through X... .
    b = bounds("G18\nG0 X0 Z10\nG3 X0 Z-10 K-10 I0 F100\nM30\n")
    # Counter-clockwise in (Z, X) from angle 0 (+Z) to pi (-Z) passes +X (pi/2): X reaches 10.
    approx(b, (0, 0, -10), (10, 0, 10))


def test_arc_in_g19_yz_plane():
    b = bounds("G19\nG0 Y10 Z0\nG2 Y-10 Z0 J-10 K0 F100\nM30\n")
    # G19 plane axes (Y, Z); clockwise from +Y to -Y passes -Z (angle -pi/2): Z reaches -10.
    approx(b, (0, -10, -10), (0, 10, 0))


def test_r_arc_centre_on_the_correct_side():
    # From (0,0) to (20,0) with R10: G2 centre at (10,0)... both signs give the half circle; G2 goes over +Y.
    b = bounds("G1 X0 Y0 F100\nG2 X20 Y0 R10\nM30\n")
    approx(b, (0, 0, 0), (20, 10, 0))
    b = bounds("G1 X0 Y0 F100\nG3 X20 Y0 R10\nM30\n")
    approx(b, (0, -10, 0), (20, 0, 0))


def test_negative_r_takes_the_long_way():
    # Chord (0,0)->(10,10), radius 10: the centres are (10,0) and (0,10). G2 R10 takes the short way round
    # (10,0): 90 degrees clockwise from angle pi to pi/2. G2 R-10 takes the other centre (0,10): clockwise
    # from -pi/2 through -pi (-X: X=-10) and pi/2 (+Y: Y=20) to 0, 270 degrees.
    b = bounds("G1 X0 Y0 F100\nG2 X10 Y10 R10\nM30\n")
    approx(b, (0, 0, 0), (10, 10, 0))
    b = bounds("G1 X0 Y0 F100\nG2 X10 Y10 R-10\nM30\n")
    approx(b, (-10, 0, 0), (10, 20, 0))


def test_incremental_g91():
    b = bounds("G91\nG0 X10 Y10\nG1 X5 Y-20 F100\nG1 Z-2\nM30\n")
    approx(b, (0, -10, -2), (15, 10, 0))


def test_inches_with_g10_offsets():
    # G10 L2 P1 sets G54 to X10 Y20 (mm, machine); then G20 X1 Y1 is machine X 35.4 Y 45.4.
    b = bounds("G10 L2 P1 X10 Y20 Z0\nG54 G20\nG0 X1 Y1\nG0 Z-0.5\nM30\n")
    approx(b, (0, 0, -12.7), (35.4, 45.4, 0))


def test_g10_l20_sets_offset_from_current_position():
    # At machine (30, 40, 0): L20 X0 Y0 makes G54 = (30, 40, 0); G0 X5 Y5 goes to machine (35, 45).
    b = bounds("G0 X30 Y40\nG10 L20 P1 X0 Y0\nG0 X5 Y5\nM30\n")
    approx(b, (0, 0, 0), (35, 45, 0))


def test_g92_shifts_and_g92_1_clears():
    # At (10,10): G92 X0 Y0 makes this point work zero; G0 X5 -> machine 15; after G92.1 X5 is machine 5.
    b = bounds("G0 X10 Y10\nG92 X0 Y0\nG0 X5 Y-20\nG92.1\nG0 X-30\nM30\n")
    approx(b, (-30, -10, 0), (15, 10, 0))


def test_g28_with_intermediate_point_homes_only_named_axes():
    # G28 position defaults to home (0,0,0). From (50,60,-10): G28 Z5 goes to Z5 then Z home; X, Y stay.
    m = make_machine(envelope=BIG)
    report = check_text("G0 X50 Y60 Z-10\nG28 Z5\nG0 X70\nM30\n", m)
    approx(report.bounds, (0, 0, -10), (70, 60, 5))


def test_g28_with_configured_position():
    b = bounds("G0 X50 Y60 Z-10\nG28\nM30\n", g28_position={"X": -20, "Y": 100, "Z": 0})
    approx(b, (-20, 0, -10), (50, 100, 0))


def test_g53_ignores_work_offset_and_g91():
    b = bounds("G10 L2 P1 X100 Y100\nG54 G91\nG53 G0 X-40 Y-30\nM30\n")
    approx(b, (-40, -30, 0), (0, 0, 0))


def test_work_offsets_from_config_and_live_override():
    m = make_machine(envelope=BIG, work_offsets={"G54": {"X": 100, "Y": 50, "Z": -20}})
    approx(check_text("G54 G0 X10 Y10 Z0\nM30\n", m).bounds, (0, 0, -20), (110, 60, 0))
    live = check_text("G54 G0 X10 Y10 Z0\nM30\n", m, work_offsets={"G54": (200.0, 0.0, 0.0)})
    approx(live.bounds, (0, 0, 0), (210, 10, 0))


def test_probe_bounded_to_target():
    b = bounds("G0 X10 Y10\nG38.2 Z-30 F50\nM30\n")
    approx(b, (0, 0, -30), (10, 10, 0))


def test_lathe_diameter_bounds_and_arc():
    lathe = make_machine(
        controller="fanuc-lathe", envelope={"X": [-10, 200], "Z": [-300, 10]}, home={"X": 100, "Z": 0},
        spindle={"max_rpm": 3000}, tool_changer=True,
    )
    # Start X100 (diameter) Z0. G0 X20 Z2, G1 Z0 F0.1 with spindle on, G3 X30 Z-5 R5 (radius 5 arc in ZX).
    report = check_text("G97 S1000 M3\nG0 X20. Z2.\nG1 Z0. F0.1\nG3 X30. Z-5. R5.\nM30\n", lathe)
    assert report.ok, report.diagnostics
    # The arc: start radius 10 Z0, end radius 15 Z-5, centre radius 10 Z-5 (counter-clockwise in ZX).
    assert report.bounds["min"] == {"X": 20.0, "Z": -5.0}
    assert report.bounds["max"] == {"X": 100.0, "Z": 2.0}


def test_canned_cycle_swept_into_bounds():
    mill = make_machine(controller="fanuc-mill", envelope=BIG, tool_changer=True)
    program = "G90 G0 X10. Y10. Z20. S1000 M3\nG99 G81 X10. Y10. Z-15. R2. F100\nX40.\nG98 Y30.\nG80\nM30\n"
    report = check_text(program, mill)
    assert report.ok, report.diagnostics
    approx(report.bounds, (0, 0, -15), (40, 30, 20))


def test_estimated_time_of_a_long_straight_feed():
    # 100 mm at 600 mm/min (10 mm/s) is 10 s at full speed; accelerating from and braking to rest at 500 mm/s²
    # takes 0.02 s each and covers 0.1 mm each, so the trapezoid lasts L/v + v/a = 10 + 0.02 s.
    m = make_machine(envelope=BIG, max_feed=1000, acceleration={"X": 500, "Y": 500, "Z": 500})
    report = check_text("M3 S1000\nG1 X100 F600\nM30\n", m)
    assert report.estimated_seconds == pytest.approx(10.02, abs=0.001)


def test_estimate_slows_down_at_sharp_corners():
    m = make_machine(envelope=BIG, max_feed=6000, acceleration={"X": 50, "Y": 50, "Z": 50})
    straight = check_text("M3 S1000\n" + "".join(f"G1 X{i} F3000\n" for i in range(1, 101)) + "M30\n", m)
    zigzag = check_text("M3 S1000\n" + "".join(f"G1 X{i} Y{i % 2} F3000\n" for i in range(1, 101)) + "M30\n", m)
    assert zigzag.estimated_seconds > 2 * straight.estimated_seconds


FANUC_START = "G21 G17 G90\nG0 X0. Y0. Z10.\nS1000 M3\n"


def fanuc_bounds(body: str) -> dict:
    mill = make_machine(controller="fanuc-mill", envelope=BIG, tool_changer=True)
    report = check_text(FANUC_START + body + "G80\nM30\n", mill)
    assert report.ok, report.diagnostics
    assert not report.warnings, report.warnings
    return report.bounds


def test_a_g98_hole_after_g99_holes_returns_to_the_initial_level():
    # The initial level (Z10) is kept for the whole series: the G98 hole goes back up to it, and G91 Z5 after
    # G80 starts from there.
    b = fanuc_bounds("G99 G81 X10. Y0. Z-5. R2. F100.\nG98 X20.\nG80\nG91 G0 Z5.\nG90\n")
    assert (b["min"]["Z"], b["max"]["Z"]) == (-5.0, 15.0)


def test_in_g91_a_new_r_is_measured_from_the_initial_level():
    b = fanuc_bounds("G91 G99 G81 X10. R-5. Z-10. F100.\nX10. R-5. Z-10.\nG90\n")
    assert b["min"]["Z"] == -5.0 and b["max"]["X"] == 20.0


def test_in_g91_the_z_increment_stays_modal_from_the_new_r():
    b = fanuc_bounds("G91 G98 G81 X10. R-2. Z-10. F100.\nX10. R-6.\nG90\n")
    assert b["min"]["Z"] == -6.0


def test_k_repeats_holes_and_is_a_count_not_a_distance():
    b = fanuc_bounds("G91 G99 G81 X10. R-8. Z-4. F100. K3\nG90\n")
    assert b["max"]["X"] == 30.0 and b["min"]["Z"] == -2.0


def test_preview_draws_a_clockwise_arc_where_the_machine_cuts_it():
    from labbridge.safety.toolpath import CUT, build_toolpath

    m = make_machine(envelope=BIG)
    program = "G0 X10 Y10\nM3 S1000\nG2 X20 Y10 I5 J0 F100\nM30\n"
    report = check_text(program, m)
    assert report.bounds["max"]["Y"] == pytest.approx(15.0)
    points, lines, kinds = build_toolpath(program.encode(), "m", m, report.to_json()["bounds"]).unpack()
    ys = [p[1] for p, ln, k in zip(points, lines, kinds) if ln == 3 and k == CUT]
    assert min(ys) == pytest.approx(10.0) and max(ys) == pytest.approx(15.0)  # above the chord, as G2 goes