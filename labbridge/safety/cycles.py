"""Fanuc-style drilling cycles (G73, G81-G86, G89) swept into canonical motions along Z.

Rapid to the R level, feed to the bottom, return to the initial level (G98) or to
R (G99); repeats with L or K.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.safety.modal import (
    CYCLES_FEEDING_OUT,
    CYCLES_WITH_DWELL,
    MM_PER_INCH,
    Retract,
    Units,
)
from labbridge.safety.motion import Motion, Vec
from labbridge.safety.plan import Plan

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter


def run_cycle(interp: Interpreter, plan: Plan, motions: list[Motion]) -> Vec:
    """Motions of one cycle block; returns where the tool ends."""
    new, values = plan.new, plan.words.values
    target = plan.target
    assert target is not None
    absolute = plan.absolute
    pos = interp.position
    cycle = new.cycle
    scale = MM_PER_INCH if new.units == Units.INCH else 1.0
    initial_z = pos[2]
    if "R" in values:
        r = values["R"] * scale
        cycle.r_level = initial_z + r if not absolute else r + plan.block_wcs[2] + interp.g92[2] + interp.tlo
    if "Z" in values:
        # target[2] already holds the converted Z; incremental Z is measured from the R level on Fanuc.
        z = values["Z"] * scale
        base = cycle.r_level if cycle.r_level is not None else initial_z
        cycle.bottom = base + z if not absolute else target[2]
    if "Q" in values:
        cycle.q = abs(values["Q"] * scale)
    if "P" in values:
        cycle.p = values["P"] / 1000.0
    r_level = cycle.r_level if cycle.r_level is not None else initial_z
    bottom = cycle.bottom if cycle.bottom is not None else r_level
    repeats = int(values.get("L", values.get("K", 1)))
    x, y = target[0], target[1]
    cur = (pos[0], pos[1], initial_z)
    feed = interp.feed_rate(cur, cur)
    line = plan.line
    for n in range(max(repeats, 0)):
        if n > 0 and not absolute:
            x += target[0] - pos[0]
            y += target[1] - pos[1]
        above = (x, y, cur[2])
        motions.append(Motion("traverse", line, cur, above))
        at_r = (x, y, r_level)
        motions.append(Motion("traverse", line, above, at_r))
        hole = (x, y, bottom)
        motions.append(Motion("feed", line, at_r, hole, feed))
        if new.motion in CYCLES_WITH_DWELL and cycle.p:
            motions.append(Motion("dwell", line, hole, hole, seconds=cycle.p))
        back_z = initial_z if new.retract == Retract.INITIAL_LEVEL else r_level
        back = (x, y, back_z)
        kind = "feed" if new.motion in CYCLES_FEEDING_OUT else "traverse"
        motions.append(Motion(kind, line, hole, back, feed if kind == "feed" else 0.0))  # type: ignore[arg-type]
        cur = back
    return cur
