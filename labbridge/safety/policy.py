"""Lab policy on a block the controller would accept: spindle limits, the G96 clamp, tool changes.

These diagnostics do not stop the block (so one mistake does not hide the next);
the program as a whole is refused while any error stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.safety import dialects as D
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.modal import NonModal, Spindle, SpindleMode, fmt
from labbridge.safety.plan import Plan

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter


def policy_checks(interp: Interpreter, plan: Plan) -> None:
    """Append the block's policy diagnostics to ``plan.diags``."""
    values, texts, gcodes = plan.words.values, plan.words.texts, plan.words.gcodes
    new, diags, line = plan.new, plan.diags, plan.line
    max_rpm = interp.machine.spindle.max_rpm
    clamp_block = plan.nonmodal == NonModal.LATHE_CLAMP
    if "S" in values and not clamp_block and not new.css and values["S"] > max_rpm:
        diags.append(Diagnostic(line, "error", "spindle-speed", f"S{texts['S']} is above {interp.name}'s "
                                f"maximum spindle speed of {fmt(max_rpm)} rpm: use S{fmt(max_rpm)} or less"))
    if clamp_block and "S" in values and values["S"] > max_rpm:
        diags.append(Diagnostic(line, "error", "spindle-speed", f"G50 S{texts['S']} clamps the spindle above "
                                f"its maximum of {fmt(max_rpm)} rpm: use G50 S{fmt(max_rpm)} or less"))
    starts = gcodes.get(D.CSS) == SpindleMode.SURFACE_SPEED or (
        new.spindle in (Spindle.CW, Spindle.CCW) and plan.state.spindle == Spindle.OFF)
    if new.css and starts and new.clamp is None:
        diags.append(Diagnostic(line, "error", "g96-no-clamp", "G96 (constant surface speed) without a G50 "
                                "spindle clamp lets the spindle race as X nears 0: add a G50 S<max rpm> line "
                                "before G96"))
    tool_change = plan.tool_change
    machine = interp.machine
    if tool_change is not None and not machine.tool_changer:
        diags.append(Diagnostic(line, "error", "tool-change", f"{interp.name} has no tool changer: stop "
                                "with M0, change the tool by hand, and remove the tool change from the program"))
    elif tool_change is not None and machine.tools and tool_change not in machine.tools and tool_change:
        diags.append(Diagnostic(line, "warning", "tool-change", f"T{tool_change} is not in "
                                f"{interp.name}'s tool table"))
