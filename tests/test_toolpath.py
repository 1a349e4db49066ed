"""The compact toolpath: C and Python builders agree, decimation keeps shape and violations, memory stays bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from labbridge.config import load_config
from labbridge.safety import check_text
from labbridge.safety.toolpath import CUT, FLAGGED, JUMP, RAPID, build_toolpath, decode

ROOT = Path(__file__).resolve().parent.parent
LAB = load_config(ROOT / "config" / "machines.yaml")
MILL = LAB.machines["mill-1"]
LATHE = LAB.machines["lathe-1"]
PRE = "G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z5\nG1 Z-1 F300\n"


def tp_arrays(tp):  # type: ignore[no-untyped-def]
    return tp.unpack()


def build(text: str, machine=MILL, machine_id: str = "mill-1", **kw):  # type: ignore[no-untyped-def]
    return build_toolpath(text.encode(), machine_id, machine, **kw)


def both(text: str, **kw):  # type: ignore[no-untyped-def]
    c, py = build(text, **kw), build(text, pure=True, **kw)
    assert tp_arrays(c) == tp_arrays(py)
    assert c.stats == py.stats
    return c


def test_collinear_moves_merge_and_turns_stay() -> None:
    steps = "".join(f"G1 X{i * 0.1:.1f}\n" for i in range(1, 501))  # 500 collinear moves along X
    tp = both(PRE + steps + "G1 Y20\nG0 Z5\nM30\n")
    pts, lines, kinds = tp_arrays(tp)
    cuts = [i for i, k in enumerate(kinds) if k == CUT]
    # the 500-move line is one segment: its end is X50 and it maps to the last line of the run
    x50 = [i for i in cuts if abs(pts[i][0] - (-240 + 50)) < 1e-3 and abs(pts[i][1] - (-150)) < 1e-3]
    assert x50 and lines[x50[0]] == 4 + 500
    assert tp.stats["points_in"] > 500 and tp.vertices < 12
    assert kinds[0] == JUMP and RAPID in kinds


def test_clockwise_arc_is_not_mirrored() -> None:
    """G2 from (10,10) around (15,10) to (20,10) bulges to Y15, as the gate's bounds say."""
    text = "G21 G90 G54\nM3 S9000\nG0 X10 Y10 Z5\nG2 X20 Y10 I5 J0 F300\nM30\n"
    report = check_text(text, MILL, machine_id="mill-1").to_json()
    tp = both(text, bounds=report["bounds"])
    pts, _, kinds = tp_arrays(tp)
    arc_ys = [p[1] for p, k in zip(pts, kinds) if k == CUT]
    tol = tp.header["tolerance"]  # chord ends lie on the arc; the chords within tol of it
    assert max(arc_ys) == pytest.approx(-150 + 15, abs=tol) and min(arc_ys) == pytest.approx(-150 + 10, abs=1e-3)
    for i, axis in enumerate("XYZ"):  # the preview's box is the gate's box
        assert min(p[i] for p in pts) == pytest.approx(report["bounds"]["min"][axis], abs=tol)
        assert max(p[i] for p in pts) == pytest.approx(report["bounds"]["max"][axis], abs=tol)


def test_violations_are_flagged_and_kept_exactly() -> None:
    moves = "".join(f"G1 X{-100 - i * 0.01:.2f}\n" for i in range(200))  # collinear, but leaves the envelope
    text = PRE + "G1 X0\n" + moves + "G0 Z5\nM30\n"
    report = check_text(text, MILL, machine_id="mill-1").to_json()
    bad = {d["line"] for d in report["diagnostics"] if d["severity"] == "error"}
    tp = both(text, bounds=report["bounds"])
    _, lines, kinds = tp_arrays(tp)
    flagged_lines = {ln for ln, k in zip(lines, kinds) if k == FLAGGED}
    assert flagged_lines == bad and len(bad) > 100  # every flagged move kept, none merged away
    assert set(tp.header["flagged_lines"]) == bad


def test_lathe_shows_diameters_in_xz() -> None:
    text = "G21 G18 G90 G54\nM3 S800\nG0 X40 Z2\nG1 Z-30 F100\nG1 X50\nG0 X60 Z2\nM30\n"
    tp = both(text, machine=LATHE, machine_id="lathe-1")
    pts, _, _ = tp_arrays(tp)
    assert tp.header["lathe"] and tp.header["diameter"]
    assert max(p[0] for p in pts[1:]) == pytest.approx(60.0)  # X as the control shows it: a diameter
    assert {p[1] for p in pts} == {0.0}


def test_budget_is_kept_by_removing_overdraw_then_coarsening() -> None:
    loop = "G1 X10 Y0\nG1 X10 Y10\nG1 X0 Y10\nG1 X0 Y0\n"
    tp = both(PRE + loop * 200 + "G0 Z5\nM30\n", max_vertices=64)
    _, lines, _ = tp_arrays(tp)
    assert tp.vertices < 64 and not tp.header["truncated"]
    assert tp.stats["overdraw_removed"] == 1
    assert tp.header["tolerance"] == pytest.approx(tp.stats["tolerance"])
    zigzag = "".join(f"G1 X{(i % 2) * 40} Y{i * 0.5}\n" for i in range(400))  # no overdraw: must coarsen
    tp = both(PRE + zigzag + "M30\n", max_vertices=100)
    assert tp.vertices <= 100 and tp.stats["coarsened"] >= 2


def test_encode_decode_round_trip() -> None:
    tp = build(PRE + "G1 X5 Y5\nG2 X10 Y0 R5\nM30\n")
    data = tp.encode()
    back = decode(data)
    assert back.header["vertices"] == tp.vertices and back.header["machine"] == "mill-1"
    assert (back.positions, back.lines, back.kinds) == (tp.positions, tp.lines, tp.kinds)
    assert (12 + data[8:12][0] + (data[9] << 8)) % 4 == 0  # arrays start 4-byte aligned for Float32Array


def test_one_huge_line_costs_no_memory(tmp_path: Path) -> None:
    """A 9.9 MB single-line upload: the gate refuses to read it, the builder never holds it."""
    path = tmp_path / "huge.nc"
    path.write_bytes(b"G1 X1" * (9_900_000 // 5))
    tracemalloc.start()
    try:
        tp = build_toolpath(path, "mill-1", MILL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tp.vertices == 0 and not tp.header["ok"]
    assert peak < 8 * 1024 * 1024


words = st.sampled_from(["G0", "G1", "G2", "G3"])
coord = st.floats(-60, 60, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(words, coord, coord, coord, st.floats(1, 30).map(lambda v: round(v, 2))),
                min_size=1, max_size=60), st.sampled_from([32, 1000]))
def test_c_and_python_builders_agree(moves: list[tuple[str, float, float, float, float]], budget: int) -> None:
    body, visited = "", {(0.0, 0.0)}
    for g, x, y, z, r in moves:
        if g in ("G2", "G3") and (x, y) in visited:
            g = "G1"  # an R arc back to where it starts is the gate's own open question (a full circle)
        body += f"{g} X{x} Y{y} Z{z / 10:.3f}" + (f" R{r}" if g in ("G2", "G3") else "") + " F400\n"
        visited.add((x, y))
    both(PRE + body + "M30\n", max_vertices=budget)
