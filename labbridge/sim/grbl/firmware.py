"""A simulated GRBL 1.1h controller, driven by bytes and a clock (no I/O here).

Mirrors the firmware where a sender can notice: the serial interrupt (realtime
bytes acted on at once, a 128-byte RX buffer that silently drops what does not
fit, nothing received while EEPROM is written), the main loop's line assembly and
``$`` commands (system.c), the state machine (protocol.c), the status report
(report.c) and a 16-block planner. G-code itself is parsed by labbridge's safety
interpreter, the one the checker uses: a block it rejects with ``grbl_error`` is
answered ``error:N``, as GRBL would. The serial interrupt and realtime commands
live in :mod:`~labbridge.sim.grbl.realtime`, the ``$`` commands, jogging and homing
in :mod:`~labbridge.sim.grbl.system`.

Time: every duration inside (motion, dwell, homing, EEPROM writes) is in simulated
seconds; the caller decides how simulated time relates to the wall clock.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from labbridge.config import Machine
from labbridge.protocols.grbl import LINE_MAX, writes_eeprom
from labbridge.safety.planner import Limits, PlanBlock, dwell_seconds
from labbridge.sim.grbl.realtime import RealtimeCommands
from labbridge.sim.grbl.motion import Stepper, arc_points
from labbridge.sim.grbl.settings import EEPROM_BYTES, EEPROM_MS_PER_BYTE, Eeprom, print_float
from labbridge.sim.grbl.system import STEP as _STEP
from labbridge.sim.grbl.system import VERSION, SystemCommands, axes_text, outside_travel, rate_text
from labbridge.safety import Interpreter
from labbridge.safety.modal import gname

BANNER = f"\r\nGrbl {VERSION} ['$' for help]\r\n"
TX_BUFFER = 104  # GRBL's serial transmit buffer; a full one stalls the main loop
WCO_REFRESH = (30, 10)  # status reports between WCO fields: busy, idle
OVR_REFRESH = (20, 10)
BUSY_STATES = {"Run", "Hold", "Jog", "Home", "Door"}



@dataclass
class FirmwareOptions:
    rx_buffer: int = 128
    planner_blocks: int = 16  # ring size; GRBL keeps one slot free, so 15 usable (Bf:15)
    line_seconds: float = 0.0  # simulated CPU time per line (a real AVR needs ~2-3 ms)
    eeprom_ms_per_byte: float = EEPROM_MS_PER_BYTE


class GrblFirmware(RealtimeCommands, SystemCommands):
    """Feed it received bytes with :meth:`receive` and advance it with :meth:`step`; read :attr:`out`."""

    def __init__(self, machine: Machine, eeprom: Eeprom | None = None, options: FirmwareOptions | None = None) -> None:
        # The interpreter must behave like the controller: no lab policy, GRBL's own line limit.
        self.machine = machine.model_copy(update={"forbidden_codes": [], "line_buffer": LINE_MAX})
        self.eeprom = eeprom or Eeprom()
        self.options = options or FirmwareOptions()
        self.out = bytearray()
        self.t = 0.0
        self.stepper = Stepper(Limits.from_settings(self.eeprom.settings), self.options.planner_blocks - 1)
        self.pins: set[str] = set()
        self.homed = False
        self.probe: tuple[Vec3, bool] = ((0.0, 0.0, 0.0), False)
        self.tx_pending = 0  # bytes the transport has not yet put on the wire (GRBL's TX buffer)
        self.wake_at: float | None = None  # firmware time at which a waiting task wants to run again
        self.power_cycle()

    # ------------------------------------------------------------------ power, reset

    def power_cycle(self) -> None:
        """Power-up (or an Arduino reset when the port opens): position lost, homing lock if $22."""
        self.stepper.position = [0.0, 0.0, 0.0]
        self.homed = False
        self.state = "Alarm" if self.eeprom.settings[22] else "Idle"
        self._reinit()

    def _reinit(self) -> None:
        """What main() does after a reset: buffers flushed, parser re-initialised, banner."""
        self.rx = bytearray()
        self.fifo: list[int] = []
        self.line_chars: list[str] = []
        self.line_flags = {"overflow": False, "paren": False, "semi": False}
        self.task: Generator[object, None, None] | None = None
        self.task_blocking = False
        self.gcode_running = False
        self.stepper.flush()
        self.stepper.feed_override = self.stepper.rapid_override = 100
        self.spindle_override = 100
        self.spindle_stop = False
        self.spindle = (5, 0.0)  # M3/M4/M5, rpm programmed
        self.coolant = (False, False)  # flood, mist
        self.hold_complete = False
        self.hold_motion = False  # the hold stopped a motion (GRBL's STEP_CONTROL_EXECUTE_HOLD)
        self.jog_cancel = False
        self.door_open_latched = False
        self.restore_until: float | None = None
        self.critical = False
        self.pending_ok = False
        self.sleeping = False
        self.eeprom_busy_until = 0.0
        self.homing: tuple[float, str] | None = None
        self.status_requested = False
        self.wco_counter = 0
        self.ovr_counter = 0
        self.interp = self._new_interpreter()
        self._emit_raw(BANNER)
        if self.state == "Alarm":
            self._msg("'$H'|'$X' to unlock")
        else:
            self.state = "Idle"
            self._run_startup_lines()

    def _new_interpreter(self) -> Interpreter:
        e = self.eeprom
        interp = Interpreter(self.machine, work_offsets=dict(e.offsets), start=tuple(self.stepper.position),
                             firmware=True)
        interp.g28 = list(e.g28)
        interp.g30 = list(e.g30)
        return interp

    def soft_reset(self) -> None:
        """0x18: stop dead; ALARM:3 if it was moving (6 while homing); state machine restarts."""
        moving = self.state in ("Run", "Jog", "Home") or (self.state in ("Hold", "Door") and self.hold_motion)
        if self.critical:
            if self.pending_ok:
                self._emit("ok")  # the line that hit the limit finishes after the reset
            self.state = "Alarm"
        elif self.sleeping:
            self.state = "Alarm"
        elif moving:
            self._emit("ALARM:6" if self.state == "Home" else "ALARM:3")
            self.state = "Alarm"
        elif self.state != "Alarm":
            self.state = "Idle"
        if self.task is not None and self.gcode_running and not self.critical:
            # The block being executed returns from its wait on sys.abort and gc_execute_line still answers
            # STATUS_OK: its ok comes after the alarm, before the banner.
            self._emit("ok")
        if self.homing is not None:
            self.homing = None
        self._reinit()

    # ------------------------------------------------------------------ main loop

    def step(self, t: float) -> None:
        """Advance to simulated time ``t``: motion, realtime flags, then as many lines as can run."""
        dt = max(0.0, t - self.t)
        self.t = t
        self.wake_at = None
        if self.critical:
            return
        if t < self.eeprom_busy_until:
            self.wake_at = self.eeprom_busy_until
            return
        if self.fifo:
            pending, self.fifo = self.fifo, []
            for b in pending:
                self._isr(b)
        if self.homing is not None:
            if t < self.homing[0]:
                self.wake_at = self.homing[0]
                return  # GRBL's homing loop services nothing else
            self._finish_homing()
        self._advance(dt)
        if self.status_requested:
            self.status_requested = False
            self._emit(self.status_report())
        if self.sleeping or self.suspended:
            return  # protocol_exec_rt_suspend loops until resumed: no line is read or finished meanwhile
        budget = 200  # lines per step, so a flood of empty lines cannot starve the caller
        while budget > 0 and self.tx_pending + len(self.out) <= TX_BUFFER:
            if self.task is not None:
                self.task_blocking = False
                try:
                    next(self.task)
                except StopIteration:
                    self.task = None
                else:
                    self.task_blocking = True
                    break
                if self.critical or self.t < self.eeprom_busy_until:
                    return
            line = self._assemble()
            if line is None:
                break
            budget -= 1
            self.task = self._execute(line)
        self._auto_cycle_start()

    def _assemble(self) -> tuple[str, bool] | None:
        """Pull characters from the RX buffer as protocol.c does; a finished line or None."""
        flags = self.line_flags
        while self.rx:
            c = chr(self.rx.pop(0))
            if c in "\r\n":
                line = "".join(self.line_chars)
                overflow = flags["overflow"]
                self.line_chars = []
                self.line_flags = {"overflow": False, "paren": False, "semi": False}
                return line, overflow
            if flags["overflow"] or flags["paren"] or flags["semi"]:
                if c == ")" and flags["paren"]:
                    flags["paren"] = False
                continue
            if c <= " " or c == "/":
                continue
            if c == "(":
                flags["paren"] = True
            elif c == ";":
                flags["semi"] = True
            elif len(self.line_chars) >= LINE_MAX:
                flags["overflow"] = True
            else:
                self.line_chars.append(c.upper() if "a" <= c <= "z" else c)
        return None

    def _auto_cycle_start(self) -> None:
        """GRBL starts queued motion when the planner is full or nothing more is waiting to be parsed."""
        st = self.stepper
        if self.state != "Idle" or not st.blocks or st.holding:
            return
        line_waiting = b"\n" in self.rx or b"\r" in self.rx
        if self.task_blocking or st.free == 0 or not line_waiting:
            self.state = "Jog" if st.blocks[0].jog else "Run"

    def _advance(self, dt: float) -> None:
        st = self.stepper
        if self.state in ("Run", "Jog", "Hold", "Door"):
            st.advance(dt)
        for block in st.finished:
            if block.probe:
                self._probe_done(block)
        st.finished.clear()
        if self.jog_cancel and st.speed == 0:
            st.flush()
            self.jog_cancel = False
            self.interp.set_position(tuple(st.position))
            # protocol.c EXEC_CYCLE_STOP: a door opened during the jog leaves the machine in the door state.
            if self.state == "Door" or self.door_open_latched:
                self.state, self.hold_complete, self.hold_motion = "Door", True, False
            else:
                self.state = "Idle"
            self.door_open_latched = False
            return
        # A completed hold clears GRBL's STEP_CONTROL_EXECUTE_HOLD (protocol.c, EXEC_CYCLE_STOP): a reset at
        # Hold:0 stops nothing that moves, so it raises no ALARM:3 and keeps the position.
        if self.state == "Hold" and st.speed == 0:
            self.hold_complete = True
            self.hold_motion = False
        if self.state == "Door":
            if st.speed == 0:
                self.hold_complete = True
                self.hold_motion = False
            if self.restore_until is not None and self.t >= self.restore_until:
                self.restore_until = None
                self._resume()
        if self.state in ("Run", "Jog") and not st.blocks:
            self.state = "Idle"
            st.holding = False

    # ------------------------------------------------------------------ one line

    def _execute(self, item: tuple[str, bool]) -> Generator[object, None, None]:
        line, overflow = item
        if self.options.line_seconds:
            yield from self._sleep(self.t + self.options.line_seconds)
        if overflow:
            self._status(11)
        elif not line:
            self._emit("ok")
        elif line[0] == "$":
            yield from self._system(line)
        elif self.state in ("Alarm", "Jog"):
            self._status(9)
        else:
            self.gcode_running = True
            yield from self._gcode(line)
            self.gcode_running = False

    @property
    def suspended(self) -> bool:
        """sys.suspend is set: a completed hold, any door state, a jog being cancelled. GRBL's main loop then
        stays in protocol_exec_rt_suspend (only realtime commands and status reports are served)."""
        return (self.state == "Hold" and self.hold_complete) or self.state == "Door" or self.jog_cancel

    def _sleep(self, until: float) -> Generator[object, None, None]:
        """Wait (in firmware time) until ``until``, telling the transport when to step again."""
        while self.t < until:
            self.wake_at = until if self.wake_at is None else min(self.wake_at, until)
            yield _STEP

    def _status(self, code: int) -> None:
        self._emit("ok" if code == 0 else f"error:{code}")

    def _gcode(self, line: str, startup: bool = False) -> Generator[object, None, int]:
        interp = self.interp
        before_wco = self.wco()
        result = interp.execute(line, 0)
        for d in result.diagnostics:
            if d.grbl_error is not None:
                if not startup:
                    self._status(d.grbl_error)
                return d.grbl_error
        if not result.ok:
            # Refused without a GRBL code (e.g. G43 H with no tool table): GRBL 1.1 has no such command either.
            if not startup:
                self._status(20)
            return 20
        check = self.state == "Check"
        if result.sync:  # spindle, coolant, dwell, EEPROM write, probe: the planner empties first
            while self.stepper.busy and not check:
                yield _STEP
        if self.wco() != before_wco:
            self.wco_counter = 0
        if writes_eeprom(line) and self._save_offsets():
            yield _STEP  # the answer comes only after the EEPROM write
        if not check:
            self._apply_spindle_coolant()
        soft = bool(self.eeprom.settings[20])
        travel = self.eeprom.max_travel()
        for motion in result.motions:
            if motion.kind == "dwell":
                if not check:
                    yield from self._sleep(self.t + dwell_seconds(motion.seconds))
                continue
            rate, rapid, probe = self._rate(motion)
            if probe and not check and self._probe_triggered(probe):
                # mc_probe_cycle: a probe already in the state it looks for raises ALARM:4 before moving; the
                # block still answers ok and the parser keeps the machine's position.
                self.state = "Alarm"
                self._emit("ALARM:4")
                self.interp.set_position(tuple(self.stepper.position))
                break
            for target in self._targets(motion):
                if soft and outside_travel(target, travel):
                    yield from self._soft_limit()
                    return 0
                if check:
                    continue
                while self.stepper.free <= 0:
                    yield _STEP
                self.stepper.limits = Limits.from_settings(self.eeprom.settings)
                self.stepper.push_line(target, rate, rapid=rapid, line=motion.line, probe=probe)
            if probe and not check:
                while self.stepper.busy:
                    yield _STEP
        if (result.stop or result.program_end) and not check:
            while self.stepper.busy:  # M0, M2, M30 wait for the machine to stop (gcode.c [21])
                yield _STEP
        if result.stop and not check:
            # gcode.c [21]: M0 is a feed hold executed inside gc_execute_line; the block answers ok only once
            # a cycle start ends the suspend.
            self.state = "Hold"
            self.hold_complete = True
            self.stepper.holding = True
            while self.state == "Hold":
                yield _STEP
        if result.program_end:
            if not check:
                self.spindle = (5, 0.0)
                self.coolant = (False, False)
                self.stepper.feed_override = self.stepper.rapid_override = 100
                self.spindle_override = 100
                self.wco_counter = 0
            self._msg("Pgm End")
        if not startup:
            self._emit("ok")
        return 0

    def _targets(self, motion) -> list[Vec3]:  # noqa: ANN001 - safety.Motion
        """The planner moves of a motion: mc_arc's chords for an arc, else its end point."""
        if motion.kind == "arc":
            return arc_points(motion.start, motion.end, motion.center, motion.plane, motion.sweep, motion.radius,
                              self.eeprom.settings[12])
        return [motion.end]

    def _rate(self, motion) -> tuple[float, bool, str | None]:  # noqa: ANN001 - safety.Motion
        """(feed in mm/min, rapid, probe command) for the planner."""
        probe = gname(self.interp.modal.motion) if motion.kind == "probe" else None
        return motion.feed, motion.kind == "traverse", probe

    def _soft_limit(self) -> Generator[object, None, None]:
        """limits_soft_check: hold if moving, then reset and the critical ALARM:2 loop until 0x18."""
        if self.state == "Run":
            self._feed_hold()
            while self.stepper.speed > 0:
                yield _STEP
        self.stepper.flush()
        self.state = "Alarm"
        self._emit("ALARM:2")
        self._msg("Reset to continue")
        self.critical = True
        self.pending_ok = True
        while True:  # released only by soft_reset(), which drops this task
            yield _STEP

    def _probe_triggered(self, probe: str) -> bool:
        """probe_get_state(): the pin, inverted for G38.4/G38.5 (probing away from contact)."""
        return ("P" in self.pins) != (probe in ("G38.4", "G38.5"))

    def _probe_done(self, block: PlanBlock) -> None:
        touched = self._probe_triggered(block.probe or "G38.2")
        self.probe = (tuple(self.stepper.position), touched)  # type: ignore[assignment]
        self.stepper.flush()
        self.interp.set_position(tuple(self.stepper.position))
        if not touched and block.probe in ("G38.2", "G38.4"):
            self.state = "Alarm"
            self._emit("ALARM:5")
        pos, ok = self.probe
        self._emit(f"[PRB:{axes_text(pos, self._inches())}:{1 if ok else 0}]")

    def _apply_spindle_coolant(self) -> None:
        m = self.interp.modal
        spindle = (m.spindle, m.rpm)
        if spindle != self.spindle:
            self.spindle = spindle
            self.ovr_counter = 0
        if (m.flood, m.mist) != self.coolant:
            self.coolant = (m.flood, m.mist)
            self.ovr_counter = 0

    def _save_offsets(self) -> bool:
        e = self.eeprom
        before = (dict(e.offsets), e.g28, e.g30)
        e.offsets = {k: tuple(v) for k, v in self.interp.work_offsets.items()}  # type: ignore[misc]
        e.g28, e.g30 = tuple(self.interp.g28), tuple(self.interp.g30)  # type: ignore[assignment]
        if (e.offsets, e.g28, e.g30) == before:
            return False
        self._eeprom_write("coord")
        return True

    def _eeprom_write(self, kind: str) -> None:
        self.eeprom_busy_until = max(self.eeprom_busy_until, self.t) + (
            EEPROM_BYTES[kind] * self.options.eeprom_ms_per_byte / 1000.0)

    # ------------------------------------------------------------------ reports

    def wco(self) -> tuple[float, float, float]:
        interp = self.interp
        off = interp.wcs[interp.modal.wcs]
        return (off[0] + interp.g92[0], off[1] + interp.g92[1], off[2] + interp.g92[2] + interp.tlo)

    def state_text(self) -> str:
        st = self.state
        if st == "Hold":
            return "Hold:0" if self.hold_complete else "Hold:1"
        if st == "Door":
            if self.restore_until is not None:
                return "Door:3"
            if not self.hold_complete:
                return "Door:2"
            return "Door:1" if "D" in self.pins else "Door:0"
        return st

    def status_report(self) -> str:
        """report_realtime_status() of GRBL 1.1h, field for field."""
        mask = int(self.eeprom.settings[10])
        steps = self.eeprom.steps()
        mpos = tuple(round(p * s) / s for p, s in zip(self.stepper.position, steps))
        wco = self.wco()
        parts = [self.state_text()]
        if mask & 1:
            parts.append(f"MPos:{axes_text(mpos, self._inches())}")
        else:
            parts.append(f"WPos:{axes_text(tuple(p - w for p, w in zip(mpos, wco)), self._inches())}")
        if mask & 2:
            parts.append(f"Bf:{self.stepper.free},{self.options.rx_buffer - len(self.rx)}")
        rpm = print_float(self.spindle_rpm(), 0)
        parts.append(f"FS:{rate_text(self.stepper.speed * 60, self._inches())},{rpm}")
        if self.pins:
            order = "PXYZDRHS"
            parts.append("Pn:" + "".join(c for c in order if c in self.pins))
        busy = self.state in BUSY_STATES
        if self.wco_counter > 0:
            self.wco_counter -= 1
        else:
            self.wco_counter = (WCO_REFRESH[0] if busy else WCO_REFRESH[1]) - 1
            if self.ovr_counter == 0:
                self.ovr_counter = 1
            parts.append(f"WCO:{axes_text(wco, self._inches())}")
        if self.ovr_counter > 0:
            self.ovr_counter -= 1
        else:
            self.ovr_counter = (OVR_REFRESH[0] if busy else OVR_REFRESH[1]) - 1
            st = self.stepper
            parts.append(f"Ov:{st.feed_override},{st.rapid_override},{self.spindle_override}")
            # spindle_get_state() reads the PWM output, which S0 (or a stop) switches off; the door's retract
            # de-energizes coolant too (protocol_exec_rt_suspend).
            acc = ""
            if self.spindle_rpm() > 0:
                acc += "S" if self.spindle[0] == 3 else "C"
            coolant_off = self.state == "Door" and self.hold_complete
            if self.coolant[0] and not coolant_off:
                acc += "F"
            if self.coolant[1] and not coolant_off:
                acc += "M"
            if acc:
                parts.append("A:" + acc)
        return "<" + "|".join(parts) + ">"

    def spindle_rpm(self) -> float:
        direction, rpm = self.spindle
        stopped = self.spindle_stop and self.hold_complete  # the stop override acts once the hold is done
        if direction == 5 or stopped or self.state == "Door" and self.hold_complete:
            return 0.0
        s = self.eeprom.settings
        value = rpm * self.spindle_override / 100.0
        return max(s[31], min(s[30], value)) if value > 0 else 0.0

    # ------------------------------------------------------------------ output

    def _emit(self, line: str) -> None:
        self.out += line.encode("ascii", "replace") + b"\r\n"

    def _emit_raw(self, text: str) -> None:
        self.out += text.encode("ascii")

    def _msg(self, text: str) -> None:
        self._emit(f"[MSG:{text}]")

    def take_output(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data



Vec3 = tuple[float, float, float]
