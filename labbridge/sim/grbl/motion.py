"""The simulated GRBL's planner and stepper: a 16-block ring (15 usable) executed in simulated time.

Deliberately simple kinematics: one speed along the queued path, accelerating and
braking with the limiting axis acceleration so that a feed hold decelerates
(``Hold:1``) before it stops (``Hold:0``) and the machine brakes to a stop at the
end of the queue. Junction speeds are not modelled; what senders notice (``Bf:``,
MPos moving at the commanded feed, FS, holds) is.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from labbridge.safety.geometry import arc_path, grbl_arc_segments

Vec = tuple[float, float, float]
EPS = 1e-9


@dataclass
class Block:
    """One planner block: a straight move (arcs arrive already cut into segments)."""

    start: Vec
    end: Vec
    speed: float  # nominal mm/s before overrides
    accel: float  # mm/s² along the move
    rapid: bool = False
    jog: bool = False
    line: int = 0
    probe: str | None = None  # "G38.2" .. "G38.5" on the last block of a probe move
    limit: float = math.inf  # mm/s the axes allow along this move (caps overrides)
    done: float = 0.0

    @property
    def length(self) -> float:
        return math.dist(self.start, self.end)


def limited_speed_and_accel(start: Vec, end: Vec, feed_mm_min: float, max_rates: Vec, accels: Vec) -> tuple[float, float]:
    """GRBL caps a move's speed and acceleration by the slowest axis it uses (per unit vector)."""
    length = math.dist(start, end)
    if length < EPS:
        return feed_mm_min / 60.0, min(accels)
    speed = feed_mm_min / 60.0
    accel = math.inf
    for i in range(3):
        u = abs(end[i] - start[i]) / length
        if u > EPS:
            speed = min(speed, max_rates[i] / 60.0 / u)
            accel = min(accel, accels[i] / u)
    return speed, accel


def arc_points(start: Vec, end: Vec, center: Vec, plane: tuple[int, int, int], sweep: float, radius: float,
               tolerance: float) -> list[Vec]:
    """Segment end points of an arc, as many as GRBL's mc_arc makes for arc tolerance ``$12``."""
    segments = grbl_arc_segments(sweep, radius, tolerance) if math.isfinite(sweep) else 0
    return arc_path(start, end, center, plane, sweep, segments)


class Stepper:
    """Executes planner blocks; tracks the actual machine position and speed."""

    def __init__(self, capacity: int = 15) -> None:
        self.capacity = capacity
        self.blocks: deque[Block] = deque()
        self.position: list[float] = [0.0, 0.0, 0.0]
        self.speed = 0.0  # mm/s, actual
        self.holding = False
        self.feed_override = 100
        self.rapid_override = 100
        self.finished: list[Block] = []  # blocks completed since the caller last looked

    @property
    def free(self) -> int:
        return self.capacity - len(self.blocks)

    @property
    def busy(self) -> bool:
        return bool(self.blocks) or self.speed > 0

    @property
    def current_line(self) -> int | None:
        return self.blocks[0].line if self.blocks else None

    def push(self, block: Block) -> None:
        if self.free <= 0:
            raise RuntimeError("planner full")
        self.blocks.append(block)

    def flush(self) -> None:
        """Drop every queued block and stop dead (reset, or after a hold was cancelled)."""
        self.blocks.clear()
        self.speed = 0.0
        self.holding = False

    def _nominal(self, block: Block) -> float:
        if block.jog:
            return block.speed
        scale = (self.rapid_override if block.rapid else self.feed_override) / 100.0
        return min(block.speed * scale, block.limit)

    def _remaining(self) -> float:
        return sum(max(b.length - b.done, 0.0) for b in self.blocks)

    def advance(self, dt: float) -> None:
        """Move for ``dt`` simulated seconds."""
        if dt <= 0:
            return
        if not self.blocks:
            self.speed = 0.0
            return
        block = self.blocks[0]
        accel = max(block.accel, EPS)
        if self.holding:
            self.speed = max(0.0, self.speed - accel * dt)
        else:
            target = self._nominal(block)
            if self.speed < target:
                v = min(target, self.speed + accel * dt)
            else:
                v = max(target, self.speed - accel * dt)
            braking = math.sqrt(2 * accel * self._remaining())
            self.speed = max(min(v, braking), min(target, accel * dt))
        distance = self.speed * dt
        while self.blocks and (distance > 0 or self.blocks[0].length - self.blocks[0].done <= EPS):
            block = self.blocks[0]
            left = block.length - block.done
            step = min(distance, left)
            block.done += step
            distance -= step
            self._place(block)
            if block.length - block.done <= 1e-7:
                self.position = list(block.end)
                self.blocks.popleft()
                self.finished.append(block)
            else:
                break
        if not self.blocks:
            self.speed = 0.0

    def _place(self, block: Block) -> None:
        length = block.length
        f = 1.0 if length < EPS else block.done / length
        self.position = [s + (e - s) * f for s, e in zip(block.start, block.end)]
