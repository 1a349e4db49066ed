"""G2/G3 words to an arc: the centre from R or from I J K, checked as GRBL's gc_execute_line checks it.

The geometry itself (centre from a radius, signed sweep) is the one arc kernel in
:mod:`labbridge.safety.geometry`, shared with the checks, the estimator, the
preview and the GRBL simulator.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.geometry import arc_sweep
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
        if r == 0.0:
            raise BlockError("arc-zero-radius", f"{name} R0: an arc needs a radius above zero", 34)
        h_x2_div_d = 4.0 * r * r - x * x - y * y
        if h_x2_div_d < 0:
            chord = math.hypot(x, y)
            raise BlockError("arc-impossible", f"{name} R{texts['R']}: the end point is {chord:.3f} mm away, "
                             f"more than the arc's diameter {2 * abs(r):.3f} mm: use a radius of at least "
                             f"{chord / 2:.3f} mm or move the end point", 34)
        h_x2_div_d = -math.sqrt(h_x2_div_d) / math.hypot(x, y)
        if not clockwise:
            h_x2_div_d = -h_x2_div_d
        if r < 0:
            h_x2_div_d = -h_x2_div_d
            r = -r
        i = 0.5 * (x - y * h_x2_div_d)
        j = 0.5 * (y + x * h_x2_div_d)
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
