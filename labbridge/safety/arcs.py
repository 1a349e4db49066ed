"""G2/G3 words to an arc: the centre from R or from I J K, checked as GRBL's gc_execute_line checks it.

The geometry itself (centre from a radius, signed sweep) is the one arc kernel in
:mod:`labbridge.safety.geometry`, shared with the checks, the estimator, the
preview and the GRBL simulator.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.geometry import arc_center_offset, arc_sweep
from labbridge.safety.modal import PLANE_AXES, MotionMode, gname
from labbridge.safety.plan import ArcPlan, Plan
from labbridge.safety.words import BlockError

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter


def plan_arc(interp: Interpreter, plan: Plan) -> ArcPlan:
    """Centre, radius and sweep of the block's arc; raises BlockError where the controller would."""
    new, values, texts = plan.new, plan.words.values, plan.words.texts
    a0, a1, _ = PLANE_AXES[new.plane]
    pos = interp.position
    target = plan.target
    assert target is not None
    clockwise = new.motion == MotionMode.ARC_CW
    x = target[a0] - pos[a0]
    y = target[a1] - pos[a1]
    name = gname(new.motion)
    scale = plan.scale
    if "R" in values:
        plan.used.add("R")
        r = values["R"] * scale
        if target == pos:
            raise BlockError("arc-impossible", f"{name} with R cannot make a full circle (start and end are the "
                             "same point): use I and J for the centre instead", 33)
        offset = arc_center_offset(x, y, r, clockwise)
        if offset is None:
            offset = _no_radius_centre(interp, plan, x, y, r, name)
        i, j = offset
        r = abs(r)
    else:
        letters = "IJK"
        offsets = {idx: values[letters[idx]] * scale for idx in range(3) if letters[idx] in values}
        if a0 not in offsets and a1 not in offsets:
            raise BlockError("arc-no-offsets", f"{name} needs the centre: add {letters[a0]} and/or "
                             f"{letters[a1]} (offsets from the start point) or an R word", 35)
        plan.used.update(letters[idx] for idx in offsets)
        i = offsets.get(a0, 0.0)
        j = offsets.get(a1, 0.0)
        r = math.hypot(i, j)
        target_r = math.hypot(x - i, y - j)
        delta = abs(target_r - r)
        if delta > 0.005 and (delta > 0.5 or delta > 0.001 * r):
            raise BlockError("arc-radius-mismatch", f"{name}: the end point is {target_r:.3f} mm from the "
                             f"centre but the start is {r:.3f} mm from it ({delta:.3f} mm apart; the controller "
                             "allows 0.005 mm): check I/J/K and the end point", 33)
        if r == 0.0:
            plan.diags.append(Diagnostic(plan.line, "error", "arc-zero-radius", f"{name} has its centre on the "
                                         "start point (radius 0): check I, J and K"))
    center = [pos[0], pos[1], pos[2]]
    center[a0] = pos[a0] + i
    center[a1] = pos[a1] + j
    c = (center[0], center[1], center[2])
    sweep = arc_sweep(tuple(pos), tuple(target), c, PLANE_AXES[new.plane], clockwise)  # type: ignore[arg-type]
    return ArcPlan(c, r, sweep, clockwise)


def _no_radius_centre(interp: Interpreter, plan: Plan, x: float, y: float, r: float, name: str) -> tuple[float, float]:
    """No circle of radius ``r`` joins start and end: say why, as GRBL would or (fail closed) where it would not."""
    a0, a1, n = PLANE_AXES[plan.new.plane]
    if x == 0.0 and y == 0.0:
        # Start and end meet in the plane, only the helical axis moves. GRBL answers ok and divides by zero:
        # its arc then runs on a NaN centre. The gate refuses; the firmware model runs it as GRBL would.
        if interp.firmware:
            return math.nan, math.nan
        axes = "XYZ"
        raise BlockError("arc-impossible", f"{name} with R cannot describe a full circle: start and end are the same "
                         f"point in the {axes[a0]}{axes[a1]} plane (only {axes[n]} changes), so no centre follows "
                         f"from R; use {'IJK'[a0]} and {'IJK'[a1]} (the centre's offset from the start) for a full "
                         "circle or a helix. GRBL 1.1 would accept this block and move on an undefined (NaN) "
                         "centre, so labbridge refuses it", None)
    if r == 0.0:
        raise BlockError("arc-zero-radius", f"{name} R0: an arc needs a radius above zero", 34)
    chord = math.hypot(x, y)
    text = plan.words.texts["R"]
    raise BlockError("arc-impossible", f"{name} R{text}: the end point is {chord:.3f} mm away, more than the arc's "
                     f"diameter {2 * abs(r):.3f} mm: use a radius of at least {chord / 2:.3f} mm or move the end "
                     "point", 34)
