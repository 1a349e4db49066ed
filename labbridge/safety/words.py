"""Reading a block's words into commands, the first step of GRBL's ``gc_execute_line``.

Each G-code goes to its modal group (two of one group in a block is an error),
each M-code to its group, every other letter to a value; commands that claim the
block's axis words (motion, G10/G28/G30/G92, G43.1) may not share a block. Nothing
here changes the modal state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

from labbridge.i18n import _
from labbridge.safety import dialects as D
from labbridge.safety.modal import MotionMode, NonModal, fmt, gkey, gname

# Commands that take the block's axis words for themselves (GRBL's axis_command).
AXIS_NONMODAL = frozenset((NonModal.SET_OFFSETS, NonModal.GO_PREDEFINED, NonModal.GO_PREDEFINED_2,
                           NonModal.SHIFT_ORIGIN))


# gcode.c step 2: the G numbers that claim the block's axis words (axis_command), G10/G28/G30/G92 only without
# a decimal (G28.1, G30.1 and G92.1 leave axis words to an implicit motion).
_GRBL_AXIS_COMMAND = {10: "non-modal", 28: "non-modal", 30: "non-modal", 92: "non-modal", 0: "motion",
                      1: "motion", 2: "motion", 3: "motion", 38: "motion", 43: "tlo", 49: "tlo"}
_GRBL_PLAIN = frozenset((4, 53, 80, 17, 18, 19, 93, 94, 20, 21, 40, 54, 55, 56, 57, 58, 59))


def _round_half_away(x: float) -> int:
    """C's round(): halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


