"""Run-time estimate: the program's motions through GRBL 1.1h's own planner (labbridge.safety.planner).

What the firmware does, and so does the estimate: moves become planner blocks from
step-rounded positions, limited per axis along their direction; arcs are cut into
chords by the arc tolerance ($12) exactly as mc_arc cuts them, each chord a block
with its own junction; junction speeds follow the junction deviation ($11); each
block runs with its exit speed planned over the 15 blocks the ring holds while it
executes (the stream keeps the ring full); the machine stops where the firmware
synchronises (dwell, spindle and coolant changes, probing, program end); a dwell
lasts whole 50 ms steps on GRBL. The GRBL simulator runs the same planner and adds
the stepper's 10 ms segments and its timer, so its run time is the reference the
estimate is measured against (bench/eta_accuracy.py).
"""

from __future__ import annotations

import math
from array import array

from labbridge.config import Machine
from labbridge.safety.geometry import arc_path, grbl_arc_segments
from labbridge.safety.motion import Motion
from labbridge.safety.planner import BlockTimer, Limits, Planner, dwell_seconds

MAX_MARKS = 4096  # ETA marks kept; when full, every other one is dropped and the spacing doubles
# Chords per arc the estimate plans at most. GRBL cuts up to 65535; past 4096 (a radius of metres) the chords
# are long and turn by under 0.1 degree, so neither their junctions nor the planner's horizon slow the machine,
# and planning fewer, longer ones keeps a check of degenerate arcs fast.
MAX_ESTIMATE_CHORDS = 4096


def chords(m: Motion, tolerance: float) -> list[tuple[float, float, float]]:
    """The end points of the chords GRBL's mc_arc cuts an arc motion into (the last is the arc's end)."""
    assert m.center is not None
    segments = min(grbl_arc_segments(m.sweep, m.radius, tolerance), MAX_ESTIMATE_CHORDS)
    return arc_path(m.start, m.end, m.center, m.plane, m.sweep, segments)


class Estimator:
    """Accumulates the time a controller needs for a stream of motions (pure Python reference)."""

    def __init__(self, machine: Machine) -> None:
        self.limits = Limits.from_machine(machine)
        self.planner = Planner(self.limits)
        self.timer = BlockTimer(self.planner)
        self.grbl = machine.controller == "grbl"
        self.extra = 0.0  # seconds outside the planner: dwells
        self.line_times = array("d")  # flat pairs: line, cumulative seconds
        self._last_mark = -1.0
        self._mark_interval = 1.0
        self._started = False

    @property
    def seconds(self) -> float:
        return self.timer.minutes * 60.0 + self.extra

    def add(self, m: Motion) -> None:
        kind = m.kind
        if kind == "dwell":
            self.flush()
            self.extra += dwell_seconds(m.seconds) if self.grbl else m.seconds
            self._mark(m.line)
            return
        if not self._started or self._off_plan(m.start):
            self.flush()
            self.planner.sync_position(m.start)
            self._started = True
        if kind == "probe":
            self.flush()
        points = chords(m, self.limits.arc_tolerance) if kind == "arc" else [m.end]
        for p in points:
            self._block(p, m.feed, kind == "traverse", m.line)
        if kind == "probe":
            self.flush()

    def _off_plan(self, start: tuple[float, float, float]) -> bool:
        """Whether a motion starts somewhere other than where the planner is (after a probe, a reset)."""
        steps = self.limits.steps_per_mm
        pos = self.planner.position
        return any(abs(start[i] * steps[i] - pos[i]) > 0.5 + 1e-6 for i in range(3))

    def _block(self, target: tuple[float, float, float], rate: float, rapid: bool, line: int) -> None:
        if self.planner.full:  # the parser waits for the oldest block to finish
            self._run_one()
        self.planner.buffer_line(target, rate, rapid=rapid, line=line)

    def _run_one(self) -> None:
        block = self.timer.run_one()
        if self.seconds - self._last_mark >= self._mark_interval:
            self._mark(block.line)

    def _mark(self, line: int) -> None:
        if len(self.line_times) >= 2 * MAX_MARKS:
            kept = array("d")
            for i in range(0, len(self.line_times), 4):
                kept.append(self.line_times[i])
                kept.append(self.line_times[i + 1])
            self.line_times = kept
            self._mark_interval *= 2.0
        self.line_times.append(float(line))
        self.line_times.append(self.seconds)
        self._last_mark = self.seconds

    def flush(self) -> None:
        """Run everything queued to a stop (program end, dwell, M0, spindle or coolant change)."""
        if self.planner.blocks:
            last_line = self.planner.blocks[-1].line
            while self.planner.blocks:
                self._run_one()
            self._mark(last_line)
        self.timer.speed_sqr = 0.0

    def finish(self) -> float:
        self.flush()
        return self.seconds

    def pairs(self) -> list[tuple[int, float]]:
        lt = self.line_times
        return [(int(lt[i]), lt[i + 1]) for i in range(0, len(lt), 2)]


class CompiledEstimator:
    """The same planner in C (labbridge/safety/_fastcheck.c), shared with the checker's fast path."""

    def __init__(self, machine: Machine, compiled: object) -> None:
        limits = Limits.from_machine(machine)
        self.raw = compiled.Estimator(  # type: ignore[attr-defined]
            limits.steps_per_mm, limits.max_rate, limits.acceleration, limits.junction_deviation,
            limits.arc_tolerance, machine.controller == "grbl",
        )

    _KINDS = {"traverse": 0, "feed": 1, "arc": 2, "probe": 3, "dwell": 4}

    def add(self, m: Motion) -> None:
        self.raw.add_raw(self._KINDS[m.kind], m.start, m.end, m.feed, m.center or (0.0, 0.0, 0.0), m.plane,
                         m.sweep, m.radius, m.seconds, m.line)

    def flush(self) -> None:
        self.raw.flush()

    def finish(self) -> float:
        return float(self.raw.finish())

    @property
    def seconds(self) -> float:
        return float(self.raw.seconds)

    def pairs(self) -> list[tuple[int, float]]:
        return list(self.raw.pairs())
