"""The simulated GRBL's `$` system commands (system.c), jogging and homing.

Mixed into :class:`labbridge.sim.grbl.firmware.GrblFirmware`, which owns
the state these methods read and change; kept apart so each module stays small.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from labbridge.sim.grbl.jog import parse_jog
from labbridge.safety.lexer import grbl_read_float
from labbridge.sim.grbl.settings import format_setting, print_float

Jog = tuple[tuple[float, float, float], float]  # target (mm, machine) and feed (mm/min)

VERSION = "1.1h"
BUILD = "20190830"
HELP = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"
_READ_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")  # nuts_bolts.c read_float: one digit at least
STEP = None  # what a line task yields while it waits for time to pass (planner room, motion, EEPROM)


def coord_text(value: float, inches: bool = False) -> str:
    """printFloat_CoordValue: mm with 3 decimals, or inches with 4 when $13=1."""
    return print_float(value / 25.4, 4) if inches else print_float(value, 3)


def rate_text(mm_per_min: float, inches: bool = False) -> str:
    """printFloat_RateValue: mm/min with 0 decimals, or in/min with 1 when $13=1."""
    return print_float(mm_per_min / 25.4, 1) if inches else print_float(mm_per_min, 0)


def axes_text(values: Any, inches: bool = False) -> str:
    """report_util_axis_values."""
    return ",".join(coord_text(v, inches) for v in values)


def outside_travel(target: tuple[float, ...], travel: tuple[float, ...]) -> bool:
    """system_check_travel_limits: machine space is [-max_travel, 0] on every axis."""
    return any(p > 1e-6 or p < -t - 1e-6 for p, t in zip(target, travel))


class SystemCommands:
    """``$`` commands, jog parsing, homing, startup lines and ``$#`` (see GrblFirmware for the state)."""

    eeprom: Any
    interp: Any
    stepper: Any
    options: Any
    pins: set[str]
    state: str
    homing: tuple[float, str] | None
    homed: bool
    sleeping: bool
    wco_counter: int
    probe: Any
    t: float

    def _system(self, line: str) -> Generator[object, None, None]:
        """system_execute_line: route a ``$`` line to its command; each command answers ``ok``/``error:N``."""
        cmd = line[1:2]
        if cmd == "":
            handler = self._sys_help
        elif cmd == "J":
            handler = self._sys_jog
        elif cmd in "$GCX":  # allowed in any state; each checks its own
            handler = self._sys_view_or_mode
        elif self.state not in ("Idle", "Alarm"):
            return self._status(8)
        else:
            handler = {"#": self._sys_parameters, "H": self._sys_home, "S": self._sys_sleep,
                       "I": self._sys_build_info, "R": self._sys_restore}.get(cmd, self._sys_store)
        steps = handler(line)
        if steps is not None:  # commands that wait (planner room, homing, EEPROM) are generators
            yield from steps

    def _sys_help(self, line: str) -> None:
        self._emit(HELP)
        self._emit("ok")

    def _sys_jog(self, line: str) -> Generator[object, None, None]:
        """``$J=line``: queue a jog block when the planner has room."""
        if self.state not in ("Idle", "Jog"):
            return self._status(8)
        if line[2:3] != "=":
            return self._status(3)
        code, jog = self._jog(line[3:])
        if code == 0 and jog is not None:
            target, feed = jog
            while self.stepper.free <= 0:
                yield STEP
            self.stepper.push_line(target, feed, jog=True)
            self.interp.set_position(target)
            if self.state == "Idle":
                self.state = "Jog"
        return self._status(code)

    def _sys_view_or_mode(self, line: str) -> None:
        """``$$`` settings, ``$G`` parser state, ``$C`` check mode on/off, ``$X`` unlock."""
        state, cmd = self.state, line[1:2]
        if len(line) != 2:
            return self._status(3)
        if cmd == "$":
            if state in ("Run", "Hold"):
                return self._status(8)
            for number, value in sorted(self.eeprom.settings.items()):
                self._emit(format_setting(number, value))
        elif cmd == "G":
            self._emit(f"[GC:{self._gc_words()}]")
        elif cmd == "C":
            if state == "Check":
                self._msg("Disabled")
                self._emit("ok")
                self.state = "Idle"
                self._reinit()
                return None
            if state != "Idle":
                return self._status(8)
            self.state = "Check"
            self._msg("Enabled")
        elif cmd == "X" and state == "Alarm":
            if "D" in self.pins:
                return self._status(13)
            self._msg("Caution: Unlocked")
            self.state = "Idle"
        return self._status(0)

    def _inches(self) -> bool:
        """$13: report positions and rates in inches."""
        return bool(self.eeprom.settings[13])

    def _gc_words(self) -> str:
        """report_gcode_modes: the parser state, F and S with printFloat's 0 decimals (F12.5 is F13)."""
        words = self.interp.modal_words().split()[:-2]
        modal = self.interp.modal
        return " ".join([*words, "F" + rate_text(modal.feed, self._inches()), "S" + print_float(modal.rpm, 0)])

    def _sys_parameters(self, line: str) -> None:
        """``$#``: offsets, G28/G30, G92, TLO, last probe."""
        if len(line) != 2:
            return self._status(3)
        self._report_parameters()
        return self._status(0)

    def _sys_home(self, line: str) -> Generator[object, None, None]:
        """``$H``: the homing cycle; answered once it ends (startup lines run after a good one)."""
        if not self.eeprom.settings[22]:
            return self._status(5)
        if "D" in self.pins:
            return self._status(13)
        if len(line) != 2:
            return self._status(3)
        self._start_homing()
        while self.homing is not None:
            yield STEP
        if self.state == "Alarm":  # the cycle failed: GRBL answers, then resets itself
            self._emit("ok")
            self._reinit()
            return None
        if self.state == "Idle":
            self._run_startup_lines()
        return self._status(0)

    def _sys_sleep(self, line: str) -> None:
        """``$SLP``: sleep until reset."""
        if line != "$SLP":
            return self._status(3)
        self._status(0)  # the line answers first; the suspend loop then reports sleep mode
        self._msg("Sleeping")
        self.sleeping = True
        self.state = "Sleep"
        self.stepper.flush()
        return None

    def _sys_build_info(self, line: str) -> Generator[object, None, None]:
        """``$I`` reports version and options; ``$I=text`` stores the build info line in EEPROM."""
        if len(line) == 2:
            self._emit(f"[VER:{VERSION}.{BUILD}:{self.eeprom.build_info}]")
            self._emit(f"[OPT:V,{self.options.planner_blocks - 1},{self.options.rx_buffer}]")
            return self._status(0)
        if line[2] != "=":
            return self._status(3)
        self.eeprom.build_info = line[3:]
        self._eeprom_write("line")
        yield STEP
        return self._status(0)

    def _sys_restore(self, line: str) -> Generator[object, None, None]:
        """``$RST=$``, ``$RST=#``, ``$RST=*``: restore EEPROM defaults, then reset."""
        if not (line.startswith("$RST=") and len(line) == 6 and line[5] in "$#*"):
            return self._status(3)
        self.eeprom.restore(line[5])
        self._eeprom_write("settings")
        yield STEP
        self._msg("Restoring defaults")
        self._emit("ok")
        self.soft_reset()

    def _sys_store(self, line: str) -> Generator[object, None, None]:
        """``$N`` lists the startup lines; ``$Nx=line`` stores one (checked as G-code), ``$x=value`` a setting."""
        startup = line[1:2] == "N"
        if startup and len(line) == 2:
            for i, text in enumerate(self.eeprom.startup):
                self._emit(f"$N{i}={text}")
            return self._status(0)
        if startup and self.state != "Idle":
            return self._status(8)
        m = _READ_FLOAT.match(line, 2 if startup else 1)
        if m is None:
            return self._status(2)
        number, rest = grbl_read_float(m.group()), line[m.end():]
        if not rest.startswith("="):
            return self._status(3)
        rest = rest[1:]
        if startup:
            code = yield from self._gcode(rest, startup=True)
            if code:
                return self._status(code)
            index = int(number)
            if 0 <= index < len(self.eeprom.startup):
                self.eeprom.startup[index] = rest
                self._eeprom_write("line")
                yield STEP
            return self._status(0)
        v = _READ_FLOAT.match(rest)  # system_execute_line: read_float, then nothing may follow
        if v is None:
            return self._status(2)
        value = grbl_read_float(v.group())
        if v.end() != len(rest) or number > 255:
            return self._status(3)
        code = self.eeprom.store(int(number), value)  # (uint8_t)parameter: $100.5 is $100
        if code == 0 and int(number) == 13:
            self.wco_counter = 0  # settings.c: $13 calls system_flag_wco_change()
        if code == 0:
            self._eeprom_write("settings")
            yield STEP
        return self._status(code)

    def _jog(self, text: str) -> tuple[int, Jog | None]:
        """$J=: GRBL's jog rules (gc_execute_line with the jog flag, jog_execute): (status code, jog to queue)."""
        code, jog = parse_jog(self.interp, text)
        if jog is not None and self.eeprom.settings[20] and outside_travel(jog[0], self.eeprom.max_travel()):
            return 15, None
        return code, jog

    def _start_homing(self) -> None:
        """Homing: Z, then X and Y; each cycle searches at $25, then pulls off, locates and pulls off again
        at $24 (limits.c). GRBL answers nothing, not even ``?``, until it is done."""
        s = self.eeprom.settings
        seek, locate, pulloff = s[25] / 60.0, s[24] / 60.0, s[27]
        pos = self.stepper.position
        travel = self.eeprom.max_travel()
        searches = []
        for i in range(3):
            towards_min = int(s[23]) >> i & 1
            if self.homed:
                d = (pos[i] + travel[i]) if towards_min else -pos[i]
            else:
                d = 0.1 * travel[i]  # position unknown: assume the switch is near, as after a power cycle
            searches.append(min(abs(d), 1.5 * travel[i]))
        per_cycle = 3 * pulloff / locate + 2 * s[26] / 1000.0
        duration = searches[2] / seek + max(searches[0], searches[1]) / seek + 2 * per_cycle
        self.homing = (self.t + duration, "all")
        self.state = "Home"

    def _finish_homing(self) -> None:
        s = self.eeprom.settings
        pulloff = s[27]
        travel = self.eeprom.max_travel()
        position = []
        for i in range(3):
            towards_min = int(s[23]) >> i & 1
            position.append(-travel[i] + pulloff if towards_min else -pulloff)
        self.stepper.position = position
        self.interp.set_position(tuple(position))
        self.homing = None
        self.homed = True
        self.state = "Idle"

    def _run_startup_lines(self) -> None:
        for text in self.eeprom.startup:
            if not text:
                continue
            gen = self._gcode(text, startup=True)
            code = 0
            try:
                for _ in range(100):  # startup lines are modal settings; a waiting one is abandoned
                    next(gen)
                gen.close()
            except StopIteration as stop:
                code = stop.value or 0
            self._emit(f">{text}:" + ("ok" if code == 0 else f"error:{code}"))

    def _report_parameters(self) -> None:
        interp = self.interp
        for code, values in interp.work_offsets.items():
            self._emit(f"[{code}:{axes_text(values, self._inches())}]")
        self._emit(f"[G28:{axes_text(self.eeprom.g28, self._inches())}]")
        self._emit(f"[G30:{axes_text(self.eeprom.g30, self._inches())}]")
        self._emit(f"[G92:{axes_text(interp.g92, self._inches())}]")
        self._emit(f"[TLO:{coord_text(interp.tlo, self._inches())}]")
        pos, ok = self.probe
        self._emit(f"[PRB:{axes_text(pos, self._inches())}:{1 if ok else 0}]")
