"""A modal G-code interpreter that turns blocks into canonical motions, per controller dialect.

Design notes (read before changing):

1. Read everything, check everything, then change state. Like GRBL's
   ``gc_execute_line`` a block is first lexed into words, then every rule is
   checked against a *copy* of the modal state, and only a block with no
   controller error updates the state and yields motions. A failing block
   changes nothing, so the diagnostics after it describe what the controller
   would really do.
2. Two kinds of problems. A diagnostic with ``grbl_error`` set is one the
   controller itself would reject (GRBL answers ``error:N``); it stops the
   block. Policy problems (envelope, keep-out, limits) are found later by the
   checker on the motions; the block still "runs" so one mistake does not hide
   the next.
3. Internal units are mm and machine coordinates. A lathe's X is held as a
   radius (true geometry for arcs); config values and X words in diameter are
   halved on the way in, and reports double them on the way out.
4. Execution order inside a block follows GRBL (and RS274/NGC): feed mode, feed,
   spindle speed, tool, spindle, coolant, dwell, plane, units, tool length,
   work offset, distance mode, non-modal commands, motion, program flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from labbridge.config import WORK_OFFSET_CODES, Machine
from labbridge.safety import dialects as D
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.geometry import arc_sweep
from labbridge.safety.lexer import lex
from labbridge.safety.motion import Motion, Vec

MM_PER_INCH = 25.4
AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}
PLANES = {170: (0, 1, 2), 180: (2, 0, 1), 190: (1, 2, 0)}
PLANE_NAMES = {170: "G17 (XY)", 180: "G18 (ZX)", 190: "G19 (YZ)"}
CYCLES = frozenset((730, 810, 820, 830, 840, 850, 860, 890))
_MAX_LINE_NUMBER = 10_000_000


class BlockError(Exception):
    """A block the controller would reject; carries the diagnostic."""

    def __init__(self, code: str, message: str, grbl_error: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.grbl_error = grbl_error


@dataclass(slots=True)
class Modal:
    """The modal state a program leaves behind, block by block."""

    motion: int = 0  # G-code x10: 0, 10, 20, 30, 382..385, 800, 730..890
    plane: int = 170
    distance: int = 900
    feed_mode: int = 940  # 930 inverse time, 940 per minute, 950 per revolution
    units: int = 210
    wcs: int = 0  # index into G54..G59
    tlo_mode: int = 490
    spindle: int = 5  # M3, M4 or M5
    flood: bool = False
    mist: bool = False
    feed: float = 0.0  # mm/min (G94), 1/min (G93), mm/rev (G95)
    rpm: float = 0.0  # S in rpm (or surface speed m/min under G96: see css_speed)
    tool: int = 0
    css: bool = False
    css_speed: float = 0.0
    clamp: float | None = None
    retract: int = 980
    cycle_r: float | None = None  # machine-coordinate Z of the R level
    cycle_z: float | None = None  # machine-coordinate Z of the hole bottom
    cycle_q: float = 0.0
    cycle_p: float = 0.0

    def copy(self) -> Modal:
        return Modal(*(getattr(self, f) for f in self.__slots__))  # type: ignore[attr-defined]


@dataclass(slots=True)
class BlockResult:
    ok: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    motions: list[Motion] = field(default_factory=list)
    program_end: bool = False
    stop: bool = False
    cleaned: str | None = None  # the block as the controller should receive it (None: send nothing)
    message: str | None = None
    spindle_on: bool = False
    tool_change: int | None = None


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _turret(t: int) -> int:
    """Fanuc lathe T words: T0101 is turret station 1 with offset 1."""
    return t // 100 if t >= 100 else t


def _gname(code: int) -> str:
    return f"G{code // 10}" + (f".{code % 10}" if code % 10 else "")


class Interpreter:
    """Interprets one machine's programs block by block; see the module notes."""

    def __init__(
        self,
        machine: Machine,
        *,
        work_offsets: dict[str, Vec] | None = None,
        start: Vec | None = None,
        machine_id: str | None = None,
    ) -> None:
        self.machine = machine
        self.name = machine_id or machine.name
        self.dialect = D.dialect_for(machine.controller, machine.gcode_system)
        self.lathe = self.dialect.lathe
        # Lathe X values in diameter are halved into radius.
        self.x_scale = 0.5 if self.lathe and machine.diameter_mode else 1.0
        home = machine.home_position()
        self.position: list[float] = list(start) if start is not None else self._from_config(home)
        offsets = {code: machine.offset(code) for code in WORK_OFFSET_CODES}
        if work_offsets:
            offsets.update({k: tuple(v) for k, v in work_offsets.items() if k in offsets})  # type: ignore[misc]
        # Live offsets from a controller, like the config's, are in mm with a lathe's X as a diameter.
        self.wcs = [self._from_config(offsets[c]) for c in WORK_OFFSET_CODES]
        self.g92 = [0.0, 0.0, 0.0]
        self.tlo = 0.0
        self.g28 = self._from_config(self._stored(machine.g28_position, home))
        self.g30 = self._from_config(self._stored(machine.g30_position, home))
        self.modal = Modal()
        if self.lathe:
            self.modal.plane = 180
            self.modal.feed_mode = 950
        self.line_buffer = machine.effective_line_buffer()
        self.forbidden = {c.upper() for c in machine.forbidden_codes}
        self.program_number: int | None = None

    # -- helpers ---------------------------------------------------------------------------

    def _from_config(self, v: tuple[float, ...] | list[float]) -> list[float]:
        return [v[0] * self.x_scale, v[1], v[2]]

    @staticmethod
    def _stored(values: dict[str, float], home: tuple[float, float, float]) -> tuple[float, float, float]:
        return tuple(float(values.get(a, home[i])) for i, a in enumerate("XYZ"))  # type: ignore[return-value]

    def set_position(self, machine_position: Vec) -> None:
        """Tell the interpreter where the machine really is (after a probe, a jog, a reset)."""
        self.position = list(machine_position)

    def work_position(self) -> Vec:
        """Current position in the active work coordinate system (what GRBL reports as WPos)."""
        off = self.wcs[self.modal.wcs]
        return (
            self.position[0] - off[0] - self.g92[0],
            self.position[1] - off[1] - self.g92[1],
            self.position[2] - off[2] - self.g92[2] - self.tlo,
        )

    @property
    def work_offsets(self) -> dict[str, Vec]:
        return {code: tuple(self.wcs[i]) for i, code in enumerate(WORK_OFFSET_CODES)}  # type: ignore[misc]

    def modal_words(self) -> str:
        """The modal state as GRBL's ``$G`` reports it."""
        m = self.modal
        coolant = "M9" if not (m.flood or m.mist) else " ".join(x for x, on in (("M7", m.mist), ("M8", m.flood)) if on)
        feed = m.feed  # GRBL reports mm/min unless $13 (report inches) is set
        return (
            f"{_gname(m.motion)} G{54 + m.wcs} {_gname(m.plane)} G{m.units // 10} G{m.distance // 10} "
            f"G{m.feed_mode // 10} M{m.spindle} {coolant} T{m.tool} F{_fmt(feed)} S{_fmt(m.rpm)}"
        )

    def reset_modal(self) -> None:
        """Soft reset: GRBL restores power-on modal defaults but keeps offsets and position."""
        lathe = self.lathe
        self.modal = Modal()
        if lathe:
            self.modal.plane = 180
            self.modal.feed_mode = 950

    # -- the block -------------------------------------------------------------------------

    def execute(self, raw: str, line: int) -> BlockResult:
        """Interpret one line. Never raises on bad input: problems come back as diagnostics."""
        lexed = lex(raw)
        if lexed.error is not None:
            return self._fail(line, "syntax", lexed.error, lexed.error_grbl)
        special = lexed.special
        if special is not None:
            return self._special(special, line)
        cleaned = lexed.cleaned
        if len(cleaned) > self.line_buffer:
            return self._fail(
                line, "line-too-long",
                f"this block is {len(cleaned)} characters after comments and spaces are removed; "
                f"{self.name} accepts at most {self.line_buffer}: split it into shorter blocks",
                11 if self.dialect.name == "grbl" else None,
            )
        if not lexed.words:
            result = BlockResult(True)
        else:
            try:
                result = self._block(lexed.words, line)
            except BlockError as exc:
                return self._fail(line, exc.code, str(exc), exc.grbl_error)
            result.cleaned = cleaned
        result.message = lexed.message
        if lexed.unclosed_comment:
            result.diagnostics.append(Diagnostic(
                line, "warning", "syntax", "a comment opened with '(' is never closed: add ')'"))
        return result

    def _fail(self, line: int, code: str, message: str, grbl_error: int | None) -> BlockResult:
        return BlockResult(False, [Diagnostic(line, "error", code, message, grbl_error)])

    def _special(self, special: str, line: int) -> BlockResult:
        grbl = self.dialect.name == "grbl"
        if special == "%":
            return BlockResult(True)  # tape framing: never sent to GRBL, read by Fanuc-style controls
        if special == "$":
            return self._fail(
                line, "unsupported",
                "$ commands ($H, $X, $J=, settings) are controller commands, not program blocks: "
                "run them from the machine's controls, not from a program", None)
        what = "#parameters and [expressions]"
        if grbl:
            return self._fail(line, "unsupported", f"{what} are not supported by GRBL 1.1: write plain numbers", 1)
        return self._fail(line, "unsupported", f"{what} (macro B) are not simulated by labbridge: write plain numbers",
                          None)

    # The block proper: parse words, check, then commit. Long by nature: it mirrors the controller's
    # own order of execution, which is easiest to audit as one sequence.
    def _block(self, words: list[tuple[str, float, str]], line: int) -> BlockResult:  # noqa: C901
        dialect = self.dialect
        grbl = dialect.name == "grbl"
        gcodes: dict[str, int] = {}
        mcodes: dict[str, int] = {}
        values: dict[str, float] = {}
        texts: dict[str, str] = {}
        axis_command: str | None = None
        # ---- read every word -------------------------------------------------------------
        for letter, value, text in words:
            if letter == "G":
                code = int(round(value * 10))
                group = dialect.g_codes.get(code)
                if group is None:
                    self._unknown_g(code, value)
                if group in gcodes:
                    raise BlockError("modal-conflict", f"{_gname(gcodes[group])} and {_gname(code)} are both "
                                     f"{group} commands: only one of them may be in a block", 21)
                if code in (100, 280, 300, 920) or (code == 500 and self.lathe):
                    if axis_command is not None:
                        raise BlockError("modal-conflict", f"{_gname(code)} and a motion command both want this "
                                         "block's axis words: put them on separate lines", 24)
                    axis_command = "non-modal"
                elif group == D.MOTION and code != 800:
                    if axis_command is not None:
                        raise BlockError("modal-conflict", f"{_gname(code)} and a non-modal command (G10/G28/G30/"
                                         "G92) both want this block's axis words: put them on separate lines", 24)
                    axis_command = "motion"
                elif group == D.TLO and grbl:
                    if axis_command is not None:
                        raise BlockError("modal-conflict", "G43.1/G49 cannot share a block with motion or other "
                                         "axis commands in GRBL: put it on its own line", 24)
                    axis_command = "tlo"
                if _gname(code) in self.forbidden:
                    raise BlockError("forbidden-code", f"{_gname(code)} is not allowed on {self.name} "
                                     "in this lab: ask your trainer", None)
                gcodes[group] = code
            elif letter == "M":
                code_m = int(value)
                if value != code_m:
                    raise BlockError("unsupported", f"M{text} is not a valid M-code (M-codes are whole numbers)", 23)
                mgroup = dialect.m_codes.get(code_m)
                if mgroup is None:
                    msg = dialect.m_not_simulated.get(code_m) or (
                        f"M{code_m} is not an M-code {self.name} supports")
                    raise BlockError("unsupported", msg, 20)
                if mgroup in mcodes and not (mgroup == D.M_COOLANT and {mcodes[mgroup], code_m} == {7, 8}):
                    raise BlockError("modal-conflict", f"M{mcodes[mgroup]} and M{code_m} are both {mgroup} "
                                     "commands: only one of them may be in a block", 21)
                if f"M{code_m}" in self.forbidden:
                    raise BlockError("forbidden-code", f"M{code_m} is not allowed on {self.name} in this "
                                     "lab: ask your trainer", None)
                if mgroup == D.M_COOLANT and mgroup in mcodes:
                    mcodes["coolant2"] = code_m
                else:
                    mcodes[mgroup] = code_m
            else:
                if letter not in dialect.letters:
                    msg = dialect.unsupported_letters.get(letter) or (
                        f"'{letter}' words are not supported by {self.name}'s controller")
                    raise BlockError("unsupported", msg, 20)
                if letter in values:
                    raise BlockError("repeated-word", f"{letter} appears twice in this block: keep one", 25)
                if value < 0 and letter in "FNPTS":
                    raise BlockError("invalid-value", f"{letter}{text} is negative; {letter} must be 0 or more", 4)
                if letter == "T" and grbl and value > 255:
                    raise BlockError("invalid-value", "GRBL supports tool numbers up to T255", 38)
                values[letter] = value
                texts[letter] = text
        return self._check_and_run(gcodes, mcodes, values, texts, axis_command, line)

    def _unknown_g(self, code: int, value: float) -> None:
        dialect = self.dialect
        msg = dialect.g_not_simulated.get(code)
        if msg is not None:
            is_cycle = "cycle" in msg
            raise BlockError("unsupported-cycle" if is_cycle else "unsupported", msg, 20)
        whole = int(value)
        if value != whole and int(whole) * 10 in dialect.g_codes:
            raise BlockError("unsupported", f"G{_fmt(value)} is not a G-code {self.name} supports "
                             f"(only whole-number forms like G{whole} exist)", 23)
        raise BlockError("unsupported", f"G{_fmt(value)} is not a G-code {self.name} supports", 20)

    # ---- check, then commit -------------------------------------------------------------------

    def _check_and_run(  # noqa: C901
        self,
        gcodes: dict[str, int],
        mcodes: dict[str, int],
        values: dict[str, float],
        texts: dict[str, str],
        axis_command: str | None,
        line: int,
    ) -> BlockResult:
        dialect = self.dialect
        grbl = dialect.name == "grbl"
        fanuc = dialect.fanuc
        lathe = self.lathe
        state = self.modal
        new = state.copy()
        diags: list[Diagnostic] = []
        used: set[str] = {"N", "F", "S", "T"}
        nonmodal = gcodes.get(D.NONMODAL)
        if "O" in values:
            used.add("O")
            self.program_number = int(values["O"])
        if "N" in values and values["N"] > _MAX_LINE_NUMBER:
            raise BlockError("invalid-value", f"line number N{texts['N']} is too large (at most N9999999)", 27)

        # Fanuc dwell: G4 X1.5 / G4 U1.5 are seconds, not axis words.
        dwell_seconds: float | None = None
        if nonmodal == 40:
            if fanuc and ("X" in values or "U" in values):
                key = "X" if "X" in values else "U"
                dwell_seconds = values.pop(key)
            elif "P" in values:
                # GRBL: P in seconds. Fanuc: P in milliseconds without a decimal point.
                p = values["P"]
                dwell_seconds = p / 1000.0 if fanuc and "." not in texts["P"] else p
                used.add("P")
            else:
                raise BlockError("missing-word", "G4 (dwell) needs a time: add P with the seconds, e.g. G4 P0.5", 28)

        # Axis words (lathe: U and W are incremental X and Z).
        axis_words: dict[int, float] = {}
        incremental_words: set[int] = set()
        for letter in ("X", "Y", "Z"):
            if letter in values:
                axis_words[AXIS_INDEX[letter]] = values[letter]
        if lathe:
            for letter, idx in (("U", 0), ("W", 2)):
                if letter in values:
                    if idx in axis_words:
                        other = "X" if idx == 0 else "Z"
                        raise BlockError("repeated-word", f"{other} and {letter} both move the same axis: keep one",
                                         None)
                    axis_words[idx] = values[letter]
                    incremental_words.add(idx)
        if fanuc:
            self._decimal_warnings(texts, line, diags)
        if axis_words and axis_command is None:
            axis_command = "motion"

        # [2-3] feed mode and feed.
        if D.FEED_MODE in gcodes:
            code = gcodes[D.FEED_MODE]
            new.feed_mode = dialect.feed_mode_alias.get(code, code)
        if D.UNITS in gcodes:
            new.units = gcodes[D.UNITS]
        inch = new.units == 200
        if D.MOTION in gcodes:
            new.motion = gcodes[D.MOTION]
        if new.feed_mode == 930:
            if axis_command == "motion" and new.motion not in (0, 800) and "F" not in values:
                raise BlockError("no-feed-rate", "in G93 (inverse time) every feed move needs its own F word: "
                                 "add F to this line", 22)
            new.feed = values.get("F", 0.0)
        else:
            if "F" in values:
                new.feed = values["F"] * (MM_PER_INCH if inch else 1.0)
            elif state.feed_mode != new.feed_mode:
                new.feed = 0.0

        # [4] spindle speed, incl. Fanuc constant surface speed and the G50 clamp.
        if D.CSS in gcodes:
            new.css = gcodes[D.CSS] == 960
        if nonmodal == 500:
            if "S" in values:
                new.clamp = values["S"]
        elif "S" in values:
            if new.css:
                new.css_speed = values["S"]
            else:
                new.rpm = values["S"]

        # [5-8] tool, spindle, coolant.
        tool_change: int | None = None
        if "T" in values:
            t = int(values["T"])
            if lathe and _turret(t) != _turret(state.tool):
                tool_change = _turret(t)  # a lathe turret indexes on the T word itself
            new.tool = t
        if mcodes.get(D.M_TOOL) == 6:
            tool_change = new.tool
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

        # [11] plane.
        if D.PLANE in gcodes:
            new.plane = gcodes[D.PLANE]
        a0, a1, a_lin = PLANES[new.plane]

        # [12] units: convert axis words to mm (and lathe X diameters to radius).
        scale = MM_PER_INCH if inch else 1.0
        for idx in axis_words:
            axis_words[idx] *= scale
            if idx == 0:
                axis_words[idx] *= self.x_scale

        # [14] tool length offset.
        new_tlo = self.tlo
        if D.TLO in gcodes:
            code = gcodes[D.TLO]
            new.tlo_mode = code
            if code == 490:
                new_tlo = 0.0
            elif code == 431:
                if set(axis_words) != {2}:
                    raise BlockError("invalid-value", "G43.1 takes exactly one Z word (the tool length), e.g. "
                                     "G43.1 Z-12.5", 37)
                new_tlo = axis_words[2]
                axis_words = {}
            elif code == 430:
                if "H" not in values:
                    raise BlockError("missing-word", "G43 needs H with the tool's offset number, e.g. G43 H1", 28)
                used.add("H")
                h = int(values["H"])
                tool = self.machine.tools.get(h)
                if tool is None:
                    raise BlockError("invalid-value", f"H{h} has no entry in {self.name}'s tool table: "
                                     "use the number of a tool in config/machines.yaml", None)
                new_tlo = tool.length
        if "H" in values and D.TLO not in gcodes:
            used.add("H")  # Fanuc: H alone only selects; harmless.
        if "D" in values:
            used.add("D")

        # [15] work offset selected in this block applies to its motion.
        if D.WCS in gcodes:
            new.wcs = (gcodes[D.WCS] - 540) // 10
        block_wcs = self.wcs[new.wcs]

        # [17] distance mode; [18] retract mode.
        if D.DISTANCE in gcodes:
            new.distance = gcodes[D.DISTANCE]
        if D.RETRACT in gcodes:
            new.retract = gcodes[D.RETRACT]
        absolute = new.distance == 900

        pos = self.position
        motions: list[Motion] = []
        new_wcs_values: tuple[int, list[float]] | None = None
        new_g92: list[float] | None = None
        store_home: int | None = None
        home_target: list[float] | None = None
        target: list[float] | None = None

        # [19] non-modal commands.
        if nonmodal == 100:
            if not axis_words:
                raise BlockError("no-axis-words", "G10 needs axis words with the offset values, e.g. G10 L2 P1 X0 Y0",
                                 26)
            if "L" not in values or "P" not in values:
                raise BlockError("missing-word", "G10 needs L (2 or 20) and P (1-6 for G54-G59, 0 for the active "
                                 "one), e.g. G10 L20 P1 X0", 28)
            used.update(("L", "P"))
            p = int(values["P"])
            if p > 6:
                raise BlockError("invalid-value", f"G10 P{p}: only P0 to P6 exist (G54 to G59)", 29)
            l_word = int(values["L"])
            if l_word not in (2, 20):
                raise BlockError("unsupported", f"G10 L{l_word} is not supported: use L2 or L20", 20)
            if l_word == 2 and "R" in values and grbl:
                raise BlockError("unsupported", "G10 L2 R (rotation) is not supported by GRBL", 20)
            index = p - 1 if p > 0 else new.wcs
            data = list(self.wcs[index])
            for idx, v in axis_words.items():
                if l_word == 20:
                    data[idx] = pos[idx] - self.g92[idx] - v - (self.tlo if idx == 2 else 0.0)
                else:
                    data[idx] = v
            new_wcs_values = (index, data)
        elif nonmodal == 920 or (nonmodal == 500 and lathe and axis_words):
            if not axis_words:
                raise BlockError("no-axis-words", "G92 needs axis words: the current position's new coordinates, "
                                 "e.g. G92 X0 Y0", 26)
            new_g92 = list(self.g92)
            for idx, v in axis_words.items():
                new_g92[idx] = pos[idx] - block_wcs[idx] - v - (self.tlo if idx == 2 else 0.0)
        elif nonmodal == 500 and axis_words:
            raise BlockError("unsupported", "G50 with axis words (scaling) is not simulated on a mill; use G50 S "
                             "only for the spindle clamp on a lathe", None)
        elif axis_command in ("motion", "non-modal") and axis_words:
            target = list(pos)
            tlo_now = new_tlo
            for idx, v in axis_words.items():
                if nonmodal == 530:
                    target[idx] = v
                elif idx in incremental_words or not absolute:
                    target[idx] = pos[idx] + v
                else:
                    target[idx] = v + block_wcs[idx] + self.g92[idx] + (tlo_now if idx == 2 else 0.0)
        if nonmodal in (280, 300):
            stored = self.g28 if nonmodal == 280 else self.g30
            if axis_words:
                home_target = [stored[i] if i in axis_words else pos[i] for i in range(3)]
            else:
                home_target = list(stored)
                axis_command = None
        elif nonmodal in (281, 301):
            store_home = nonmodal
        elif nonmodal == 530 and new.motion not in (0, 10):
            raise BlockError("unsupported", "G53 only works with G0 or G1 active: add G0 to this line", 30)

        # [20] motion.
        feed_required = False
        arc: tuple[Vec, float, float, bool] | None = None  # centre, radius, sweep, clockwise
        if new.motion == 800:
            # GRBL is strict here: under G80 even G92 or G10 axis words are refused.
            if axis_words and (grbl or axis_command == "motion"):
                raise BlockError("no-axis-words", "axis words with no motion mode (G80 is active): add G0 or G1 "
                                 "to say how to move", 31)
        elif axis_command == "motion":
            if new.motion != 0:
                feed_required = new.motion not in CYCLES or bool(axis_words)
                if feed_required and new.feed <= 0.0:
                    raise BlockError("no-feed-rate", self._no_feed_message(new.motion), 22)
            if new.motion in (20, 30):
                if not axis_words:
                    raise BlockError("no-axis-words", f"{_gname(new.motion)} needs an end point: add the arc's end "
                                     "coordinates", 26)
                if a0 not in axis_words and a1 not in axis_words:
                    raise BlockError("no-axis-words", f"{_gname(new.motion)} in {PLANE_NAMES[new.plane]} needs an "
                                     "end point in that plane", 32)
                assert target is not None
                arc = self._arc(new, values, texts, target, a0, a1, scale, line, diags, used)
            elif new.motion in (382, 383, 384, 385):
                if not axis_words:
                    raise BlockError("no-axis-words", "G38 probing needs a target: add the axis words to probe "
                                     "towards", 26)
                if target == pos:
                    raise BlockError("probe", "the probe target is where the machine already is: give a target "
                                     "some distance away", 33)
            elif new.motion in CYCLES:
                used.update(("R", "Q", "P", "L", "K"))
        # Unused words (GRBL error 36): anything not consumed by a command of this block.
        leftover = [k for k in values if k not in used and k not in "XYZUW"]
        if leftover:
            letters = " ".join(leftover)
            raise BlockError("unused-word", f"{letters}: no command in this block uses "
                             f"{'this word' if len(leftover) == 1 else 'these words'}; remove it or add the command "
                             "it belongs to", 36)

        # ---- the block is valid: policy checks that do not stop it ----------------------------
        result = BlockResult(True, diags)
        max_rpm = self.machine.spindle.max_rpm
        if "S" in values and nonmodal != 500 and not new.css and values["S"] > max_rpm:
            diags.append(Diagnostic(line, "error", "spindle-speed", f"S{texts['S']} is above {self.name}'s "
                                    f"maximum spindle speed of {_fmt(max_rpm)} rpm: use S{_fmt(max_rpm)} or less"))
        if nonmodal == 500 and "S" in values and values["S"] > max_rpm:
            diags.append(Diagnostic(line, "error", "spindle-speed", f"G50 S{texts['S']} clamps the spindle above "
                                    f"its maximum of {_fmt(max_rpm)} rpm: use G50 S{_fmt(max_rpm)} or less"))
        if new.css and (gcodes.get(D.CSS) == 960 or (new.spindle in (3, 4) and state.spindle == 5)) \
                and new.clamp is None:
            diags.append(Diagnostic(line, "error", "g96-no-clamp", "G96 (constant surface speed) without a G50 "
                                    "spindle clamp lets the spindle race as X nears 0: add a G50 S<max rpm> line "
                                    "before G96"))
        if tool_change is not None and not self.machine.tool_changer:
            diags.append(Diagnostic(line, "error", "tool-change", f"{self.name} has no tool changer: stop "
                                    "with M0, change the tool by hand, and remove the tool change from the program"))
        elif tool_change is not None and self.machine.tools and tool_change not in self.machine.tools and tool_change:
            diags.append(Diagnostic(line, "warning", "tool-change", f"T{tool_change} is not in "
                                    f"{self.name}'s tool table"))

        # ---- commit --------------------------------------------------------------------------
        self.modal = new
        self.tlo = new_tlo
        if new_wcs_values is not None:
            self.wcs[new_wcs_values[0]] = new_wcs_values[1]
        if new_g92 is not None:
            self.g92 = new_g92
        elif nonmodal == 921:
            self.g92 = [0.0, 0.0, 0.0]
        if store_home == 281:
            self.g28 = list(pos)
        elif store_home == 301:
            self.g30 = list(pos)
        if dwell_seconds is not None:
            motions.append(Motion("dwell", line, tuple(pos), tuple(pos), seconds=dwell_seconds))  # type: ignore[arg-type]
        if home_target is not None:
            if target is not None:
                motions.append(Motion("traverse", line, tuple(pos), tuple(target)))  # type: ignore[arg-type]
                pos = target
            motions.append(Motion("traverse", line, tuple(pos), tuple(home_target)))  # type: ignore[arg-type]
            self.position = home_target
        elif axis_command == "motion" and target is not None:
            self._emit_motion(new, target, arc, line, motions, values, absolute, block_wcs)
        result.motions = motions
        result.spindle_on = new.spindle in (3, 4)
        result.tool_change = tool_change
        stop = mcodes.get(D.M_STOP)
        if stop in (0, 1):
            result.stop = True
        elif stop in (2, 30):
            result.program_end = True
            self._program_end()
        return result

    def _program_end(self) -> None:
        """M2/M30 resets a subset of modes (GRBL and LinuxCNC agree): G1 G17 G90 G94 G54 M5 M9."""
        m = self.modal
        m.motion = 10
        m.plane = 180 if self.lathe else 170
        m.distance = 900
        m.feed_mode = 950 if self.lathe else 940
        m.wcs = 0
        m.spindle = 5
        m.flood = m.mist = False

    def _no_feed_message(self, motion: int) -> str:
        if self.modal.feed_mode == 950 or (self.lathe and self.modal.feed_mode != 940):
            return f"{_gname(motion)} needs a feed rate: add F0.1 (mm per revolution) to this line or an earlier one"
        suggestion = _fmt(min(200.0, self.machine.max_feed))
        return f"{_gname(motion)} needs a feed rate: add F{suggestion} to this line or an earlier one"

    def _decimal_warnings(self, texts: dict[str, str], line: int, diags: list[Diagnostic]) -> None:
        for letter in "XYZUWIJKR":
            t = texts.get(letter)
            if t is not None and "." not in t and t.lstrip("+-") not in ("0",):
                diags.append(Diagnostic(
                    line, "warning", "syntax",
                    f"{letter}{t} has no decimal point: many Fanuc-style controls read it as {letter}{t} "
                    f"thousandths of a mm; write {letter}{t}. to mean millimetres"))
                return

    def _arc(
        self,
        new: Modal,
        values: dict[str, float],
        texts: dict[str, str],
        target: list[float],
        a0: int,
        a1: int,
        scale: float,
        line: int,
        diags: list[Diagnostic],
        used: set[str],
    ) -> tuple[Vec, float, float, bool]:
        pos = self.position
        clockwise = new.motion == 20
        x = target[a0] - pos[a0]
        y = target[a1] - pos[a1]
        name = _gname(new.motion)
        if "R" in values:
            used.add("R")
            r = values["R"] * scale
            if target == pos:
                raise BlockError("arc-impossible", f"{name} with R cannot make a full circle (start and end are the "
                                 "same point): use I and J for the centre instead", 33)
            if r == 0.0:
                raise BlockError("arc-zero-radius", f"{name} R0: an arc needs a radius above zero", 34)
            h_x2_div_d = 4.0 * r * r - x * x - y * y
            if h_x2_div_d < 0:
                chord = math.hypot(x, y)
                raise BlockError("arc-impossible", f"{name} R{texts['R']}: the end point is {chord:.3f} mm away, "
                                 f"more than the arc's diameter {2 * abs(r):.3f} mm: use a radius of at least "
                                 f"{chord / 2:.3f} mm or move the end point", 34)
            h_x2_div_d = -math.sqrt(h_x2_div_d) / math.hypot(x, y)
            if not clockwise:
                h_x2_div_d = -h_x2_div_d
            if r < 0:
                h_x2_div_d = -h_x2_div_d
                r = -r
            i = 0.5 * (x - y * h_x2_div_d)
            j = 0.5 * (y + x * h_x2_div_d)
        else:
            letters = "IJK"
            plane_letters = (letters[a0], letters[a1])
            offsets = {idx: values[letters[idx]] * scale for idx in range(3) if letters[idx] in values}
            if a0 not in offsets and a1 not in offsets:
                raise BlockError("arc-no-offsets", f"{name} needs the centre: add {plane_letters[0]} and/or "
                                 f"{plane_letters[1]} (offsets from the start point) or an R word", 35)
            used.update(letters[idx] for idx in offsets)
            i = offsets.get(a0, 0.0)
            j = offsets.get(a1, 0.0)
            r = math.hypot(i, j)
            target_r = math.hypot(x - i, y - j)
            delta = abs(target_r - r)
            if delta > 0.005 and (delta > 0.5 or delta > 0.001 * r):
                raise BlockError("arc-radius-mismatch", f"{name}: the end point is {target_r:.3f} mm from the "
                                 f"centre but the start is {r:.3f} mm from it ({delta:.3f} mm apart; the controller "
                                 "allows 0.005 mm): check I/J/K and the end point", 33)
            if r == 0.0:
                diags.append(Diagnostic(line, "error", "arc-zero-radius", f"{name} has its centre on the start "
                                        "point (radius 0): check I, J and K"))
        center = [pos[0], pos[1], pos[2]]
        center[a0] = pos[a0] + i
        center[a1] = pos[a1] + j
        c = (center[0], center[1], center[2])
        sweep = arc_sweep(tuple(pos), tuple(target), c, PLANES[new.plane], clockwise)  # type: ignore[arg-type]
        return c, r, sweep, clockwise

    def _emit_motion(
        self,
        new: Modal,
        target: list[float],
        arc: tuple[Vec, float, float, bool] | None,
        line: int,
        motions: list[Motion],
        values: dict[str, float],
        absolute: bool,
        block_wcs: list[float],
    ) -> None:
        pos = tuple(self.position)
        end = (target[0], target[1], target[2])
        motion = new.motion
        if motion == 0:
            motions.append(Motion("traverse", line, pos, end))  # type: ignore[arg-type]
        elif motion == 10:
            motions.append(Motion("feed", line, pos, end, self.feed_rate(pos, end)))  # type: ignore[arg-type]
        elif motion in (20, 30):
            assert arc is not None
            center, radius, sweep, clockwise = arc
            m = Motion("arc", line, pos, end, 0.0, center, PLANES[new.plane], clockwise, sweep, radius)  # type: ignore[arg-type]
            m.feed = self.feed_rate(pos, end, abs(sweep) * radius)  # type: ignore[arg-type]
            motions.append(m)
        elif motion in (382, 383, 384, 385):
            motions.append(Motion("probe", line, pos, end, self.feed_rate(pos, end)))  # type: ignore[arg-type]
        else:
            end = self._canned_cycle(new, target, line, motions, values, absolute, block_wcs)
        self.position = list(end)

    def feed_rate(self, start: Vec, end: Vec, length: float | None = None) -> float:
        """Effective feed in mm/min for a feed move under the current feed mode."""
        m = self.modal
        if m.feed_mode == 940:
            return m.feed
        if length is None:
            length = math.dist(start, end)
        if m.feed_mode == 930:
            return length * m.feed  # F is 1/minutes: the move takes 1/F minutes
        return m.feed * self.spindle_rpm_at(end)

    def spindle_rpm_at(self, where: Vec) -> float:
        """Spindle speed at a point: S, or under G96 the surface speed over the diameter, clamped by G50."""
        m = self.modal
        if m.spindle == 5:
            return 0.0
        if not m.css:
            return m.rpm
        diameter = abs(where[0]) * 2.0  # X is a radius from the spindle axis (machine X 0)
        clamp = m.clamp if m.clamp is not None else self.machine.spindle.max_rpm
        if diameter < 1e-6:
            return clamp
        return min(clamp, 1000.0 * m.css_speed / (math.pi * diameter))

    def _canned_cycle(
        self,
        new: Modal,
        target: list[float],
        line: int,
        motions: list[Motion],
        values: dict[str, float],
        absolute: bool,
        block_wcs: list[float],
    ) -> Vec:
        """Drilling cycles G73/G81-G89 along Z, swept as rapid to R, feed to Z, return to initial or R level."""
        pos = self.position
        scale = MM_PER_INCH if new.units == 200 else 1.0
        initial_z = pos[2]
        if "R" in values:
            r = values["R"] * scale
            new.cycle_r = initial_z + r if not absolute else r + block_wcs[2] + self.g92[2] + self.tlo
        if "Z" in values:
            # target[2] already holds the converted Z; incremental Z is measured from the R level on Fanuc.
            z = values["Z"] * scale
            base = new.cycle_r if new.cycle_r is not None else initial_z
            new.cycle_z = base + z if not absolute else target[2]
        if "Q" in values:
            new.cycle_q = abs(values["Q"] * scale)
        if "P" in values:
            new.cycle_p = values["P"] / 1000.0
        r_level = new.cycle_r if new.cycle_r is not None else initial_z
        bottom = new.cycle_z if new.cycle_z is not None else r_level
        repeats = int(values.get("L", values.get("K", 1)))
        x, y = target[0], target[1]
        cur = (pos[0], pos[1], initial_z)
        feed = self.feed_rate(cur, cur)
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
            if new.motion in (820, 890) and new.cycle_p:
                motions.append(Motion("dwell", line, hole, hole, seconds=new.cycle_p))
            back_z = initial_z if new.retract == 980 else r_level
            back = (x, y, back_z)
            kind = "feed" if new.motion in (850, 890, 840) else "traverse"
            motions.append(Motion(kind, line, hole, back, feed if kind == "feed" else 0.0))  # type: ignore[arg-type]
            cur = back
        return cur
