"""A simulated Fanuc-style control: runs blocks through the safety interpreter and reads tape on a pty.

:class:`SimControl` is the machine (position, spindle, status, alarms) and moves at
feed rate, ``time_scale`` times faster than real time. :class:`DncPort` is its
RS-232 tape reader on a pseudo-terminal, speaking the same protocol labbridge's
DNC sender speaks (it reuses :class:`~labbridge.protocols.dnc.TapeReader`).
The lathe adds a Modbus server (``lathe_sim``), the mill an OPC UA server (``mill_sim``).
"""

from __future__ import annotations

import asyncio
import math
import os
import tty
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from labbridge.config import Machine
from labbridge.protocols import dnc as dp
from labbridge.log import get_logger
from labbridge.model import Status
from labbridge.safety.modal import Spindle

AXES = ("X", "Y", "Z")


@dataclass
class _Move:
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    seconds: float
    feed: float
    line: int
    elapsed: float = 0.0


@dataclass
class SimControl:
    """The simulated machine. ``snapshot()`` is what its PLC/OPC UA server publish."""

    machine_id: str
    machine: Machine
    time_scale: float = 1.0
    buffer_bytes: int = 256
    alarm_hold: float = 10.0  # real seconds an alarm stays before the sim resets itself
    status: Status = Status.IDLE
    alarm: int = 0
    alarm_message: str = ""
    program_name: str | None = None
    line_number: int | None = None
    feed_override: int = 100
    spindle_override: int = 100
    door_open: bool = False
    blocks_done: int = 0
    queue: deque[dp.Block] = field(default_factory=deque)
    on_alarm: list[Any] = field(default_factory=list)
    on_reset: list[Any] = field(default_factory=list)  # called with the (code, message) a reset cleared

    def __post_init__(self) -> None:
        from labbridge.safety import Interpreter  # the lead's modal interpreter, shared with the checker

        self.interp = Interpreter(self.machine)
        self.position: tuple[float, float, float] = tuple(self.interp.position)  # type: ignore[assignment]
        self.moves: deque[_Move] = deque()
        self.feed_now = 0.0
        self._alarm_age = 0.0
        self._ending = False
        self.log = get_logger(machine=self.machine_id).bind(source="sim")

    # -- what the PLC / OPC UA server publish
    @property
    def buffered(self) -> int:
        return sum(len(b.text) + 1 for b in self.queue)

    def _display(self, pos: tuple[float, float, float]) -> dict[str, float]:
        out = {}
        for i, axis in enumerate(AXES):
            if axis in self.machine.envelope:
                value = pos[i] * 2 if (axis == "X" and self.machine.is_lathe and self.machine.diameter_mode) else pos[i]
                out[axis] = round(value, 4)
        return out

    def work_display(self) -> dict[str, float]:
        """Work coordinates as the control displays them (lathe X as a diameter)."""
        return self._display(tuple(self.interp.work_position()))  # type: ignore[arg-type]

    def spindle(self) -> tuple[float, str]:
        """Actual speed (G96 surface speed over the current diameter, G50-clamped) and direction."""
        direction = {3: "cw", 4: "ccw"}.get(int(getattr(self.interp.modal, "spindle", 5)), "off")
        if self.status == Status.ALARM or direction == "off":
            return 0.0, "off"
        rpm = float(self.interp.spindle_rpm_at(tuple(self.position))) * self.spindle_override / 100  # type: ignore[arg-type]
        return min(rpm, self.machine.spindle.max_rpm), direction

    def snapshot(self) -> dict[str, Any]:
        rpm, direction = self.spindle()
        values: dict[str, Any] = {
            "state": self.status,
            "alarm": self.alarm,
            "door_open": self.door_open,
            "spindle.rpm": rpm,
            "spindle.direction": direction,
            "spindle.load": (8.0 + 30.0 * (self.feed_now > 0)) if rpm > 0 else 0.0,
            "spindle.rotating": rpm > 0,
            "feed": self.feed_now,
            "overrides.feed": self.feed_override,
            "overrides.spindle": self.spindle_override,
            "program_name": self.program_name or "",
            "line_number": self.line_number or 0,
        }
        for axis, value in self._display(self.position).items():
            values[f"position.machine.{axis}"] = value
        for axis, value in self.work_display().items():
            values[f"position.work.{axis}"] = value
        return values

    # -- operator actions
    def feed_hold(self) -> None:
        if self.status == Status.RUN:
            self.status = Status.HOLD
            self.feed_now = 0.0
            self.log.info("sim_feed_hold")

    def cycle_start(self) -> None:
        if self.status == Status.HOLD:
            self.status = Status.RUN

    def spindle_stop(self) -> None:
        self.feed_hold()
        try:
            self.interp.modal.spindle = Spindle.OFF
        except Exception:
            pass

    def raise_alarm(self, code: int, message: str) -> None:
        self.status = Status.ALARM
        self.alarm, self.alarm_message = code, message
        self.moves.clear()
        self.queue.clear()
        self.feed_now = 0.0
        self._alarm_age = 0.0
        self.log.warning("sim_alarm", code=code, message=message)
        for callback in list(self.on_alarm):
            callback(code, message)

    def reset(self) -> None:
        cleared = (self.alarm, self.alarm_message) if self.alarm else None
        self.status = Status.IDLE
        self.alarm, self.alarm_message = 0, ""
        self.moves.clear()
        self.queue.clear()
        self.feed_now = 0.0
        self._ending = False
        if cleared is not None:
            for callback in list(self.on_reset):
                callback(*cleared)

    # -- running
    def _duration(self, motion: Any) -> float:
        start, end = motion.start, motion.end
        if motion.kind == "dwell":
            return float(motion.seconds)
        if motion.seconds and motion.kind != "traverse":
            return float(motion.seconds)
        if motion.kind == "traverse":
            return max(
                (abs(e - s) / self.machine.rapid(AXES[i]) * 60.0 for i, (s, e) in enumerate(zip(start, end))
                 if AXES[i] in self.machine.envelope),
                default=0.0,
            )
        if motion.kind == "arc" and motion.radius and motion.sweep:
            length = abs(motion.radius * motion.sweep)
        else:
            length = math.dist(start, end)
        feed = (motion.feed or self.machine.max_feed) * self.feed_override / 100
        return length / max(feed, 1e-6) * 60.0

    def _next_block(self) -> None:
        block = self.queue.popleft()
        if block.text.startswith("O") and self.program_name is None:
            self.program_name = block.text.split("(")[0].strip()
        result = self.interp.execute(block.text, block.number)
        if not result.ok:
            errors = [d for d in result.diagnostics if d.severity == "error"] or list(result.diagnostics)
            message = errors[0].message if errors else "program error"
            self.raise_alarm(10, f"block {block.number} {block.text!r}: {message}")
            return
        self.line_number = block.number
        self.blocks_done += 1
        for motion in result.motions:
            self.moves.append(_Move(tuple(motion.start), tuple(motion.end), self._duration(motion),
                                    0.0 if motion.kind in ("traverse", "dwell") else float(motion.feed), block.number))
        if result.program_end or result.stop:
            self._ending = True

    def step(self, real_dt: float) -> None:
        """Advance the simulated machine by ``real_dt`` wall-clock seconds."""
        if self.status == Status.ALARM:
            self._alarm_age += real_dt
            if self.alarm_hold and self._alarm_age >= self.alarm_hold:
                self.reset()
            return
        if self.status == Status.HOLD:
            return
        budget = real_dt * self.time_scale
        while budget > 0 and self.status != Status.ALARM:
            if not self.moves:
                if self.queue:
                    self.status = Status.RUN
                    self._next_block()
                    continue
                if self._ending:
                    self._ending = False
                    self.log.info("sim_program_end", blocks=self.blocks_done)
                self.status = Status.IDLE if self.status != Status.HOLD else self.status
                self.feed_now = 0.0
                return
            move = self.moves[0]
            take = min(budget, move.seconds - move.elapsed)
            move.elapsed += take
            budget -= take
            frac = 1.0 if move.seconds <= 0 else move.elapsed / move.seconds
            self.position = tuple(s + (e - s) * frac for s, e in zip(move.start, move.end))  # type: ignore[assignment]
            self.feed_now = move.feed * self.feed_override / 100
            self.status = Status.RUN
            if move.elapsed >= move.seconds:
                self.position = move.end
                self.moves.popleft()


