"""Resume a program from line N: a preamble that puts the machine where line N expects it.

The modal state at line N is what the safety interpreter says lines 1..N-1 leave
behind (units, distance mode, plane, work offset, feed, spindle, coolant, tool
length and G92 offsets). The preamble approaches from above: retract to a safe Z
in machine coordinates, move over the target in X/Y, start the spindle and wait
for it to reach speed, then plunge to the Z the program had at line N. The
preamble plus the rest of the program are checked by the safety gate again
before anything is sent (see :class:`~labbridge.streaming.runner.JobRunner`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from labbridge.config import Machine
from labbridge.protocols.grbl import clean_line
from labbridge.errors import LabbridgeError
from labbridge.streaming import texts as T
from labbridge.safety import Interpreter
from labbridge.safety.modal import ARCS, Distance, FeedMode, MotionMode, Spindle, Units, gname
from labbridge.safety.motion import Vec

MM_PER_INCH = 25.4
_MOTION_WORD = re.compile(r"G0*(?:[0-3]|38\.[2-5]|80)(?![0-9.])")
DEFAULT_SPINDLE_DWELL = 4.0  # seconds for the spindle to reach speed before the plunge
DEFAULT_CLEARANCE = 2.0  # mm above the target Z where the rapid approach ends and the feed plunge starts
DEFAULT_PLUNGE_FEED = 100.0  # mm/min when the program has no feed yet at line N


class ResumeError(LabbridgeError):
    """A program cannot be resumed from the requested line; the message says why and what to do."""


@dataclass(frozen=True)
class ResumePlan:
    from_line: int
    preamble: list[str]
    target: Vec  # machine position the program has at line N
    modal: str  # the modal state at line N, as GRBL's $G would show it


def _f(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def safe_z_for(machine: Machine) -> float:
    """1 mm below the top of Z travel (GRBL's soft limits forbid the very top after homing pull-off)."""
    return machine.envelope["Z"][1] - 1.0


def build_resume(
    source_lines: Sequence[str],
    machine: Machine,
    from_line: int,
    *,
    machine_id: str | None = None,
    work_offsets: dict[str, Vec] | None = None,
    safe_z: float | None = None,
    spindle_dwell: float = DEFAULT_SPINDLE_DWELL,
    clearance: float = DEFAULT_CLEARANCE,
) -> ResumePlan:
    """The preamble for resuming ``source_lines`` (the whole program) at line ``from_line`` (1-based)."""
    name = machine_id or machine.name
    if machine.controller != "grbl" or machine.is_lathe:
        raise ResumeError(T.RESUME_GRBL_ONLY.format(machine=name, controller=machine.controller))
    if not 1 <= from_line <= len(source_lines):
        raise ResumeError(T.RESUME_OUT_OF_RANGE.format(line=from_line, last=len(source_lines)))
    interp = Interpreter(machine, work_offsets=work_offsets, machine_id=name)
    for number, text in enumerate(source_lines[: from_line - 1], 1):
        result = interp.execute(text, number)
        if not result.ok:
            first = result.diagnostics[0].message if result.diagnostics else T.REJECTED_WORD
            raise ResumeError(T.RESUME_REJECTED.format(line=number, reason=first))
        if result.program_end:
            raise ResumeError(T.RESUME_AFTER_END.format(line=number, target=from_line))
    modal = interp.modal
    own_motion = bool(_MOTION_WORD.search(clean_line(source_lines[from_line - 1])))
    if own_motion:
        pass  # line N sets its own motion mode
    elif modal.motion in ARCS:
        raise ResumeError(T.RESUME_IN_ARC.format(line=from_line))
    elif modal.motion not in (MotionMode.RAPID, MotionMode.LINEAR, MotionMode.CANCEL):
        raise ResumeError(T.RESUME_IN_CYCLE.format(line=from_line))
    tx, ty, tz = interp.position
    top = safe_z if safe_z is not None else safe_z_for(machine)
    if tz > top:
        top = tz
    pre: list[str] = ["G21 G90 G94 G17", f"G53 G0 Z{_f(top)}", f"G53 G0 X{_f(tx)} Y{_f(ty)}"]
    if modal.spindle in (Spindle.CW, Spindle.CCW):
        pre.append(f"M{modal.spindle} S{_f(modal.rpm)}")
        if spindle_dwell > 0:
            pre.append(f"G4 P{_f(spindle_dwell)}")
    elif modal.rpm:
        pre.append(f"S{_f(modal.rpm)}")
    if modal.mist:
        pre.append("M7")
    if modal.flood:
        pre.append("M8")
    if tz < top:
        above = tz + clearance
        if above < top:
            pre.append(f"G53 G0 Z{_f(above)}")
        plunge = modal.feed if modal.feed_mode == FeedMode.PER_MINUTE and modal.feed > 0 else DEFAULT_PLUNGE_FEED
        plunge = min(plunge, machine.max_feed)
        pre.append(f"G53 G1 Z{_f(tz)} F{_f(plunge)}")
    pre.append(f"G{54 + modal.wcs} {gname(modal.plane)}")
    if interp.tlo:
        pre.append(f"G43.1 Z{_f(interp.tlo)}")
    if any(interp.g92):
        # G92 makes the current position read as these work coordinates (in mm: G21 is still active).
        wx, wy, wz = interp.work_position()
        pre.append(f"G92 X{_f(wx)} Y{_f(wy)} Z{_f(wz)}")
    last = [gname(modal.units), gname(modal.distance)]
    if modal.feed_mode == FeedMode.INVERSE_TIME:
        last.append("G93")
    elif modal.feed > 0:
        feed = modal.feed / MM_PER_INCH if modal.units == Units.INCH else modal.feed
        last.append(f"F{_f(feed)}")
    if not own_motion:
        last.append(gname(modal.motion))
    pre.append(" ".join(last))
    return ResumePlan(from_line, pre, (tx, ty, tz), interp.modal_words())