class BlockError(Exception):
    """A block the controller would reject; carries the diagnostic."""

    def __init__(self, code: str, message: str, grbl_error: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.grbl_error = grbl_error


@dataclass(slots=True)
class BlockWords:
    """One block's words sorted by what they command."""

    line: int
    gcodes: dict[str, int] = field(default_factory=dict)  # modal group -> G key
    mcodes: dict[str, int] = field(default_factory=dict)  # M group -> M number ("coolant2" for M7+M8)
    values: dict[str, float] = field(default_factory=dict)  # letter -> number
    texts: dict[str, str] = field(default_factory=dict)  # letter -> the number as written
    axis_command: str | None = None  # "motion", "non-modal", "tlo" or None


@dataclass(frozen=True, slots=True)
class Reader:
    """What a machine accepts: its dialect, the lab's forbidden codes and its name for messages."""

    dialect: D.Dialect
    forbidden: frozenset[str]
    name: str
    lathe: bool

    def read(self, words: list[tuple[str, float, str]], line: int) -> BlockWords:
        block = BlockWords(line)
        for letter, value, text in words:
            if letter == "G":
                self._g(block, value)
            elif letter == "M":
                self._m(block, value, text)
            else:
                self._value(block, letter, value, text)
        return block

    def _g(self, block: BlockWords, value: float) -> None:
        if self.dialect.name == "grbl":
            code, group = grbl_gcode(block, value, self.dialect)
        else:
            code = gkey(value)
            group = self.dialect.g_codes.get(code)
            if group is None:
                self._unknown_g(code, value)
        gcodes = block.gcodes
        if group in gcodes:
            raise BlockError("modal-conflict", _("{first} and {second} are both {group} commands: only one of "
                                                 "them may be in a block").format(
                first=gname(gcodes[group]), second=gname(code), group=group), 21)
        if self.dialect.name != "grbl":
            _claim_axis_words(block, code, group, self.lathe)
        if gname(code) in self.forbidden:
            raise BlockError("forbidden-code", _("{gcode} is not allowed on {machine} in this lab: ask your "
                                                 "trainer").format(gcode=gname(code), machine=self.name), None)
        gcodes[group] = code  # type: ignore[index]

    def _m(self, block: BlockWords, value: float, text: str) -> None:
        dialect = self.dialect
        code = int(value)
        if dialect.name == "grbl" and _round_half_away(100.0 * (value - code)) == 0:
            value = code  # GRBL reads M codes to 1/100 (M3.004 is M3)
        if value != code:
            raise BlockError("unsupported", _("M{value} is not a valid M-code (M-codes are whole numbers)").format(
                value=text), 23)
        group = dialect.m_codes.get(code)
        if group is None:
            msg = dialect.m_not_simulated.get(code)
            raise BlockError("unsupported", _(msg) if msg else _("M{code} is not an M-code {machine} supports").format(
                code=code, machine=self.name), 20)
        mcodes = block.mcodes
        if group in mcodes and not (group == D.M_COOLANT and {mcodes[group], code} == {7, 8}):
            raise BlockError("modal-conflict", _("{first} and {second} are both {group} commands: only one of them "
                                                 "may be in a block").format(
                first=f"M{mcodes[group]}", second=f"M{code}", group=group), 21)
        if f"M{code}" in self.forbidden:
            raise BlockError("forbidden-code", _("{gcode} is not allowed on {machine} in this lab: ask your "
                                                 "trainer").format(gcode=f"M{code}", machine=self.name), None)
        mcodes["coolant2" if group == D.M_COOLANT and group in mcodes else group] = code

    def _value(self, block: BlockWords, letter: str, value: float, text: str) -> None:
        dialect = self.dialect
        if letter not in dialect.letters:
            msg = dialect.unsupported_letters.get(letter)
            raise BlockError("unsupported", _(msg) if msg else _("'{letter}' words are not supported by {machine}'s "
                                                                 "controller").format(letter=letter, machine=self.name),
                             20)
        if letter == "T" and dialect.name == "grbl" and value > 255:  # gcode.c checks this before repeats
            raise BlockError("invalid-value", _("GRBL supports tool numbers up to T255"), 38)
        if letter in block.values:
            raise BlockError("repeated-word", _("{letter} appears twice in this block: keep one").format(
                letter=letter), 25)
        if not math.isfinite(value):
            raise BlockError("invalid-value", _("{word} is too large: GRBL holds numbers as 32-bit floats and reads "
                                                "it as infinity, and what it then does is undefined, so labbridge "
                                                "refuses the block").format(word=letter + text), None)
        if value < 0 and letter in "FNPTS":
            raise BlockError("invalid-value", _("{word} is negative; {letter} must be 0 or more").format(
                word=letter + text, letter=letter), 4)
        block.values[letter] = value
        block.texts[letter] = text

    def _unknown_g(self, code: int, value: float) -> None:
        dialect = self.dialect
        msg = dialect.g_not_simulated.get(code)
        if msg is not None:  # (the code is chosen by the English message: "cycle" names a canned cycle)
            raise BlockError("unsupported-cycle" if "cycle" in msg else "unsupported",
                             _(msg).format(gcode=gname(code)), 20)
        whole = int(value)
        if value != whole and whole * 10 in dialect.g_codes:
            raise BlockError("unsupported", _("G{value} is not a G-code {machine} supports (only whole-number forms "
                                              "like G{whole} exist)").format(value=fmt(value), machine=self.name,
                                                                             whole=whole), 23)
        raise BlockError("unsupported", _("G{value} is not a G-code {machine} supports").format(
            value=fmt(value), machine=self.name), 20)


def _claim_axis_words(block: BlockWords, code: int, group: str | None, lathe: bool) -> None:
    """Commands that take the block's axis words for themselves may not share a block (Fanuc-style)."""
    if code in AXIS_NONMODAL or (code == NonModal.LATHE_CLAMP and lathe):
        if block.axis_command is not None:
            raise BlockError("modal-conflict", _("{gcode} and a motion command both want this block's axis "
                                                 "words: put them on separate lines").format(gcode=gname(code)), 24)
        block.axis_command = "non-modal"
    elif group == D.MOTION and code != MotionMode.CANCEL:
        if block.axis_command is not None:
            raise BlockError("modal-conflict", _("{gcode} and a non-modal command (G10/G28/G30/G92) both want "
                                                 "this block's axis words: put them on separate lines").format(
                gcode=gname(code)), 24)
        block.axis_command = "motion"


def grbl_gcode(block: BlockWords, value: float, dialect: D.Dialect) -> tuple[int, str]:
    """One G word as GRBL 1.1h's gc_execute_line reads it (step 2): the whole number and round(100 x fraction),
    then, in the firmware's order, the axis-command conflict (24), the decimals a command accepts (20), any
    other decimal (23). Returns the table key and modal group; the caller checks the group (21)."""
    whole = math.trunc(value)
    mantissa = _round_half_away(100.0 * (value - whole)) % 65536  # a uint16_t: G-0.5 has a mantissa too
    claim = _GRBL_AXIS_COMMAND.get(whole)
    if claim is not None and not (claim == "non-modal" and mantissa != 0):
        if block.axis_command is not None:
            if claim == "tlo" or block.axis_command == "tlo":
                raise BlockError("modal-conflict", _("G43.1/G49 cannot share a block with motion or other axis "
                                                     "commands in GRBL: put it on its own line"), 24)
            raise BlockError("modal-conflict", _("G{value} and another command in this block both want its axis "
                                                 "words (motion, G10/G28/G30/G92): put them on separate "
                                                 "lines").format(value=fmt(value)), 24)
        block.axis_command = claim
    if whole in (28, 30, 92, 38, 90, 91, 43, 49, 61):
        key = _grbl_subcode(whole, mantissa, value, dialect)
        mantissa = 0
    elif whole in _GRBL_PLAIN or claim is not None:
        key = whole * 10
    else:
        _grbl_unsupported(value, dialect)
    if mantissa > 0:
        msg = dialect.g_not_simulated.get(gkey(value))
        raise BlockError("unsupported", _(msg).format(gcode=gname(gkey(value))) if msg else _(
            "G{value} is not a G-code GRBL 1.1 supports (G{whole} takes no decimals)").format(
            value=fmt(value), whole=whole), 23)
    return key, dialect.g_codes[key]


def _grbl_subcode(whole: int, mantissa: int, value: float, dialect: D.Dialect) -> int:
    """The commands whose decimals gcode.c checks itself: G28.1 G30.1 G92.1 G38.2-.5 G91.1 G43.1 (G49.x reads
    as G49, its decimals ignored); any other decimal of these is error 20."""
    if whole in (28, 30, 92):
        ok = mantissa in (0, 10)
    elif whole == 38:
        ok = mantissa in (20, 30, 40, 50)
    elif whole in (90, 91):
        ok = mantissa == 0 or (mantissa == 10 and whole == 91)
    elif whole == 43:
        ok = mantissa == 10
    else:
        ok = whole == 49 or mantissa == 0
    if not ok:
        _grbl_unsupported(value, dialect)
    if whole == 49:
        return 490
    return whole * 10 + mantissa // 10


def _grbl_unsupported(value: float, dialect: D.Dialect) -> NoReturn:
    msg = dialect.g_not_simulated.get(gkey(value))
    if msg is not None:
        raise BlockError("unsupported-cycle" if "cycle" in msg else "unsupported",
                         _(msg).format(gcode=gname(gkey(value))), 20)
    raise BlockError("unsupported", _("G{value} is not a G-code GRBL 1.1 supports").format(value=fmt(value)), 20)
