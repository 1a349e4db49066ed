"""The modal groups of one block, in the controller's order of execution.

GRBL (gcode.c) and RS274/NGC apply a block's modes in a fixed order: feed mode
and feed [2-3], spindle speed [4], tool, spindle and coolant [5-8], plane [11],
units [12], tool length [14], work offset [15], distance and retract mode
[17-18]. Each function here is one or two of those steps; they fill the block's
:class:`~labbridge.safety.plan.Plan` and never touch the interpreter's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.i18n import _
from labbridge.safety import dialects as D
from labbridge.safety.modal import (
    MM_PER_INCH,
    WCS_BASE,
    FeedMode,
    MotionMode,
    NonModal,
    SpindleMode,
    ToolLength,
    Units,
)
from labbridge.safety.nonmodal import read_dwell
from labbridge.safety.plan import Plan
from labbridge.safety.words import BlockError

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter


def turret(t: int) -> int:
    """Fanuc lathe T words: T0101 is turret station 1 with offset 1."""
    return t // 100 if t >= 100 else t


def apply_modes(interp: Interpreter, plan: Plan) -> None:
    """Every modal group of the block, in order; raises BlockError at the first the controller refuses."""
    feed_mode_and_feed(interp, plan)
    if not interp.dialect.fanuc:
        read_dwell(interp, plan)  # gcode.c [10]: after the G93 feed check, before G43.1's
    spindle_speed(plan)
    tool_spindle_coolant(interp, plan)
    plane_and_units(interp, plan)
    tool_length(interp, plan)
    offsets_and_distance(interp, plan)


def feed_mode_and_feed(interp: Interpreter, plan: Plan) -> None:
    """[2-3] feed mode, units (needed to read F) and the motion mode, then F."""
    gcodes, values = plan.words.gcodes, plan.words.values
    new, state = plan.new, plan.state
    if D.FEED_MODE in gcodes:
        code = gcodes[D.FEED_MODE]
        new.feed_mode = interp.dialect.feed_mode_alias.get(code, code)
    if D.UNITS in gcodes:
        new.units = gcodes[D.UNITS]
    if D.MOTION in gcodes:
        new.motion = gcodes[D.MOTION]
    if new.feed_mode == FeedMode.INVERSE_TIME:
        moving = plan.axis_command == "motion" and new.motion not in (MotionMode.RAPID, MotionMode.CANCEL)
        if moving and "F" not in values:
            raise BlockError("no-feed-rate", _("in G93 (inverse time) every feed move needs its own F word: add F "
                                               "to this line"), 22)
        new.feed = values.get("F", 0.0)
    elif "F" in values:
        new.feed = values["F"] * (MM_PER_INCH if new.units == Units.INCH else 1.0)
    elif state.feed_mode != new.feed_mode:
        new.feed = 0.0


def spindle_speed(plan: Plan) -> None:
    """[4] S: spindle speed, Fanuc constant surface speed (G96) and the G50 clamp."""
    gcodes, values, new = plan.words.gcodes, plan.words.values, plan.new
    if D.CSS in gcodes:
        new.css = gcodes[D.CSS] == SpindleMode.SURFACE_SPEED
    if plan.nonmodal == NonModal.LATHE_CLAMP:
        if "S" in values:
            new.clamp = values["S"]
    elif "S" in values:
        if new.css:
            new.css_speed = values["S"]
        else:
            new.rpm = values["S"]


def tool_spindle_coolant(interp: Interpreter, plan: Plan) -> None:
    """[5-8] T (a lathe turret indexes on the T word itself), M6, M3/M4/M5, M7/M8/M9."""
    values, mcodes, new = plan.words.values, plan.words.mcodes, plan.new
    if "T" in values:
        t = int(values["T"])
        if interp.lathe and turret(t) != turret(plan.state.tool):
            plan.tool_change = turret(t)
        new.tool = t
    if mcodes.get(D.M_TOOL) == 6:
        plan.tool_change = new.tool
    if D.M_SPINDLE in mcodes:
        new.spindle = mcodes[D.M_SPINDLE]
    for key in (D.M_COOLANT, "coolant2"):
        c = mcodes.get(key)
        if c == 7:
            new.mist = True
        elif c == 8:
            new.flood = True
        elif c == 9:
            new.flood = new.mist = False


def plane_and_units(interp: Interpreter, plan: Plan) -> None:
    """[11] plane; [12] units: axis words to mm (and a lathe's X diameters to radius)."""
    gcodes = plan.words.gcodes
    if D.PLANE in gcodes:
        plan.new.plane = gcodes[D.PLANE]
    plan.scale = MM_PER_INCH if plan.new.units == Units.INCH else 1.0
    for idx in plan.axis_words:
        plan.axis_words[idx] *= plan.scale
        if idx == 0:
            plan.axis_words[idx] *= interp.x_scale


def tool_length(interp: Interpreter, plan: Plan) -> None:
    """[14] G43.1 Z (GRBL), G43 H (Fanuc tool table), G49."""
    gcodes, values = plan.words.gcodes, plan.words.values
    plan.tlo = interp.tlo
    if D.TLO in gcodes:
        code = gcodes[D.TLO]
        plan.new.tlo_mode = code
        if code == ToolLength.CANCEL:
            plan.tlo = 0.0
        elif code == ToolLength.DYNAMIC:
            if set(plan.axis_words) != {2}:
                raise BlockError("invalid-value", _("G43.1 takes exactly one Z word (the tool length), e.g. G43.1 "
                                                    "Z-12.5"), 37)
            plan.tlo = plan.axis_words[2]
            plan.axis_words = {}
        elif code == ToolLength.TABLE:
            if "H" not in values:
                raise BlockError("missing-word", _("G43 needs H with the tool's offset number, e.g. G43 H1"), 28)
            plan.used.add("H")
            h = int(values["H"])
            tool = interp.machine.tools.get(h)
            if tool is None:
                raise BlockError("invalid-value", _("H{h} has no entry in {machine}'s tool table: use the number of "
                                                    "a tool in config/machines.yaml").format(h=h, machine=interp.name),
                                 None)
            plan.tlo = tool.length
    if "H" in values and D.TLO not in gcodes:
        plan.used.add("H")  # Fanuc: H alone only selects; harmless.
    if "D" in values:
        plan.used.add("D")


def offsets_and_distance(interp: Interpreter, plan: Plan) -> None:
    """[15] the work offset selected in this block applies to its motion; [17] distance; [18] retract."""
    gcodes, new = plan.words.gcodes, plan.new
    if D.WCS in gcodes:
        new.wcs = (gcodes[D.WCS] - WCS_BASE) // 10
    plan.block_wcs = interp.wcs[new.wcs]
    if D.DISTANCE in gcodes:
        new.distance = gcodes[D.DISTANCE]
    if D.RETRACT in gcodes:
        new.retract = gcodes[D.RETRACT]
