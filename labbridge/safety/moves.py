"""[20] The motion of a block: what each motion mode needs, and the canonical motions it makes.

Checks come first (they may refuse the block); :func:`emit_motion` runs only for
a block that passed every check, after the modal state was committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.i18n import _
from labbridge.safety.arcs import plan_arc
from labbridge.safety.cycles import check_cycle_words, run_cycle
from labbridge.safety.modal import ARCS, CYCLES, PLANE_AXES, PROBES, MotionMode, Plane, gname
from labbridge.safety.motion import Motion
from labbridge.safety.plan import Plan
from labbridge.safety.words import BlockError

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter


def check_motion(interp: Interpreter, plan: Plan) -> None:
    """What the block's motion mode needs (feed, end point, centre); raises BlockError if it is missing."""
    new = plan.new
    if new.motion not in CYCLES:
        new.cycle.initial_z = None  # a canned-cycle series ends with G80 or any other motion mode
    if new.motion == MotionMode.CANCEL:
        # GRBL is strict here: under G80 even G92, G10 or G43.1 axis words are refused (gcode.c [20]).
        grbl_axis_words = interp.dialect.name == "grbl" and any(a in plan.words.values for a in "XYZ")
        if grbl_axis_words or (plan.axis_words and plan.axis_command == "motion"):
            raise BlockError("no-axis-words", _("axis words with no motion mode (G80 is active): add G0 or G1 to say "
                                                "how to move"), 31)
        return
    if plan.axis_command != "motion":
        return
    if new.motion != MotionMode.RAPID:
        feed_required = new.motion not in CYCLES or bool(plan.axis_words)
        if feed_required and new.feed <= 0.0:
            raise BlockError("no-feed-rate", interp.no_feed_message(new.motion), 22)
    if new.motion in ARCS:
        _check_arc_words(plan)
        plan.arc = plan_arc(interp, plan)
    elif new.motion in PROBES:
        if not plan.axis_words:
            raise BlockError("no-axis-words", _("G38 probing needs a target: add the axis words to probe towards"),
                             26)
        if plan.target == interp.position:
            raise BlockError("probe", _("the probe target is where the machine already is: give a target some "
                                        "distance away"), 33)
    elif new.motion in CYCLES:
        check_cycle_words(plan)


def _check_arc_words(plan: Plan) -> None:
    name = gname(plan.new.motion)
    if not plan.axis_words:
        raise BlockError("no-axis-words", _("{gcode} needs an end point: add the arc's end coordinates").format(
            gcode=name), 26)
    a0, a1, _normal = PLANE_AXES[plan.new.plane]
    if a0 not in plan.axis_words and a1 not in plan.axis_words:
        raise BlockError("no-axis-words", _("{gcode} in {plane} needs an end point in that plane").format(
            gcode=name, plane=Plane(plan.new.plane).label), 32)
    assert plan.target is not None


def emit_motion(interp: Interpreter, plan: Plan, motions: list[Motion]) -> None:
    """Append the block's motions and move the interpreter's position to where they end."""
    target = plan.target
    assert target is not None
    new = plan.new
    line = plan.line
    pos = (interp.position[0], interp.position[1], interp.position[2])
    end = (target[0], target[1], target[2])
    motion = new.motion
    if motion == MotionMode.RAPID:
        motions.append(Motion("traverse", line, pos, end))
    elif motion == MotionMode.LINEAR:
        motions.append(Motion("feed", line, pos, end, interp.feed_rate(pos, end)))
    elif motion in ARCS:
        arc = plan.arc
        assert arc is not None
        m = Motion("arc", line, pos, end, 0.0, arc.center, PLANE_AXES[new.plane], arc.clockwise, arc.sweep,
                   arc.radius)
        m.feed = interp.feed_rate(pos, end, abs(arc.sweep) * arc.radius)
        motions.append(m)
    elif motion in PROBES:
        motions.append(Motion("probe", line, pos, end, interp.feed_rate(pos, end)))
    else:
        end = run_cycle(interp, plan, motions)
    interp.position = list(end)
