"""The simulated GRBL's planner and stepper, in simulated time.

Planning is the firmware's own (planner.c, ported once in labbridge.safety.planner
and shared with the gate's run-time estimate). Execution ports stepper.c's segment
generator, st_prep_buffer: each planner block is cut into segments of
DT_SEGMENT (1/ACCELERATION_TICKS_PER_SECOND = 10 ms) along its acceleration,
cruise and deceleration ramps, at most SEGMENT_BUFFER_SIZE - 1 of them prepared
ahead; a block leaves the planner when its last segment is prepared, which is when
the parser may add the next one. Each segment runs for as long as the stepper
timer takes: its whole steps (AMASS-multiplied) at ``cycles_per_tick + 1`` CPU
cycles of 16 MHz each (Timer1 in CTC mode). A feed hold decelerates the prepared
profile to a stop (Hold:1, then Hold:0); overrides replan from the current speed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from labbridge.safety.geometry import arc_path, grbl_arc_segments
from labbridge.safety.planner import Limits, PlanBlock, Planner

Vec = tuple[float, float, float]
F_CPU = 16_000_000
ACCELERATION_TICKS_PER_SECOND = 100
DT_SEGMENT = 1.0 / (ACCELERATION_TICKS_PER_SECOND * 60.0)  # minutes
SEGMENT_BUFFER_SIZE = 6  # the ring; 5 segments prepared ahead
REQ_MM_INCREMENT_SCALAR = 1.25
AMASS_LEVEL1, AMASS_LEVEL2, AMASS_LEVEL3 = F_CPU // 8000, F_CPU // 4000, F_CPU // 2000
RAMP_ACCEL, RAMP_CRUISE, RAMP_DECEL, RAMP_DECEL_OVERRIDE = range(4)
EPS = 1e-9


def arc_points(start: Vec, end: Vec, center: Vec, plane: tuple[int, int, int], sweep: float, radius: float,
               tolerance: float) -> list[Vec]:
    """Segment end points of an arc, as many as GRBL's mc_arc makes for arc tolerance ``$12`` (a NaN arc, which
    GRBL accepts for an R arc whose ends meet in the plane, is taken as no segments: one straight line)."""
    segments = grbl_arc_segments(sweep, radius, tolerance) if math.isfinite(sweep) else 0
    return arc_path(start, end, center, plane, sweep, segments)


@dataclass(slots=True)
class Segment:
    """One prepared step segment: a stretch of a block and how long the stepper timer takes for it."""

    block: PlanBlock
    mm_from: float  # distance left in the block at the segment's start
    mm_to: float  # ... and at its end
    seconds: float
    speed: float  # mm/min at the segment's end (what GRBL reports as FS)
    last: bool  # the block's final segment
    elapsed: float = 0.0


@dataclass
class _Prep:
    """st_prep_t: the state of the block being cut into segments."""

    block: PlanBlock | None = None
    recalculate: bool = False
    steps_remaining: float = 0.0
    step_per_mm: float = 0.0
    req_mm_increment: float = 0.0
    dt_remainder: float = 0.0
    ramp: int = RAMP_ACCEL
    mm_complete: float = 0.0
    current_speed: float = 0.0
    maximum_speed: float = 0.0
    exit_speed: float = 0.0
    accelerate_until: float = 0.0
    decelerate_after: float = 0.0
    decel_override: bool = False


class Stepper:
    """The planner ring and the step segment generator of one simulated controller."""

    def __init__(self, limits: Limits, capacity: int = 15) -> None:
        self.planner = Planner(limits)
        self.planner_capacity = capacity
        self.segments: deque[Segment] = deque()
        self.prep = _Prep()
        self._position: list[float] = [0.0, 0.0, 0.0]
        self.speed = 0.0  # mm/s of the executing segment
        self._holding = False
        self.end_motion = False  # STEP_CONTROL_END_MOTION: a hold's deceleration is fully prepared
        self.finished: list[PlanBlock] = []  # blocks completed since the caller last looked

    # ---------------------------------------------------------------- state the firmware reads
    @property
    def limits(self) -> Limits:
        return self.planner.limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self.planner.limits = limits

    @property
    def position(self) -> list[float]:
        return self._position

    @position.setter
    def position(self, value: list[float]) -> None:
        """The machine is here (power-up, homing): the planner plans from it."""
        self._position = list(value)
        self.planner.sync_position((value[0], value[1], value[2]))

    @property
    def blocks(self) -> list[PlanBlock]:
        """Blocks not yet finished, the executing one first (prepared ones have left the planner)."""
        out: list[PlanBlock] = []
        for seg in self.segments:
            if not out or out[-1] is not seg.block:
                out.append(seg.block)
        for block in self.planner.blocks:
            if not out or out[-1] is not block:
                out.append(block)
        return out

    @property
    def free(self) -> int:
        return self.planner_capacity - len(self.planner.blocks)

    @property
    def busy(self) -> bool:
        return bool(self.segments) or bool(self.planner.blocks)

    @property
    def current_line(self) -> int | None:
        blocks = self.blocks
        return blocks[0].line if blocks else None

    @property
    def feed_override(self) -> int:
        return self.planner.feed_override

    @feed_override.setter
    def feed_override(self, value: int) -> None:
        self._override(value, self.planner.rapid_override)

    @property
    def rapid_override(self) -> int:
        return self.planner.rapid_override

    @rapid_override.setter
    def rapid_override(self, value: int) -> None:
        self._override(self.planner.feed_override, value)

    def _override(self, feed: int, rapid: int) -> None:
        """protocol.c: new nominal speeds for every queued block, then replan from the current speed."""
        planner = self.planner
        if (feed, rapid) == (planner.feed_override, planner.rapid_override):
            return
        planner.feed_override, planner.rapid_override = feed, rapid
        planner.update_velocity_profile_parameters()
        if not self._holding:
            self._replan()

    @property
    def holding(self) -> bool:
        return self._holding

    @holding.setter
    def holding(self, value: bool) -> None:
        if value and not self._holding:
            self._holding = True
            self._update_block_parameters()
        elif not value and self._holding:
            self._holding = False
            self.end_motion = False
            if self.prep.block is not None:
                self.prep.block.entry_speed_sqr = 0.0
            self.planner.reinitialize(0.0)  # plan_cycle_reinitialize: resume from rest
            self.prep.recalculate = self.prep.block is not None

    def _update_block_parameters(self) -> None:
        """st_update_plan_block_parameters: the block being prepared continues from the prepared speed."""
        prep = self.prep
        if prep.block is not None:
            prep.recalculate = True
            prep.block.entry_speed_sqr = prep.current_speed * prep.current_speed

    def _replan(self) -> None:
        """plan_cycle_reinitialize."""
        self._update_block_parameters()
        speed = self.prep.current_speed if self.prep.block is not None else 0.0
        self.planner.reinitialize(speed)

    # ---------------------------------------------------------------- queueing
    def push_line(self, target: Vec, rate: float, *, rapid: bool = False, line: int = 0, jog: bool = False,
                  probe: str | None = None) -> PlanBlock | None:
        """plan_buffer_line; the caller waits while :attr:`free` is 0."""
        if self.free <= 0:
            raise RuntimeError("planner full")
        if not self.busy:
            self.planner.sync_position((self._position[0], self._position[1], self._position[2]))
        if self.planner.planned == 0:
            self._update_block_parameters()  # planner_recalculate reaches the block being prepared
        return self.planner.buffer_line(target, rate, rapid=rapid, line=line, jog=jog, probe=probe)

    def flush(self) -> None:
        """Drop every queued block and stop dead (reset, or after a hold was cancelled)."""
        self.planner.blocks.clear()
        self.planner.planned = 0
        self.segments.clear()
        self.prep = _Prep()
        self.speed = 0.0
        self._holding = False
        self.end_motion = False
        self.planner.sync_position((self._position[0], self._position[1], self._position[2]))

    # ---------------------------------------------------------------- time
    def advance(self, dt: float) -> None:
        """Move for ``dt`` simulated seconds: the timer runs prepared segments, the main loop prepares more."""
        while True:
            self._prep_buffer()
            if not self.segments:
                self.speed = 0.0
                return
            seg = self.segments[0]
            step = min(dt, seg.seconds - seg.elapsed)
            seg.elapsed += step
            dt -= step
            self._place(seg)
            self.speed = seg.speed / 60.0
            if seg.elapsed >= seg.seconds - EPS:
                self.segments.popleft()
                if seg.last:
                    self._position = list(seg.block.end)
                    self.finished.append(seg.block)
            if dt <= EPS:
                if not self.segments and not self.planner.blocks:
                    self.speed = 0.0
                return

    def _place(self, seg: Segment) -> None:
        block = seg.block
        fraction = seg.elapsed / seg.seconds if seg.seconds > 0 else 1.0
        left = seg.mm_from + (seg.mm_to - seg.mm_from) * fraction
        done = 1.0 - left / block.length if block.length > 0 else 1.0
        s, e = block.start, block.end
        self._position = [s[i] + (e[i] - s[i]) * done for i in range(3)]

    # ---------------------------------------------------------------- st_prep_buffer
    def _prep_buffer(self) -> None:
        while len(self.segments) < SEGMENT_BUFFER_SIZE - 1 and not self.end_motion:
            prep = self.prep
            if prep.block is None:
                if not self.planner.blocks:
                    return
                self._load(self.planner.blocks[0])
            elif prep.recalculate:
                prep.recalculate = False
                self._profile(prep.block)
            if not self._segment():
                return

    def _load(self, block: PlanBlock) -> None:
        prep = self.prep
        prep.block = block
        prep.recalculate = False
        prep.steps_remaining = float(block.step_event_count)
        prep.step_per_mm = prep.steps_remaining / block.millimeters
        prep.req_mm_increment = REQ_MM_INCREMENT_SCALAR / prep.step_per_mm
        prep.dt_remainder = 0.0
        if self._holding or prep.decel_override:
            block.entry_speed_sqr = prep.exit_speed * prep.exit_speed  # new block loaded mid-deceleration
            prep.current_speed = prep.exit_speed
            prep.decel_override = False
        else:
            prep.current_speed = math.sqrt(block.entry_speed_sqr)
        self._profile(block)

    def _profile(self, block: PlanBlock) -> None:
        """The block's ramps from its entry and planned exit speeds, or a forced deceleration in a hold."""
        prep = self.prep
        prep.mm_complete = 0.0
        inv_2a = 0.5 / block.acceleration
        if self._holding:
            prep.ramp = RAMP_DECEL
            decel_dist = block.millimeters - inv_2a * block.entry_speed_sqr
            if decel_dist < 0.0:
                prep.exit_speed = math.sqrt(block.entry_speed_sqr - 2 * block.acceleration * block.millimeters)
            else:
                prep.mm_complete = decel_dist
                prep.exit_speed = 0.0
            return
        prep.ramp = RAMP_ACCEL
        prep.accelerate_until = block.millimeters
        exit_sqr = self.planner.exit_speed_sqr()
        prep.exit_speed = math.sqrt(exit_sqr)
        nominal = self.planner.nominal_speed(block)
        nominal_sqr = nominal * nominal
        intersect = 0.5 * (block.millimeters + inv_2a * (block.entry_speed_sqr - exit_sqr))
        if block.entry_speed_sqr > nominal_sqr:  # only after an override lowered the nominal speed
            prep.accelerate_until = block.millimeters - inv_2a * (block.entry_speed_sqr - nominal_sqr)
            if prep.accelerate_until <= 0.0:
                prep.ramp = RAMP_DECEL
                prep.exit_speed = math.sqrt(max(0.0, block.entry_speed_sqr
                                                - 2 * block.acceleration * block.millimeters))
                prep.decel_override = True
            else:
                prep.decelerate_after = inv_2a * (nominal_sqr - exit_sqr)
                prep.maximum_speed = nominal
                prep.ramp = RAMP_DECEL_OVERRIDE
        elif intersect > 0.0:
            if intersect < block.millimeters:
                prep.decelerate_after = inv_2a * (nominal_sqr - exit_sqr)
                if prep.decelerate_after < intersect:
                    prep.maximum_speed = nominal
                    if block.entry_speed_sqr == nominal_sqr:
                        prep.ramp = RAMP_CRUISE
                    else:
                        prep.accelerate_until -= inv_2a * (nominal_sqr - block.entry_speed_sqr)
                else:
                    prep.accelerate_until = prep.decelerate_after = intersect
                    prep.maximum_speed = math.sqrt(2.0 * block.acceleration * intersect + exit_sqr)
            else:
                prep.ramp = RAMP_DECEL
        else:
            prep.accelerate_until = 0.0
            prep.maximum_speed = prep.exit_speed

    def _segment(self) -> bool:
        """Prepare one segment of the current block; False when there is nothing more to prepare."""
        prep = self.prep
        block = prep.block
        assert block is not None
        dt_max = DT_SEGMENT
        dt = 0.0
        time_var = dt_max
        mm_remaining = block.millimeters
        minimum_mm = max(0.0, mm_remaining - prep.req_mm_increment)
        while True:
            mm_remaining, time_var = self._ramp(block, mm_remaining, time_var)
            dt += time_var
            if dt < dt_max:
                time_var = dt_max - dt
            elif mm_remaining > minimum_mm:
                dt_max += DT_SEGMENT
                time_var = dt_max - dt
            else:
                break
            if mm_remaining <= prep.mm_complete:
                break
        step_dist_remaining = prep.step_per_mm * mm_remaining
        n_steps_remaining = math.ceil(step_dist_remaining)
        last_n_steps_remaining = math.ceil(prep.steps_remaining)
        n_step = int(last_n_steps_remaining - n_steps_remaining)
        if n_step == 0 and self._holding:
            self.end_motion = True
            return False
        dt += prep.dt_remainder
        steps = last_n_steps_remaining - step_dist_remaining
        if steps <= 0.0:  # no progress at all (a rounding crumb): time passes, nothing steps
            inv_rate, seconds = 0.0, dt * 60.0
        else:
            inv_rate = dt / steps
            seconds = self._timer_seconds(n_step, inv_rate)
        last = mm_remaining <= 0.0
        self.segments.append(Segment(block, block.millimeters, mm_remaining, seconds, prep.current_speed, last))
        block.millimeters = mm_remaining
        prep.steps_remaining = n_steps_remaining
        prep.dt_remainder = (n_steps_remaining - step_dist_remaining) * inv_rate
        if mm_remaining <= prep.mm_complete:
            if mm_remaining > 0.0:  # the end of a hold's deceleration
                self.end_motion = True
                return False
            prep.block = None
            self.planner.discard_current()
        return True

    @staticmethod
    def _timer_seconds(n_step: int, inv_rate: float) -> float:
        """How long the stepper ISR takes for ``n_step`` steps at ``inv_rate`` minutes per step."""
        cycles = math.ceil(F_CPU * 60 * inv_rate)
        level = 0 if cycles < AMASS_LEVEL1 else 1 if cycles < AMASS_LEVEL2 else 2 if cycles < AMASS_LEVEL3 else 3
        cycles >>= level
        ticks = n_step << level
        per_tick = cycles if cycles < (1 << 16) else 0xFFFF
        return ticks * (per_tick + 1) / F_CPU

    def _ramp(self, block: PlanBlock, mm_remaining: float, time_var: float) -> tuple[float, float]:
        """One step of st_prep_buffer's ramp state machine: distance left and time used."""
        prep = self.prep
        accel = block.acceleration
        if prep.ramp == RAMP_DECEL_OVERRIDE:
            speed_var = accel * time_var
            if prep.current_speed - prep.maximum_speed <= speed_var:
                mm_end = prep.accelerate_until
                time_var = 2.0 * (mm_remaining - mm_end) / (prep.current_speed + prep.maximum_speed)
                mm_remaining = mm_end
                prep.ramp = RAMP_CRUISE
                prep.current_speed = prep.maximum_speed
            else:
                mm_remaining -= time_var * (prep.current_speed - 0.5 * speed_var)
                prep.current_speed -= speed_var
        elif prep.ramp == RAMP_ACCEL:
            speed_var = accel * time_var
            mm_start = mm_remaining
            mm_remaining -= time_var * (prep.current_speed + 0.5 * speed_var)
            if mm_remaining < prep.accelerate_until:
                mm_remaining = prep.accelerate_until
                time_var = 2.0 * (mm_start - mm_remaining) / (prep.current_speed + prep.maximum_speed)
                prep.ramp = RAMP_DECEL if mm_remaining == prep.decelerate_after else RAMP_CRUISE
                prep.current_speed = prep.maximum_speed
            else:
                prep.current_speed += speed_var
        elif prep.ramp == RAMP_CRUISE:
            mm_var = mm_remaining - prep.maximum_speed * time_var
            if mm_var < prep.decelerate_after:
                time_var = (mm_remaining - prep.decelerate_after) / prep.maximum_speed
                mm_remaining = prep.decelerate_after
                prep.ramp = RAMP_DECEL
            else:
                mm_remaining = mm_var
        else:
            speed_var = accel * time_var
            if prep.current_speed > speed_var:
                mm_var = mm_remaining - time_var * (prep.current_speed - 0.5 * speed_var)
                if mm_var > prep.mm_complete:
                    prep.current_speed -= speed_var
                    return mm_var, time_var
            total = prep.current_speed + prep.exit_speed
            time_var = 2.0 * (mm_remaining - prep.mm_complete) / total if total > 0 else 0.0
            mm_remaining = prep.mm_complete
            prep.current_speed = prep.exit_speed
        return mm_remaining, time_var
