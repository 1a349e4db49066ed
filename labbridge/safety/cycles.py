"""Fanuc-style drilling cycles (G73, G81-G86, G89) in the XY plane, by LinuxCNC's rules (interp_cycles.cc).

LinuxCNC follows the Fanuc rules here, and so does the gate:

- The *initial level* is the Z where a series of cycle blocks starts; it is kept for the whole series
  (until G80 or another motion mode), so a G98 hole after G99 holes returns to it, not to R.
- G90: R and Z are work coordinates. G91: R is measured from the initial level and Z from R; the Z word
  stays modal as an increment, so a later block with only a new R moves the bottom with it.
- R, Z, Q and P are modal within the series; the first block of a cycle needs its R and Z (and Q for the
  peck cycles). L (or K) repeats the hole, at the same place in G90 and stepping by X/Y in G91.
- Each hole: rapid over it at the current clear level, rapid down to R if not there, the cycle's own moves,
  then up to the clear level: R under G99, the initial level under G98.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.safety.modal import MM_PER_INCH, CycleState, MotionMode, Retract, Units, gname
from labbridge.safety.motion import Motion, Vec
from labbridge.safety.plan import Plan
from labbridge.safety.words import BlockError

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter

G83_RAPID_DELTA = 0.010 * MM_PER_INCH  # LinuxCNC: rapid back down to 0.010 inch above the last peck
MAX_PECKS = 1000
PECKING = frozenset((MotionMode.CYCLE_PECK, MotionMode.CYCLE_PECK_FAST))
DWELLING = frozenset((MotionMode.CYCLE_DRILL_DWELL, MotionMode.CYCLE_BORE_STOP, MotionMode.CYCLE_BORE_DWELL))


def check_cycle_words(plan: Plan) -> None:
    """The words a cycle needs in the first block of its series, and a sane peck depth."""
    new, values = plan.new, plan.words.values
    plan.used.update(("R", "Q", "P", "L", "K"))
    name = gname(new.motion)
    starts = plan.state.motion != new.motion
    if starts and "Z" not in values and "W" not in values:
        raise BlockError("missing-word", f"{name} starts a drilling cycle: give the hole bottom Z in this block",
                         None)
    if starts and "R" not in values:
        raise BlockError("missing-word", f"{name} starts a drilling cycle: give the retract level R in this block "
                         "(where the feed starts and, with G99, where the tool returns)", None)
    if new.motion in PECKING:
        if starts and "Q" not in values:
            raise BlockError("missing-word", f"{name} is a peck drilling cycle: give the peck depth Q", None)
        if "Q" in values and values["Q"] <= 0.0:
            raise BlockError("invalid-value", f"Q{plan.words.texts['Q']}: the peck depth must be above zero", None)
    if "L" in values or "K" in values:
        count = values.get("L", values.get("K", 1.0))
        if count != int(count) or count < 0:
            raise BlockError("invalid-value", "the repeat count (L or K) must be a whole number of 0 or more", None)


def run_cycle(interp: Interpreter, plan: Plan, motions: list[Motion]) -> Vec:
    """The motions of one cycle block; returns where the tool ends."""
    new, values = plan.new, plan.words.values
    cycle = new.cycle
    target = plan.target
    assert target is not None
    pos = interp.position
    scale = MM_PER_INCH if new.units == Units.INCH else 1.0
    _remember_words(cycle, values, scale, interp.dialect.fanuc)
    if cycle.initial_z is None:
        cycle.initial_z = pos[2]
    r_level, bottom = _levels(interp, plan, cycle)
    if r_level < bottom:
        raise BlockError("invalid-value", f"{gname(new.motion)}: the R level (Z{r_level:.3f} machine) is below the "
                         f"hole bottom (Z{bottom:.3f}); R is where drilling starts, so it must be above Z", None)
    line = plan.line
    old = cycle.initial_z
    here = (pos[0], pos[1], pos[2])
    if old < r_level:  # below the R plane: straight up to it first
        here = _move(motions, "traverse", line, here, (here[0], here[1], r_level))
        old = r_level
    clear = r_level if new.retract == Retract.R_LEVEL else old
    x, y = (target[0], target[1]) if plan.absolute else (pos[0], pos[1])
    step = (0.0, 0.0) if plan.absolute else (target[0] - pos[0], target[1] - pos[1])
    feed = interp.feed_rate(here, here)
    for _ in range(int(values.get("L", values.get("K", 1.0)))):
        x, y = x + step[0], y + step[1]
        here = _move(motions, "traverse", line, here, (x, y, old))
        if old != r_level:
            here = _move(motions, "traverse", line, here, (x, y, r_level))
        here = _hole(new.motion, cycle, line, here, r_level, bottom, clear, feed, motions)
        old = clear
    return here


def _remember_words(cycle: CycleState, values: dict[str, float], scale: float, fanuc: bool) -> None:
    """R, Z, Q and P stay with the series until another block gives them anew."""
    if "R" in values:
        cycle.r_word = values["R"] * scale
    if "Z" in values:
        cycle.z_word = values["Z"] * scale
    elif "W" in values:  # a lathe's incremental Z
        cycle.z_word = values["W"] * scale
    if "Q" in values:
        cycle.q = abs(values["Q"] * scale)
    if "P" in values:
        cycle.p = values["P"] / 1000.0 if fanuc else values["P"]  # Fanuc-style controls: P in milliseconds


def _levels(interp: Interpreter, plan: Plan, cycle: CycleState) -> tuple[float, float]:
    """Machine Z of the R level and of the hole bottom for this block."""
    r_word = cycle.r_word if cycle.r_word is not None else 0.0
    z_word = cycle.z_word if cycle.z_word is not None else 0.0
    incremental_z = not plan.absolute or "W" in plan.words.values
    if plan.absolute:
        offset = plan.block_wcs[2] + interp.g92[2] + plan.tlo
        r_level = r_word + offset
    else:
        assert cycle.initial_z is not None
        r_level = cycle.initial_z + r_word
    bottom = r_level + z_word if incremental_z else z_word + plan.block_wcs[2] + interp.g92[2] + plan.tlo
    return r_level, bottom


def _move(motions: list[Motion], kind: str, line: int, start: Vec, end: Vec, feed: float = 0.0) -> Vec:
    if end != start:
        motions.append(Motion(kind, line, start, end, feed))  # type: ignore[arg-type]
    return end


def _hole(motion: int, cycle: CycleState, line: int, here: Vec, r_level: float, bottom: float, clear: float,
          feed: float, motions: list[Motion]) -> Vec:
    """One hole from the R level, as LinuxCNC's convert_cycle_g73 ... g89 move; ends at the clear level."""
    x, y = here[0], here[1]
    if motion in PECKING:
        depth = r_level - cycle.q
        if (r_level - bottom) / cycle.q > MAX_PECKS:
            raise BlockError("invalid-value", f"{gname(motion)}: a peck depth of Q{cycle.q:g} mm makes more than "
                             f"{MAX_PECKS} pecks in this hole: use a larger Q", None)
        while depth > bottom:
            here = _move(motions, "feed", line, here, (x, y, depth), feed)
            if motion == MotionMode.CYCLE_PECK:
                here = _move(motions, "traverse", line, here, (x, y, r_level))
            here = _move(motions, "traverse", line, here, (x, y, depth + G83_RAPID_DELTA))
            depth -= cycle.q
    here = _move(motions, "feed", line, here, (x, y, bottom), feed)
    if cycle.p and (motion in DWELLING or motion == MotionMode.CYCLE_TAP):
        motions.append(Motion("dwell", line, here, here, seconds=cycle.p))
    if motion in (MotionMode.CYCLE_TAP, MotionMode.CYCLE_BORE_DWELL):
        return _move(motions, "feed", line, here, (x, y, clear), feed)
    if motion == MotionMode.CYCLE_BORE:
        here = _move(motions, "feed", line, here, (x, y, r_level), feed)
    return _move(motions, "traverse", line, here, (x, y, clear))
