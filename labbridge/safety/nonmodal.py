"""Axis words and the non-modal commands that use them: G4, G10, G28/G30, G53, G92 (and a lathe's G50).

Also where a block's target is worked out: axis words become a machine-coordinate
end point through the work offset, G92, the tool length and the distance mode (a
lathe's U and W are always incremental).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labbridge.i18n import _
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.modal import MotionMode, NonModal
from labbridge.safety.plan import Plan
from labbridge.safety.words import BlockError

if TYPE_CHECKING:
    from labbridge.safety.interpreter import Interpreter

AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}
_MAX_LINE_NUMBER = 10_000_000


def read_block_numbers(interp: Interpreter, plan: Plan) -> None:
    """O (program number) and N (line number)."""
    values, texts = plan.words.values, plan.words.texts
    if "O" in values:
        plan.used.add("O")
        interp.program_number = int(values["O"])
    if "N" in values and int(values["N"]) > _MAX_LINE_NUMBER:  # gcode.c: trunc(value) > MAX_LINE_NUMBER
        raise BlockError("invalid-value", _("line number N{n} is too large (at most N9999999)").format(n=texts["N"]),
                         27)


def read_dwell(interp: Interpreter, plan: Plan) -> None:
    """G4: P in seconds (GRBL), P in milliseconds without a point or X/U in seconds (Fanuc)."""
    if plan.nonmodal != NonModal.DWELL:
        return
    values, texts = plan.words.values, plan.words.texts
    fanuc = interp.dialect.fanuc
    if fanuc and ("X" in values or "U" in values):
        plan.dwell_seconds = values.pop("X" if "X" in values else "U")
    elif "P" in values:
        p = values["P"]
        plan.dwell_seconds = p / 1000.0 if fanuc and "." not in texts["P"] else p
        plan.used.add("P")
    else:
        raise BlockError("missing-word", _("G4 (dwell) needs a time: add P with the seconds, e.g. G4 P0.5"), 28)


def read_axis_words(interp: Interpreter, plan: Plan) -> None:
    """X Y Z (and a lathe's U W, incremental X and Z) as axis index -> value in program units."""
    values = plan.words.values
    for letter in ("X", "Y", "Z"):
        if letter in values:
            plan.axis_words[AXIS_INDEX[letter]] = values[letter]
    if interp.lathe:
        for letter, idx in (("U", 0), ("W", 2)):
            if letter in values:
                if idx in plan.axis_words:
                    other = "X" if idx == 0 else "Z"
                    raise BlockError("repeated-word", _("{first} and {second} both move the same axis: keep one")
                                     .format(first=other, second=letter), None)
                plan.axis_words[idx] = values[letter]
                plan.incremental_words.add(idx)
    if plan.axis_words and plan.axis_command is None:
        plan.axis_command = "motion"


def apply_nonmodal(interp: Interpreter, plan: Plan) -> None:
    """[19] G10, G92, G50, the block's target, then G28/G30 and G53's conditions."""
    nonmodal = plan.nonmodal
    if nonmodal == NonModal.SET_OFFSETS:
        _g10(interp, plan)
    elif nonmodal == NonModal.SHIFT_ORIGIN or (nonmodal == NonModal.LATHE_CLAMP and interp.lathe
                                               and plan.axis_words):
        _g92(interp, plan)
    elif nonmodal == NonModal.LATHE_CLAMP and plan.axis_words:
        raise BlockError("unsupported", _("G50 with axis words (scaling) is not simulated on a mill; use G50 S only "
                                          "for the spindle clamp on a lathe"), None)
    elif plan.axis_command in ("motion", "non-modal") and plan.axis_words:
        plan.target = _target(interp, plan)
    if nonmodal in (NonModal.GO_PREDEFINED, NonModal.GO_PREDEFINED_2):
        stored = interp.g28 if nonmodal == NonModal.GO_PREDEFINED else interp.g30
        pos = interp.position
        if plan.axis_words:
            plan.home_target = [stored[i] if i in plan.axis_words else pos[i] for i in range(3)]
        else:
            plan.home_target = list(stored)
            plan.axis_command = None
    elif nonmodal in (NonModal.SET_PREDEFINED, NonModal.SET_PREDEFINED_2):
        plan.store_home = nonmodal
    elif nonmodal == NonModal.MACHINE_COORDS and plan.new.motion not in (MotionMode.RAPID, MotionMode.LINEAR):
        raise BlockError("unsupported", _("G53 only works with G0 or G1 active: add G0 to this line"), 30)


def _target(interp: Interpreter, plan: Plan) -> list[float]:
    pos = interp.position
    target = list(pos)
    for idx, v in plan.axis_words.items():
        if plan.nonmodal == NonModal.MACHINE_COORDS:
            target[idx] = v
        elif idx in plan.incremental_words or not plan.absolute:
            target[idx] = pos[idx] + v
        else:
            target[idx] = v + plan.block_wcs[idx] + interp.g92[idx] + (plan.tlo if idx == 2 else 0.0)
    return target


def _g10(interp: Interpreter, plan: Plan) -> None:
    """G10 L2 (offset values) and L20 (offsets that make the current position read as the words)."""
    values = plan.words.values
    if not plan.axis_words:
        raise BlockError("no-axis-words", _("G10 needs axis words with the offset values, e.g. G10 L2 P1 X0 Y0"), 26)
    grbl = interp.dialect.name == "grbl"
    # gcode.c refuses G10 only when both L and P are missing: a missing P reads as P0 (the active system), a
    # missing L as L0 (error 20 below).
    if ("L" not in values and "P" not in values) or (not grbl and ("L" not in values or "P" not in values)):
        raise BlockError("missing-word", _("G10 needs L (2 or 20) and P (1-6 for G54-G59, 0 for the active one), "
                                           "e.g. G10 L20 P1 X0"), 28)
    plan.used.update(("L", "P"))
    if grbl and "P" not in values:
        plan.diags.append(Diagnostic(plan.line, "warning", "missing-word", _(
            "G10 without P sets the active work offset (GRBL reads it as P0): add P1-P6 to say which one")))
    p = int(values.get("P", 0.0))
    if p > 6:
        raise BlockError("invalid-value", _("G10 P{p}: only P0 to P6 exist (G54 to G59)").format(p=p), 29)
    l_word = int(values.get("L", 0.0))
    if "L" not in values:
        raise BlockError("unsupported", _("G10 needs L2 (offset values) or L20 (offsets from the current position), "
                                          "e.g. G10 L2 P1 X0"), 20)
    if l_word not in (2, 20):
        raise BlockError("unsupported", _("G10 L{l} is not supported: use L2 or L20").format(l=l_word), 20)
    if l_word == 2 and "R" in values and interp.dialect.name == "grbl":
        raise BlockError("unsupported", _("G10 L2 R (rotation) is not supported by GRBL"), 20)
    index = p - 1 if p > 0 else plan.new.wcs
    data = list(interp.wcs[index])
    pos = interp.position
    for idx, v in plan.axis_words.items():
        if l_word == 20:
            data[idx] = pos[idx] - interp.g92[idx] - v - (interp.tlo if idx == 2 else 0.0)
        else:
            data[idx] = v
    plan.wcs_values = (index, data)


def _g92(interp: Interpreter, plan: Plan) -> None:
    """G92 (and a lathe's G50 with axis words): the current position reads as the words from now on."""
    if not plan.axis_words:
        raise BlockError("no-axis-words", _("G92 needs axis words: the current position's new coordinates, e.g. "
                                            "G92 X0 Y0"), 26)
    g92 = list(interp.g92)
    pos = interp.position
    for idx, v in plan.axis_words.items():
        g92[idx] = pos[idx] - plan.block_wcs[idx] - v - (interp.tlo if idx == 2 else 0.0)
    plan.g92 = g92