class DncPort:
    """The control's RS-232 tape reader on a pty; ``path`` is what labbridge opens."""

    def __init__(
        self,
        sim: SimControl,
        *,
        tv_check: bool = False,
        send_dc1: bool = True,
        dc1_repeat: float = 0.5,
        low_water: int | None = None,
    ) -> None:
        self.sim = sim
        self.tv_check = tv_check
        self.send_dc1 = send_dc1
        self.dc1_repeat = dc1_repeat
        self.low_water = low_water if low_water is not None else sim.buffer_bytes // 4
        self.reader = dp.TapeReader(tv_check=tv_check)
        self.paused = False
        self.reading = False  # a tape is being read (first % seen, closing % not yet)
        self.received = bytearray()
        self.sent = bytearray()
        self._idle = 0.0
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        sim.on_alarm.append(self._alarmed)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)

    def write(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
            self.sent += data
        except (BlockingIOError, OSError):
            pass  # nobody reading the slave end: a real control's line would drop it too

    def inject(self, data: bytes) -> None:
        """Send arbitrary bytes to labbridge (noise on the line, in tests)."""
        self.write(data)

    def punch(self, program_text: str, *, end_of_block: str = "LF", leader: int = 4) -> None:
        """Punch a program out to labbridge (DC2, NUL leader, %…%, DC4)."""
        framed = dp.frame_program(program_text.splitlines(), end_of_block=end_of_block, nul_leader=leader)
        self.write(bytes([dp.DC2]) + framed.data + bytes([dp.DC4]))

    def _alarmed(self, code: int, message: str) -> None:
        self.write(bytes([dp.NAK]))
        self.reader = dp.TapeReader(tv_check=self.tv_check)
        self.reading = False
        self.paused = False

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        self.received += data
        self._idle = 0.0
        if self.sim.status == Status.ALARM:
            return  # an alarmed control ignores the tape until reset
        for event in self.reader.receive_data(data):
            if isinstance(event, dp.Block):
                self.reading = True
                self.sim.queue.append(event)
            elif isinstance(event, dp.TapeEnd):
                self.reading = False
                self.reader = dp.TapeReader(tv_check=self.tv_check)
            elif isinstance(event, dp.TapeAlarm):
                self.sim.raise_alarm(int(event.code), event.message)
                return
        if self.reader.in_program:
            self.reading = True
        if not self.paused and self.sim.buffered >= self.sim.buffer_bytes:
            self.paused = True
            self.write(bytes([dp.DC3]))

    def tick(self, real_dt: float) -> None:
        """Resume reading when the buffer drained; repeat DC1 while waiting for a tape."""
        if self.sim.status == Status.ALARM or not self.send_dc1:
            return
        if self.paused:
            if self.sim.buffered <= self.low_water:
                self.paused = False
                self.write(bytes([dp.DC1]))
            return
        self._idle += real_dt
        if self._idle >= self.dc1_repeat and self.sim.buffered <= self.low_water:
            self._idle = 0.0
            self.write(bytes([dp.DC1]))

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
