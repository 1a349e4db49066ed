"""Reading a block's words into commands, the first step of GRBL's ``gc_execute_line``.

Each G-code goes to its modal group (two of one group in a block is an error),
each M-code to its group, every other letter to a value; commands that claim the
block's axis words (motion, G10/G28/G30/G92, G43.1) may not share a block. Nothing
here changes the modal state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from labbridge.safety import dialects as D
from labbridge.safety.modal import MotionMode, NonModal, fmt, gkey, gname

# Commands that take the block's axis words for themselves (GRBL's axis_command).
AXIS_NONMODAL = frozenset((NonModal.SET_OFFSETS, NonModal.GO_PREDEFINED, NonModal.GO_PREDEFINED_2,
                           NonModal.SHIFT_ORIGIN))


# G codes whose decimals GRBL checks itself (G28.1, G38.2, G43.1, G91.1, ...): other decimals are error 20.
GRBL_SUBCODE_COMMANDS = frozenset((28, 30, 38, 43, 61, 90, 91, 92))


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
        code = self._grbl_gkey(value) if self.dialect.name == "grbl" else gkey(value)
        group = self.dialect.g_codes.get(code)
        if group is None:
            self._unknown_g(code, value)
        gcodes = block.gcodes
        if group in gcodes:
            raise BlockError("modal-conflict", f"{gname(gcodes[group])} and {gname(code)} are both "
                             f"{group} commands: only one of them may be in a block", 21)
        if code in AXIS_NONMODAL or (code == NonModal.LATHE_CLAMP and self.lathe):
            if block.axis_command is not None:
                raise BlockError("modal-conflict", f"{gname(code)} and a motion command both want this "
                                 "block's axis words: put them on separate lines", 24)
            block.axis_command = "non-modal"
        elif group == D.MOTION and code != MotionMode.CANCEL:
            if block.axis_command is not None:
                raise BlockError("modal-conflict", f"{gname(code)} and a non-modal command (G10/G28/G30/"
                                 "G92) both want this block's axis words: put them on separate lines", 24)
            block.axis_command = "motion"
        elif group == D.TLO and self.dialect.name == "grbl":
            if block.axis_command is not None:
                raise BlockError("modal-conflict", "G43.1/G49 cannot share a block with motion or other "
                                 "axis commands in GRBL: put it on its own line", 24)
            block.axis_command = "tlo"
        if gname(code) in self.forbidden:
            raise BlockError("forbidden-code", f"{gname(code)} is not allowed on {self.name} "
                             "in this lab: ask your trainer", None)
        gcodes[group] = code  # type: ignore[index]

    @staticmethod
    def _grbl_gkey(value: float) -> int:
        """GRBL's reading of a G number (gcode.c): its whole part and round(100 x fraction); a fraction that
        is not a tenth is refused, by the rules of the command it belongs to."""
        whole = math.trunc(value)
        mantissa = _round_half_away(100.0 * (value - whole))
        if mantissa % 10:
            if whole in GRBL_SUBCODE_COMMANDS:
                raise BlockError("unsupported", f"G{fmt(value)} is not a G-code GRBL 1.1 supports", 20)
            raise BlockError("unsupported", f"G{fmt(value)} is not a G-code GRBL 1.1 supports (G{whole} takes no "
                             "decimals)", 23)
        return whole * 10 + mantissa // 10

    def _m(self, block: BlockWords, value: float, text: str) -> None:
        dialect = self.dialect
        code = int(value)
        if dialect.name == "grbl" and _round_half_away(100.0 * (value - code)) == 0:
            value = code  # GRBL reads M codes to 1/100 (M3.004 is M3)
        if value != code:
            raise BlockError("unsupported", f"M{text} is not a valid M-code (M-codes are whole numbers)", 23)
        group = dialect.m_codes.get(code)
        if group is None:
            msg = dialect.m_not_simulated.get(code) or f"M{code} is not an M-code {self.name} supports"
            raise BlockError("unsupported", msg, 20)
        mcodes = block.mcodes
        if group in mcodes and not (group == D.M_COOLANT and {mcodes[group], code} == {7, 8}):
            raise BlockError("modal-conflict", f"M{mcodes[group]} and M{code} are both {group} "
                             "commands: only one of them may be in a block", 21)
        if f"M{code}" in self.forbidden:
            raise BlockError("forbidden-code", f"M{code} is not allowed on {self.name} in this "
                             "lab: ask your trainer", None)
        mcodes["coolant2" if group == D.M_COOLANT and group in mcodes else group] = code

    def _value(self, block: BlockWords, letter: str, value: float, text: str) -> None:
        dialect = self.dialect
        if letter not in dialect.letters:
            msg = dialect.unsupported_letters.get(letter) or (
                f"'{letter}' words are not supported by {self.name}'s controller")
            raise BlockError("unsupported", msg, 20)
        if letter in block.values:
            raise BlockError("repeated-word", f"{letter} appears twice in this block: keep one", 25)
        if not math.isfinite(value):
            raise BlockError("invalid-value", f"{letter}{text} is too large: GRBL holds numbers as 32-bit floats "
                             "and reads it as infinity, and what it then does is undefined, so labbridge refuses "
                             "the block", None)
        if value < 0 and letter in "FNPTS":
            raise BlockError("invalid-value", f"{letter}{text} is negative; {letter} must be 0 or more", 4)
        if letter == "T" and dialect.name == "grbl" and value > 255:
            raise BlockError("invalid-value", "GRBL supports tool numbers up to T255", 38)
        block.values[letter] = value
        block.texts[letter] = text

    def _unknown_g(self, code: int, value: float) -> None:
        dialect = self.dialect
        msg = dialect.g_not_simulated.get(code)
        if msg is not None:
            raise BlockError("unsupported-cycle" if "cycle" in msg else "unsupported", msg, 20)
        whole = int(value)
        if value != whole and whole * 10 in dialect.g_codes:
            raise BlockError("unsupported", f"G{fmt(value)} is not a G-code {self.name} supports "
                             f"(only whole-number forms like G{whole} exist)", 23)
        raise BlockError("unsupported", f"G{fmt(value)} is not a G-code {self.name} supports", 20)
