"""``$J=`` as GRBL 1.1h reads it: gc_execute_line with the jog flag (gcode.c), then jog_execute (jog.c).

The block goes through the same checks as a G-code block, in the firmware's order, with G1 and G94 forced:
the words (step 2, read by labbridge's interpreter), the line number, F required in the block itself, the
non-modal and motion checks, unused words (S and T count as unused in a jog), then the jog's own rule (only
G20/G21, G90/G91 and G53: error 16) and soft limits (error 15, no alarm).
"""

from __future__ import annotations

import copy
from typing import Any

from labbridge.safety.lexer import lex
from labbridge.safety.modal import FeedMode, MotionMode
from labbridge.safety.words import BlockError

Vec3 = tuple[float, float, float]
_JOG_GROUPS = frozenset(("distance", "units", "non-modal"))
_MAX_LINE_NUMBER = 10_000_000
_MACHINE_COORDS_KEY = 530


def parse_jog(interp: Any, text: str) -> tuple[int, tuple[Vec3, float] | None]:
    """(status code, (target in machine mm, feed in mm/min)) for the text after ``$J=``; nothing changes."""
    lexed = lex(text, True)
    try:
        words = interp.reader.read(lexed.words, 0)
    except BlockError as exc:
        return exc.grbl_error or 20, None
    if lexed.error is not None or lexed.special is not None:
        return lexed.error_grbl or 1, None
    values = words.values
    if "N" in values and int(values["N"]) > _MAX_LINE_NUMBER:
        return 27, None
    if "F" not in values:  # gcode.c [2]: a jog ignores the modal feed rate
        return 22, None
    trial = copy.copy(interp)  # the rest of the checks, on a copy: a jog changes no parser state
    trial.modal = interp.modal.copy()
    trial.modal.motion = MotionMode.LINEAR
    trial.modal.feed_mode = FeedMode.PER_MINUTE
    trial.wcs = [list(w) for w in interp.wcs]
    trial.position = list(interp.position)
    result = trial.execute(text, 0)
    if not result.ok:
        return result.diagnostics[0].grbl_error or 20, None
    if "S" in values or "T" in values:
        return 36, None  # gcode.c: a jog clears only N and F from the unused words
    if words.mcodes or any(group not in _JOG_GROUPS for group in words.gcodes):
        return 16, None
    if words.gcodes.get("non-modal", _MACHINE_COORDS_KEY) != _MACHINE_COORDS_KEY:
        return 16, None
    moves = [m for m in result.motions if m.kind in ("feed", "traverse")]
    # No axis word: gc_block.values.xyz stays as memset() left it, so GRBL 1.1h jogs to machine zero.
    target = moves[-1].end if moves else (0.0, 0.0, 0.0)
    return 0, ((target[0], target[1], target[2]), trial.modal.feed)
