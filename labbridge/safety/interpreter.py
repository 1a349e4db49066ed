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
5. Where each step lives: lexer (characters to words, numbers as the controller
   reads them), words (words to commands and modal groups), modes (the modal
   groups, in order), nonmodal (axis words, targets, G4/G10/G28/G30/G53/G92),
   moves with arcs and cycles (the motion), policy (lab limits on a valid
   block), plan (what a block will change). Modal values have names in modal.
6. ``firmware=True`` interprets as the controller itself would where the gate
   fails closed (the GRBL simulator uses it); the gate never does.
"""

from __future__ import annotations

import math

from labbridge.config import WORK_OFFSET_CODES, Machine
from labbridge.i18n import _, ngettext
from labbridge.safety import dialects as D
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.lexer import Lexed, lex
from labbridge.safety.modal import (
    CYCLES,
    PROBES,
    CycleState,
    FeedMode,
    Modal,
    MotionMode,
    NonModal,
    Spindle,
    fmt,
    gname,
)
from labbridge.safety.modes import apply_modes
from labbridge.safety.motion import Motion, Vec
from labbridge.safety.moves import check_motion, emit_motion
from labbridge.safety.nonmodal import apply_nonmodal, read_axis_words, read_block_numbers, read_dwell
from labbridge.safety.plan import BlockResult, Plan
from labbridge.safety.policy import policy_checks
from labbridge.safety.words import BlockError, BlockWords, Reader

__all__ = ["BlockError", "BlockResult", "Interpreter", "Modal"]


class Interpreter:
    """Interprets one machine's programs block by block; see the module notes."""

    def __init__(
        self,
        machine: Machine,
        *,
        work_offsets: dict[str, Vec] | None = None,
        start: Vec | None = None,
        machine_id: str | None = None,
        firmware: bool = False,
    ) -> None:
        self.machine = machine
        # As the controller itself: what only the gate refuses (fail closed) runs as the firmware would run it.
        # The GRBL simulator interprets with firmware=True; the gate never does.
        self.firmware = firmware
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
        self.modal = Modal.power_on(self.lathe)
        self.line_buffer = machine.effective_line_buffer()
        self.forbidden = {c.upper() for c in machine.forbidden_codes}
        self.reader = Reader(self.dialect, frozenset(self.forbidden), self.name, self.lathe)
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
            f"{gname(m.motion)} G{54 + m.wcs} {gname(m.plane)} {gname(m.units)} {gname(m.distance)} "
            f"{gname(m.feed_mode)} M{m.spindle} {coolant} T{m.tool} F{fmt(feed)} S{fmt(m.rpm)}"
        )

    def reset_modal(self) -> None:
        """Soft reset: GRBL restores power-on modal defaults but keeps offsets and position."""
        self.modal = Modal.power_on(self.lathe)

    # -- the block -------------------------------------------------------------------------

    def execute(self, raw: str, line: int) -> BlockResult:
        """Interpret one line. Never raises on bad input: problems come back as diagnostics."""
        lexed = lex(raw, self.dialect.name == "grbl")
        result = self._execute(lexed, line)
        if lexed.notes:
            result.diagnostics.extend(Diagnostic(line, "warning", "syntax", note) for note in lexed.notes)
        return result

    def _execute(self, lexed: Lexed, line: int) -> BlockResult:
        if lexed.error is not None:
            if self.dialect.name == "grbl" and lexed.words:
                # gc_execute_line reads word by word: a fault in an earlier word (repeated, unsupported, ...)
                # is answered before the one the lexer stopped at.
                try:
                    self.reader.read(lexed.words, line)
                except BlockError as exc:
                    return self._fail(line, exc.code, str(exc), exc.grbl_error)
            return self._fail(line, "syntax", lexed.error, lexed.error_grbl)
        special = lexed.special
        if special is not None:
            return self._special(special, line)
        cleaned = lexed.cleaned
        if len(cleaned) > self.line_buffer:
            return self._fail(
                line, "line-too-long",
                _("this block is {n} characters after comments and spaces are removed; {machine} accepts at most "
                  "{limit}: split it into shorter blocks").format(n=len(cleaned), machine=self.name,
                                                                  limit=self.line_buffer),
                11 if self.dialect.name == "grbl" else None,
            )
        if not lexed.words:
            result = BlockResult(True)
        else:
            try:
                result = self._check_and_run(self.reader.read(lexed.words, line))
            except BlockError as exc:
                return self._fail(line, exc.code, str(exc), exc.grbl_error)
            result.cleaned = cleaned
        result.message = lexed.message
        if lexed.unclosed_comment:
            result.diagnostics.append(Diagnostic(
                line, "warning", "syntax", _("a comment opened with '(' is never closed: add ')'")))
        return result

    def _fail(self, line: int, code: str, message: str, grbl_error: int | None) -> BlockResult:
        return BlockResult(False, [Diagnostic(line, "error", code, message, grbl_error)])

    def _special(self, special: str, line: int) -> BlockResult:
        if special == "%":
            if self.firmware and self.dialect.name == "grbl":  # gc_execute_line: '%' is no word letter
                return self._fail(line, "syntax", _("'%' is not a G-code word"), 1)
            return BlockResult(True)  # tape framing: never sent to GRBL, read by Fanuc-style controls
        if special == "$" and self.firmware and self.dialect.name == "grbl":
            # Only a startup line ($N0=$H) reaches gc_execute_line with a '$': no word letter.
            return self._fail(line, "syntax", _("'$' is not a G-code word"), 1)
        if special == "$":
            return self._fail(
                line, "unsupported",
                _("$ commands ($H, $X, $J=, settings) are controller commands, not program blocks: GRBL would run "
                  "them mid-program, so labbridge refuses them; run them from the machine's controls"), None)
        if self.dialect.name == "grbl":
            return self._fail(line, "unsupported", _("#parameters and [expressions] are not supported by GRBL 1.1: "
                                                     "write plain numbers"), 1)
        return self._fail(line, "unsupported", _("#parameters and [expressions] (macro B) are not simulated by "
                                                 "labbridge: write plain numbers"), None)

    # ---- check, then commit -------------------------------------------------------------------

    def _check_and_run(self, words: BlockWords) -> BlockResult:
        """Check the block against a copy of the modal state in the controller's order; commit if valid."""
        plan = Plan(words, self.modal, self.modal.copy(), nonmodal=words.gcodes.get(D.NONMODAL),
                    axis_command=words.axis_command)
        read_block_numbers(self, plan)
        if self.dialect.fanuc:
            read_dwell(self, plan)  # before the axis words: X (or U) may be the dwell time
        read_axis_words(self, plan)
        apply_modes(self, plan)
        if self.dialect.fanuc:
            self._decimal_warnings(plan)
        apply_nonmodal(self, plan)
        check_motion(self, plan)
        self._unused_words(plan)
        policy_checks(self, plan)
        return self._commit(plan)

    def _unused_words(self, plan: Plan) -> None:
        """GRBL error 36: a word no command of this block consumed."""
        leftover = [k for k in plan.words.values if k not in plan.used and k not in "XYZUW"]
        if leftover:
            letters = " ".join(leftover)
            raise BlockError("unused-word", ngettext(
                "{letters}: no command in this block uses this word; remove it or add the command it belongs to",
                "{letters}: no command in this block uses these words; remove it or add the command it belongs to",
                len(leftover)).format(letters=letters), 36)

    def _commit(self, plan: Plan) -> BlockResult:
        """The block is valid: change the state and produce its motions."""
        new = plan.new
        self.modal = new
        self.tlo = plan.tlo
        if plan.wcs_values is not None:
            self.wcs[plan.wcs_values[0]] = plan.wcs_values[1]
        if plan.g92 is not None:
            self.g92 = plan.g92
        elif plan.nonmodal == NonModal.CLEAR_SHIFT:
            self.g92 = [0.0, 0.0, 0.0]
        pos = self.position
        if plan.store_home == NonModal.SET_PREDEFINED:
            self.g28 = list(pos)
        elif plan.store_home == NonModal.SET_PREDEFINED_2:
            self.g30 = list(pos)
        motions: list[Motion] = []
        if plan.dwell_seconds is not None:
            here = (pos[0], pos[1], pos[2])
            motions.append(Motion("dwell", plan.line, here, here, seconds=plan.dwell_seconds))
        if plan.home_target is not None:
            if plan.target is not None:
                motions.append(Motion("traverse", plan.line, tuple(pos), tuple(plan.target)))  # type: ignore[arg-type]
                pos = plan.target
            motions.append(Motion("traverse", plan.line, tuple(pos), tuple(plan.home_target)))  # type: ignore[arg-type]
            self.position = plan.home_target
        elif plan.axis_command == "motion" and plan.target is not None:
            emit_motion(self, plan, motions)
        result = BlockResult(True, plan.diags, motions)
        result.spindle_on = new.spindle in (Spindle.CW, Spindle.CCW)
        result.tool_change = plan.tool_change
        result.sync = self._syncs(plan)
        stop = plan.words.mcodes.get(D.M_STOP)
        if stop == 0 or (stop == 1 and self.dialect.fanuc):  # GRBL ignores M1 (optional stop)
            result.stop = True
        elif stop in (2, 30):
            result.program_end = True
            self._program_end()
        return result

    @staticmethod
    def _syncs(plan: Plan) -> bool:
        """Whether the controller lets every queued motion finish before this block acts (gcode.c: spindle_sync,
        coolant_sync, mc_dwell, EEPROM writes and probing wait for the planner to empty; M0 and program end
        wait after the block's own motion, see ``stop`` and ``program_end``)."""
        state, new = plan.state, plan.new
        spindle_running = state.spindle != Spindle.OFF
        return (
            new.spindle != state.spindle
            or (spindle_running and (new.rpm != state.rpm or new.css_speed != state.css_speed))
            or (new.flood, new.mist) != (state.flood, state.mist)
            or plan.dwell_seconds is not None
            or plan.nonmodal in (NonModal.SET_OFFSETS, NonModal.SET_PREDEFINED, NonModal.SET_PREDEFINED_2)
            or (plan.axis_command == "motion" and new.motion in PROBES)
        )

    def _program_end(self) -> None:
        """M2/M30 resets a subset of modes (GRBL and LinuxCNC agree): G1 G17 G90 G94 G54 M5 M9."""
        m = self.modal
        power_on = Modal.power_on(self.lathe)
        m.motion = MotionMode.LINEAR
        m.plane = power_on.plane
        m.distance = power_on.distance
        m.feed_mode = power_on.feed_mode
        m.wcs = 0
        m.spindle = Spindle.OFF
        m.flood = m.mist = False
        m.cycle = CycleState()

    def no_feed_message(self, motion: int) -> str:
        """What to tell a student whose feed move has no feed rate."""
        feed_mode = self.modal.feed_mode
        if feed_mode == FeedMode.PER_REV or (self.lathe and feed_mode != FeedMode.PER_MINUTE):
            return _("{gcode} needs a feed rate: add F0.1 (mm per revolution) to this line or an earlier one").format(
                gcode=gname(motion))
        suggestion = fmt(min(200.0, self.machine.max_feed))
        return _("{gcode} needs a feed rate: add F{feed} to this line or an earlier one").format(
            gcode=gname(motion), feed=suggestion)

    def _decimal_warnings(self, plan: Plan) -> None:
        """Fanuc-style controls read a distance without a point in thousandths of a mm (K repeats a cycle:
        it is a count, while Q, the peck depth, is a distance)."""
        texts = plan.words.texts
        letters = "XYZUWIJKR"
        if plan.new.motion in CYCLES and plan.axis_command == "motion":
            letters = "XYZUWRQ"
        for letter in letters:
            t = texts.get(letter)
            if t is not None and "." not in t and t.lstrip("+-") not in ("0",):
                plan.diags.append(Diagnostic(
                    plan.line, "warning", "syntax",
                    _("{word} has no decimal point: many Fanuc-style controls read it as {word} thousandths of a mm; "
                      "write {word}. to mean millimetres").format(word=letter + t)))
                return

    # -- feeds and speeds ------------------------------------------------------------------

    def feed_rate(self, start: Vec, end: Vec, length: float | None = None) -> float:
        """Effective feed in mm/min for a feed move under the current feed mode."""
        m = self.modal
        if m.feed_mode == FeedMode.PER_MINUTE:
            return m.feed
        if length is None:
            length = math.dist(start, end)
        if m.feed_mode == FeedMode.INVERSE_TIME:
            return length * m.feed  # F is 1/minutes: the move takes 1/F minutes
        return m.feed * self.spindle_rpm_at(end)

    def spindle_rpm_at(self, where: Vec) -> float:
        """Spindle speed at a point: S, or under G96 the surface speed over the diameter, clamped by G50."""
        m = self.modal
        if m.spindle == Spindle.OFF:
            return 0.0
        if not m.css:
            return m.rpm
        diameter = abs(where[0]) * 2.0  # X is a radius from the spindle axis (machine X 0)
        clamp = m.clamp if m.clamp is not None else self.machine.spindle.max_rpm
        if diameter < 1e-6:
            return clamp
        return min(clamp, 1000.0 * m.css_speed / (math.pi * diameter))

