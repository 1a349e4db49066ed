"""The C estimator (labbridge/safety/_estimator.h) against the Python reference (estimate.Estimator and planner.py).

The C side takes shortcuts for speed (an arc's chords prepared in batches, junctions too gentle to matter left
uncomputed, cruising blocks timed without their ramps); the Python side plans every block the long way. Random
machines and random motion streams (lines, rapids, arcs and helices in every plane, dwells, probes, jumps) must
give the same estimate and the same ETA marks.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labbridge.safety.estimate import CompiledEstimator, Estimator
from labbridge.safety.motion import Motion
from labbridge.safety.program import _fastcheck

from .conftest import make_machine

pytestmark = pytest.mark.skipif(_fastcheck is None, reason="the C fast path was not built (no compiler)")

PLANES = [(0, 1, 2), (2, 0, 1), (1, 2, 0)]  # G17, G18, G19 as (a, b, normal)

MACHINE = st.fixed_dictionaries({
    "acceleration": st.fixed_dictionaries({a: st.sampled_from([5, 50, 200, 800]) for a in "XYZ"}),
    "rapid_rate": st.fixed_dictionaries({a: st.sampled_from([300, 800, 2000, 6000]) for a in "XYZ"}),
    "steps_per_mm": st.fixed_dictionaries({a: st.sampled_from([80, 250, 800]) for a in "XYZ"}),
    "junction_deviation": st.sampled_from([0.001, 0.002, 0.01, 0.05]),
    "arc_tolerance": st.sampled_from([0.001, 0.002, 0.01]),
})

STEP = st.one_of(
    st.tuples(st.just("line"), st.sampled_from(["feed", "traverse"]),
              st.tuples(*[st.floats(-30, 30)] * 3), st.sampled_from([50, 400, 800, 1500, 5000])),
    st.tuples(st.just("arc"), st.sampled_from(PLANES), st.floats(0.05, 40), st.floats(-2 * math.pi, 2 * math.pi),
              st.floats(0, 2 * math.pi), st.floats(-3, 3), st.sampled_from([100, 800, 2000])),
    st.tuples(st.just("dwell"), st.floats(0, 1.5)),
    st.tuples(st.just("probe"), st.floats(-5, 0), st.sampled_from([50, 200])),
    # Jumps land on 1/1600 mm, so often exactly half a step off the grid: both sides round such a start as
    # GRBL's lround does (half away from zero).
    st.tuples(st.just("jump"), st.tuples(*[st.integers(-80_000, 80_000).map(lambda k: k / 1600)] * 3)),
)


def motions(steps: list[tuple]) -> list[Motion]:
    """The steps as a chain of motions, each starting where the last ended (a jump starts off the plan)."""
    out: list[Motion] = []
    pos = (0.0, 0.0, 0.0)
    for line, step in enumerate(steps, start=1):
        kind = step[0]
        if kind == "line":
            _, what, delta, feed = step
            end = (pos[0] + delta[0], pos[1] + delta[1], pos[2] + delta[2])
            out.append(Motion(what, line, pos, end, feed=0.0 if what == "traverse" else float(feed)))
        elif kind == "arc":
            _, plane, radius, sweep, phase, rise, feed = step
            if abs(sweep) < 1e-3:
                continue
            a, b, n = plane
            centre = list(pos)
            centre[a] -= radius * math.cos(phase)
            centre[b] -= radius * math.sin(phase)
            end = list(pos)
            end[a] = centre[a] + radius * math.cos(phase + sweep)
            end[b] = centre[b] + radius * math.sin(phase + sweep)
            end[n] = pos[n] + rise
            out.append(Motion("arc", line, pos, (end[0], end[1], end[2]), feed=float(feed),
                              center=(centre[0], centre[1], centre[2]), plane=plane, clockwise=sweep < 0,
                              sweep=sweep, radius=radius))
        elif kind == "dwell":
            out.append(Motion("dwell", line, pos, pos, seconds=step[1]))
        elif kind == "probe":
            end = (pos[0], pos[1], pos[2] + step[1])
            out.append(Motion("probe", line, pos, end, feed=float(step[2])))
        else:
            end = step[1]
            pos = (float(end[0]), float(end[1]), float(end[2]))
            continue
        pos = out[-1].end
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machine=MACHINE, steps=st.lists(STEP, max_size=30))
def test_c_estimator_plans_as_the_python_reference(machine, steps):
    m = make_machine(**machine)
    python, c = Estimator(m), CompiledEstimator(m, _fastcheck)
    for motion in motions(steps):
        python.add(motion)
        c.add(motion)
    expected = python.finish()
    assert c.finish() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    got_marks, want_marks = c.pairs(), python.pairs()
    assert [line for line, _ in got_marks] == [line for line, _ in want_marks]
    assert [t for _, t in got_marks] == pytest.approx([t for _, t in want_marks], rel=1e-9, abs=1e-9)


def test_long_arcs_at_full_speed_agree():
    """Many-chord arcs at a feed the junctions allow: the shortcuts' own ground, checked on a known case."""
    m = make_machine(acceleration={"X": 200, "Y": 200, "Z": 100}, junction_deviation=0.01, arc_tolerance=0.002)
    python, c = Estimator(m), CompiledEstimator(m, _fastcheck)
    pos = (50.0, 50.0, -1.0)
    for line in range(1, 41):
        centre = (pos[0] - 10.0, pos[1], pos[2])
        end = (pos[0], pos[1], pos[2] - 0.02)
        motion = Motion("arc", line, pos, end, feed=800.0, center=centre, clockwise=True, sweep=-2 * math.pi,
                        radius=10.0)
        python.add(motion)
        c.add(motion)
        pos = end
    expected = python.finish()
    assert expected > 0
    assert c.finish() == pytest.approx(expected, rel=1e-9)
