"""GRBL 1.1h's motion planner (planner.c), shared by the run-time estimate and the GRBL simulator.

One port of the firmware's planning, so the gate's ETA and the simulated machine
agree by construction:

- ``plan_buffer_line``: a move becomes a block from step-rounded positions; its
  acceleration and rapid rate are limited per axis along the unit vector; the
  junction with the previous block gets the speed its junction deviation allows
  (0 when the buffer was empty: the machine starts from rest).
- ``recalculate``: the reverse pass from a stop after the newest block, then the
  forward pass from the executing block's speed, with the firmware's "planned"
  pointer, over a ring of 16 blocks of which 15 hold moves.

Units are GRBL's own: mm, mm/min and mm/min². The estimator executes blocks
whole (:class:`BlockTimer`); the simulator cuts them into the stepper's segments
(labbridge/sim/grbl/stepper.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from labbridge.config import Machine

BLOCK_BUFFER_SIZE = 16  # the ring; one slot always stays empty, so 15 blocks are planned at once
PLANNED_BLOCKS = BLOCK_BUFFER_SIZE - 1
MINIMUM_JUNCTION_SPEED = 0.0  # mm/min (config.h)
MINIMUM_FEED_RATE = 1.0  # mm/min (config.h)
SOME_LARGE_VALUE = 1.0e38
DWELL_TIME_STEP = 0.050  # s: G4 waits in steps of 50 ms (nuts_bolts.c delay_sec)

Vec = tuple[float, float, float]


def dwell_seconds(seconds: float) -> float:
    """How long GRBL's G4 really waits: ceil(seconds / 50 ms) steps of 50 ms."""
    return math.ceil(round(seconds / DWELL_TIME_STEP, 9)) * DWELL_TIME_STEP if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings the planner works with ($100-$102, $110-$112, $120-$122, $11, $12)."""

    steps_per_mm: Vec
    max_rate: Vec  # mm/min
    acceleration: Vec  # mm/min² (GRBL stores $120 mm/s² times 3600)
    junction_deviation: float  # mm
    arc_tolerance: float  # mm

    @classmethod
    def from_machine(cls, machine: Machine) -> Limits:
        axes = "XYZ"
        return cls(
            tuple(machine.steps(a) for a in axes),  # type: ignore[arg-type]
            tuple(machine.rapid(a) for a in axes),  # type: ignore[arg-type]
            tuple(machine.accel(a) * 3600.0 for a in axes),  # type: ignore[arg-type]
            machine.junction_deviation, machine.arc_tolerance,
        )

    @classmethod
    def from_settings(cls, settings: dict[int, float]) -> Limits:
        s = settings
        return cls((s[100], s[101], s[102]), (s[110], s[111], s[112]),
                   (s[120] * 3600.0, s[121] * 3600.0, s[122] * 3600.0), s[11], s[12])


def limit_by_axis_maximum(values: Vec, unit: tuple[float, float, float]) -> float:
    """nuts_bolts.c limit_value_by_axis_maximum: the largest value along ``unit`` no axis exceeds."""
    best = SOME_LARGE_VALUE
    for i in range(3):
        if unit[i] != 0.0:
            best = min(best, abs(values[i] / unit[i]))
    return best


@dataclass(slots=True)
class PlanBlock:
    """One planner block (plan_block_t), with what the simulator needs to trace it."""

    steps: tuple[int, int, int]  # signed step counts
    step_event_count: int
    millimeters: float  # remaining length: the stepper shortens it as it executes
    acceleration: float
    rapid_rate: float
    programmed_rate: float
    rapid: bool
    max_junction_speed_sqr: float = 0.0
    max_entry_speed_sqr: float = 0.0
    entry_speed_sqr: float = 0.0
    line: int = 0
    start: Vec = (0.0, 0.0, 0.0)  # mm, from the step-rounded positions
    end: Vec = (0.0, 0.0, 0.0)
    length: float = 0.0  # the block's full length
    jog: bool = False
    probe: str | None = None
    no_override: bool = False  # jogs ignore feed overrides


@dataclass
class Planner:
    """The planner ring: add moves with :meth:`buffer_line`; the executing block is ``blocks[0]``."""

    limits: Limits
    blocks: deque[PlanBlock] = field(default_factory=deque)
    position: list[int] = field(default_factory=lambda: [0, 0, 0])  # planner position, steps
    previous_unit: tuple[float, float, float] = (0.0, 0.0, 0.0)
    previous_nominal_speed: float = 0.0
    planned: int = 0  # index of the first block after the optimally planned ones
    feed_override: int = 100
    rapid_override: int = 100

    @property
    def full(self) -> bool:
        return len(self.blocks) >= PLANNED_BLOCKS

    def sync_position(self, mm: Vec) -> None:
        """plan_sync_position: the planner starts from where the machine is."""
        self.position = [_lround(mm[i] * self.limits.steps_per_mm[i]) for i in range(3)]

    def reset(self) -> None:
        """plan_reset: empty ring, no previous direction or speed."""
        self.blocks.clear()
        self.planned = 0
        self.previous_unit = (0.0, 0.0, 0.0)
        self.previous_nominal_speed = 0.0

    # ---------------------------------------------------------------- adding a block
    def buffer_line(self, target: Vec, rate: float, *, rapid: bool = False, line: int = 0, jog: bool = False,
                    probe: str | None = None) -> PlanBlock | None:
        """plan_buffer_line: a move to ``target`` (mm) at ``rate`` (mm/min; ignored for rapids). None for a move
        shorter than one step, as the firmware drops it."""
        lim = self.limits
        target_steps = [_lround(target[i] * lim.steps_per_mm[i]) for i in range(3)]
        delta = [target_steps[i] - self.position[i] for i in range(3)]
        count = max(abs(d) for d in delta)
        if count == 0:
            return None
        unit = [delta[i] / lim.steps_per_mm[i] for i in range(3)]
        millimeters = math.sqrt(sum(u * u for u in unit))
        unit_t = (unit[0] / millimeters, unit[1] / millimeters, unit[2] / millimeters)
        block = PlanBlock(
            (delta[0], delta[1], delta[2]), count, millimeters,
            limit_by_axis_maximum(lim.acceleration, unit_t), limit_by_axis_maximum(lim.max_rate, unit_t),
            rate, rapid, line=line, jog=jog, probe=probe, no_override=jog,
            start=_mm(self.position, lim), end=_mm(target_steps, lim), length=millimeters,
        )
        if not self.blocks:
            block.max_junction_speed_sqr = 0.0  # from rest
        else:
            block.max_junction_speed_sqr = self._junction_speed_sqr(unit_t)
        nominal = self.nominal_speed(block)
        self._profile_parameters(block, nominal, self.previous_nominal_speed)
        self.previous_nominal_speed = nominal
        self.previous_unit = unit_t
        self.position = target_steps
        self.blocks.append(block)
        self.recalculate()
        return block

    def _junction_speed_sqr(self, unit: tuple[float, float, float]) -> float:
        prev = self.previous_unit
        cos_theta = -(prev[0] * unit[0] + prev[1] * unit[1] + prev[2] * unit[2])
        if cos_theta > 0.999999:
            return MINIMUM_JUNCTION_SPEED * MINIMUM_JUNCTION_SPEED
        if cos_theta < -0.999999:
            return SOME_LARGE_VALUE
        j = [unit[i] - prev[i] for i in range(3)]
        norm = math.sqrt(sum(v * v for v in j))
        j_unit = (j[0] / norm, j[1] / norm, j[2] / norm)
        accel = limit_by_axis_maximum(self.limits.acceleration, j_unit)
        sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
        return max(MINIMUM_JUNCTION_SPEED * MINIMUM_JUNCTION_SPEED,
                   accel * self.limits.junction_deviation * sin_half / (1.0 - sin_half))

    def nominal_speed(self, block: PlanBlock) -> float:
        """plan_compute_profile_nominal_speed, overrides included."""
        if block.rapid:
            speed = block.rapid_rate * 0.01 * self.rapid_override
        else:
            speed = block.programmed_rate
            if not block.no_override:
                speed *= 0.01 * self.feed_override
            speed = min(speed, block.rapid_rate)
        return speed if speed > MINIMUM_FEED_RATE else MINIMUM_FEED_RATE

    @staticmethod
    def _profile_parameters(block: PlanBlock, nominal: float, previous: float) -> None:
        lower = previous if nominal > previous else nominal
        block.max_entry_speed_sqr = min(lower * lower, block.max_junction_speed_sqr)

    def update_velocity_profile_parameters(self) -> None:
        """After an override change: every queued block's limits from the new nominal speeds."""
        previous = SOME_LARGE_VALUE
        for block in self.blocks:
            nominal = self.nominal_speed(block)
            self._profile_parameters(block, nominal, previous)
            previous = nominal
        self.previous_nominal_speed = previous

    # ---------------------------------------------------------------- planning
    def recalculate(self) -> None:
        """planner_recalculate: reverse pass from a stop after the newest block, then the forward pass."""
        blocks = self.blocks
        last = len(blocks) - 1
        if last <= self.planned:
            return
        current = blocks[last]
        current.entry_speed_sqr = min(current.max_entry_speed_sqr, 2 * current.acceleration * current.millimeters)
        index = last - 1
        while index > self.planned:
            nxt, current = current, blocks[index]
            if current.entry_speed_sqr != current.max_entry_speed_sqr:
                current.entry_speed_sqr = min(current.max_entry_speed_sqr,
                                              nxt.entry_speed_sqr + 2 * current.acceleration * current.millimeters)
            index -= 1
        nxt = blocks[self.planned]
        for index in range(self.planned + 1, last + 1):
            current, nxt = nxt, blocks[index]
            if current.entry_speed_sqr < nxt.entry_speed_sqr:
                speed_sqr = current.entry_speed_sqr + 2 * current.acceleration * current.millimeters
                if speed_sqr < nxt.entry_speed_sqr:
                    nxt.entry_speed_sqr = speed_sqr
                    self.planned = index
            if nxt.entry_speed_sqr == nxt.max_entry_speed_sqr:
                self.planned = index

    def exit_speed_sqr(self) -> float:
        """plan_get_exec_block_exit_speed_sqr: the entry of the block after the executing one."""
        return self.blocks[1].entry_speed_sqr if len(self.blocks) > 1 else 0.0

    def discard_current(self) -> None:
        """plan_discard_current_block."""
        if self.blocks:
            self.blocks.popleft()
            self.planned = max(0, self.planned - 1)

    def reinitialize(self, current_speed: float) -> None:
        """plan_cycle_reinitialize / st_update_plan_block_parameters: replan from the executing block's speed."""
        if self.blocks:
            self.blocks[0].entry_speed_sqr = current_speed * current_speed
        self.planned = 0
        self.recalculate()


