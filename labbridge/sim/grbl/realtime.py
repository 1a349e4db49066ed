"""The simulated GRBL's serial interrupt and realtime commands (serial.c, protocol.c's realtime execution).

Bytes are acted on as they arrive, whatever the main loop is doing: ``?`` ``!``
``~`` ctrl-x, the extended overrides, the safety door and jog cancel; everything
else goes into the 128-byte RX buffer, which silently drops what does not fit.
Mixed into :class:`labbridge.sim.grbl.firmware.GrblFirmware`, which owns the
state these methods read and change.
"""

from __future__ import annotations

from typing import Any


class RealtimeCommands:
    """The serial ISR and the realtime command handlers (see GrblFirmware for the state)."""

    eeprom: Any
    interp: Any
    stepper: Any
    options: Any
    pins: set[str]
    state: str
    t: float
    rx: bytearray
    fifo: list[int]
    critical: bool
    homing: tuple[float, str] | None
    hold_complete: bool
    hold_motion: bool
    jog_cancel: bool
    door_open_latched: bool
    restore_until: float | None
    eeprom_busy_until: float
    status_requested: bool
    spindle: tuple[int, float]
    spindle_stop: bool
    spindle_override: int
    coolant: tuple[bool, bool]
    ovr_counter: int

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the wire, in order (the caller paces them at the baud rate)."""
        for b in data:
            if self.t < self.eeprom_busy_until:
                # Interrupts are off while EEPROM is written: the UART's 2-byte FIFO keeps the first
                # bytes, the rest are overrun and lost.
                if len(self.fifo) < 2:
                    self.fifo.append(b)
                continue
            self._isr(b)

    def _isr(self, b: int) -> None:
        if b == 0x18:
            self.soft_reset()
        elif b == 0x3F:  # ?
            self.status_requested = True
        elif b == 0x21:  # !
            self._feed_hold()
        elif b == 0x7E:  # ~
            self._cycle_start()
        elif b > 0x7F:
            self._extended(b)
        elif len(self.rx) < self.options.rx_buffer:
            self.rx.append(b)
        # else: RX buffer full, byte silently lost (as on the AVR)

    def _extended(self, b: int) -> None:
        if self.critical:
            return
        st = self.stepper
        if b == 0x84:
            self._door()
        elif b == 0x85:
            if self.state == "Jog":
                self._start_jog_cancel()
        elif 0x90 <= b <= 0x94:
            f = {0x90: 100 - st.feed_override, 0x91: 10, 0x92: -10, 0x93: 1, 0x94: -1}[b]
            st.feed_override = 100 if b == 0x90 else max(10, min(200, st.feed_override + f))
            self.ovr_counter = 0
        elif 0x95 <= b <= 0x97:
            st.rapid_override = {0x95: 100, 0x96: 50, 0x97: 25}[b]
            self.ovr_counter = 0
        elif 0x99 <= b <= 0x9D:
            d = {0x9A: 10, 0x9B: -10, 0x9C: 1, 0x9D: -1}.get(b, 0)
            self.spindle_override = 100 if b == 0x99 else max(10, min(200, self.spindle_override + d))
            self.ovr_counter = 0
        elif b == 0x9E:
            # protocol.c: any Hold initiates the stop (it acts once the hold completes); a second press
            # restores only a stop that is already in effect.
            if self.state == "Hold" and (self.hold_complete or not self.spindle_stop):
                self.spindle_stop = not self.spindle_stop
                self.ovr_counter = 0
        elif b == 0xA0:
            # Flood toggles in Idle, Run, Hold and Jog. 0xA1 (mist) is thrown away by serial.c without ENABLE_M7,
            # which GRBL 1.1h's default build leaves off (M7 is error:20 too).
            if self.state in ("Idle", "Run", "Hold", "Jog"):
                flood, mist = self.coolant
                self.coolant = (not flood, mist)
                self.interp.modal.flood, self.interp.modal.mist = self.coolant
                self.ovr_counter = 0

    def _feed_hold(self) -> None:
        if self.critical or self.state in ("Alarm", "Check", "Sleep", "Door"):
            return
        if self.state == "Jog":
            self._start_jog_cancel()
        elif self.state == "Run":
            self.state = "Hold"
            self.hold_complete = False
            self.hold_motion = True
            self.stepper.holding = True
        elif self.state == "Idle":
            self.state = "Hold"
            self.hold_complete = True
            self.stepper.holding = True

    def _start_jog_cancel(self) -> None:
        self.jog_cancel = True
        self.stepper.holding = True

    def _cycle_start(self) -> None:
        if self.critical:
            return
        if self.state == "Door" and "D" not in self.pins and self.hold_complete and self.restore_until is None:
            wait = (4.0 if self.spindle[0] != 5 else 0.0) + (1.0 if any(self.coolant) else 0.0)
            self.restore_until = self.t + wait  # Door:3 while spindle and coolant come back
            return
        if self.state == "Hold" and self.hold_complete:
            self.spindle_stop = False
            self._resume()
        elif self.state == "Idle" and self.stepper.blocks:
            self._resume()

    def _resume(self) -> None:
        self.stepper.holding = False
        self.hold_complete = False
        self.hold_motion = False
        if self.stepper.blocks:
            self.state = "Jog" if self.stepper.blocks[0].jog else "Run"
        else:
            self.state = "Idle"

    def _door(self) -> None:
        if self.state in ("Alarm", "Check", "Sleep") or self.critical:
            return
        if self.state == "Home":  # homing fails: the door opened during the cycle
            self.homing = None
            self.stepper.flush()
            self._emit("ALARM:7")
            self.state = "Alarm"
            return
        self._msg("Check Door")
        if self.state == "Jog":
            self.door_open_latched = True  # SUSPEND_SAFETY_DOOR_AJAR: the door state follows the jog cancel
            self._start_jog_cancel()
            return
        moving = self.state in ("Run", "Hold") and self.stepper.speed > 0
        self.hold_motion = self.hold_motion or self.state == "Run"
        self.state = "Door"
        self.hold_complete = not moving
        self.stepper.holding = True
        self.restore_until = None

    def set_pin(self, letter: str, active: bool) -> None:
        """Drive an input pin: D (door), P (probe), X/Y/Z limits, H/S/R buttons (shown in Pn:)."""
        if active:
            self.pins.add(letter)
            if letter == "D":
                self._door()
        else:
            self.pins.discard(letter)