def _lround(x: float) -> int:
    """C's lround: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def _mm(steps: list[int], lim: Limits) -> Vec:
    return (steps[0] / lim.steps_per_mm[0], steps[1] / lim.steps_per_mm[1], steps[2] / lim.steps_per_mm[2])


def profile_time(length: float, entry_sqr: float, exit_sqr: float, nominal: float, accel: float) -> float:
    """Minutes to run a block as the stepper's ramps do (st_prep_buffer): from the entry speed accelerate,
    cruise at most at the nominal speed, decelerate to the exit speed (mm/min, mm/min²)."""
    if length <= 0.0:
        return 0.0
    inv_2a = 0.5 / accel
    entry, exit_ = math.sqrt(entry_sqr), math.sqrt(exit_sqr)
    nominal_sqr = nominal * nominal
    if entry_sqr > nominal_sqr:  # only after an override lowered the nominal speed: slow down to it first
        down = inv_2a * (entry_sqr - nominal_sqr)
        if down >= length:
            return 2.0 * length / (entry + exit_)
        return (entry - nominal) / accel + profile_time(length - down, nominal_sqr, exit_sqr, nominal, accel)
    intersect = 0.5 * (length + inv_2a * (entry_sqr - exit_sqr))
    if intersect <= 0.0 or intersect >= length:  # acceleration only, or deceleration only
        return 2.0 * length / (entry + exit_) if entry + exit_ > 0.0 else 0.0
    decelerate_after = inv_2a * (nominal_sqr - exit_sqr)
    if decelerate_after < intersect:  # trapezoid
        accelerate = inv_2a * (nominal_sqr - entry_sqr)
        return (nominal - entry) / accel + (length - accelerate - decelerate_after) / nominal + (nominal - exit_) / accel
    peak = math.sqrt(2.0 * accel * intersect + exit_sqr)  # triangle
    return (peak - entry) / accel + (peak - exit_) / accel


class BlockTimer:
    """Runs planner blocks whole, in order, as the firmware's segment generator takes them from the planner:
    the executing block's exit speed is planned over the 15 blocks the ring holds at that moment."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.minutes = 0.0
        self.speed_sqr = 0.0  # speed at the end of the executed blocks

    def add(self, block_target: Vec, rate: float, rapid: bool, line: int) -> PlanBlock | None:
        """Queue a move; when the ring is full, run its oldest block first (the parser waits for room)."""
        planner = self.planner
        if planner.full:
            self.run_one()
        return planner.buffer_line(block_target, rate, rapid=rapid, line=line)

    def run_one(self) -> PlanBlock:
        planner = self.planner
        block = planner.blocks[0]
        if block.entry_speed_sqr != self.speed_sqr:  # only if the plan and the machine disagree: replan
            block.entry_speed_sqr = self.speed_sqr
            planner.reinitialize(math.sqrt(self.speed_sqr))
        exit_sqr = planner.exit_speed_sqr()
        self.minutes += profile_time(block.millimeters, block.entry_speed_sqr, exit_sqr,
                                     planner.nominal_speed(block), block.acceleration)
        self.speed_sqr = exit_sqr
        planner.discard_current()
        return block

    def drain(self) -> None:
        """Run everything queued to a stop (program end, a dwell, a spindle or coolant change)."""
        while self.planner.blocks:
            self.run_one()
        self.speed_sqr = 0.0
