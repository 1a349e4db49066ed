"""Run-time estimate with a GRBL-like planner: per-axis rate and acceleration limits, junction deviation.

GRBL plans over a 16-block buffer, assuming it must be able to stop at the end
of the buffer. We keep the same horizon: blocks are planned in windows of 8 to
16 with a stop at the window's end, and the oldest half is then committed. Arcs
are one block each, capped at the speed where centripetal acceleration reaches
the axis limit (what GRBL's chord segments and their junctions amount to).
"""

from __future__ import annotations

import math
from array import array

from labbridge.config import Machine
from labbridge.safety.motion import Motion

_HALF_WINDOW = 8
_MIN_LENGTH = 1e-6
MAX_MARKS = 4096  # ETA marks kept; when full, every other one is dropped and the spacing doubles


class Estimator:
    """Accumulates the time a controller needs for a stream of motions (pure Python reference)."""

    def __init__(self, machine: Machine) -> None:
        axes = "XYZ"
        self.rate = [machine.rapid(a) / 60.0 for a in axes]  # mm/s
        self.accel = [machine.accel(a) for a in axes]  # mm/s²
        self.max_feed = machine.max_feed / 60.0
        self.jd = machine.junction_deviation
        # Pending blocks: parallel lists (length, nominal_sq, accel, max_entry_sq, line).
        self._len: list[float] = []
        self._nom: list[float] = []
        self._acc: list[float] = []
        self._jmax: list[float] = []
        self._line: list[int] = []
        self._entry_sq = 0.0  # entry speed² of the first pending block
        self._prev_unit: tuple[float, float, float] | None = None
        self.seconds = 0.0
        self.line_times = array("d")  # flat pairs: line, cumulative seconds
        self._last_mark = -1.0
        self._mark_interval = 1.0

    # -- limits along a direction, as GRBL's limit_value_by_axis_maximum ---------------------------
    @staticmethod
    def _limit(limits: list[float], u: tuple[float, float, float]) -> float:
        best = math.inf
        for i in (0, 1, 2):
            c = u[i]
            if c > 1e-12 or c < -1e-12:
                v = limits[i] / (c if c > 0 else -c)
                if v < best:
                    best = v
        return best

    def add(self, m: Motion) -> None:
        kind = m.kind
        if kind == "dwell":
            self.flush()
            self.seconds += m.seconds
            self._mark(m.line)
            return
        s, e = m.start, m.end
        if kind == "arc":
            a, b, n = m.plane
            arc_len = abs(m.sweep) * m.radius
            dn = e[n] - s[n]
            length = math.hypot(arc_len, dn)
            if length < _MIN_LENGTH:
                return
            c = m.center
            assert c is not None
            # Tangents at start and end (direction of travel).
            sign = 1.0 if m.sweep > 0 else -1.0
            r = m.radius or 1.0
            t0 = [0.0, 0.0, 0.0]
            t0[a] = -sign * (s[b] - c[b]) / r * arc_len / length
            t0[b] = sign * (s[a] - c[a]) / r * arc_len / length
            t0[n] = dn / length
            end_angle = math.atan2(s[b] - c[b], s[a] - c[a]) + m.sweep
            t1 = [0.0, 0.0, 0.0]
            t1[a] = -sign * math.sin(end_angle) * arc_len / length
            t1[b] = sign * math.cos(end_angle) * arc_len / length
            t1[n] = dn / length
            u_start = (t0[0], t0[1], t0[2])
            u_end = (t1[0], t1[1], t1[2])
            plane_rate = min(self.rate[a], self.rate[b])
            plane_acc = min(self.accel[a], self.accel[b])
            nominal = min(m.feed / 60.0, plane_rate, self.max_feed)
            nominal = min(nominal, math.sqrt(plane_acc * m.radius)) if m.radius > 0 else nominal
            acc = plane_acc
        else:
            dx, dy, dz = e[0] - s[0], e[1] - s[1], e[2] - s[2]
            length = math.sqrt(dx * dx + dy * dy + dz * dz)
            if length < _MIN_LENGTH:
                return
            u_start = u_end = (dx / length, dy / length, dz / length)
            axis_rate = self._limit(self.rate, u_start)
            nominal = axis_rate if kind == "traverse" else min(m.feed / 60.0, axis_rate)
            acc = self._limit(self.accel, u_start)
        if nominal <= 0.0:
            # A feed move with no feed (already an error) or G95 with the spindle stopped: count it at 1 mm/s
            # so the estimate stays finite; the diagnostics say what is wrong.
            nominal = 1.0
        nominal_sq = nominal * nominal
        prev = self._prev_unit
        if prev is None:
            jmax = 0.0
        else:
            cos_theta = -(prev[0] * u_start[0] + prev[1] * u_start[1] + prev[2] * u_start[2])
            if cos_theta > 0.999999:
                jmax = 0.0
            elif cos_theta < -0.999999:
                jmax = math.inf
            else:
                jx, jy, jz = u_start[0] - prev[0], u_start[1] - prev[1], u_start[2] - prev[2]
                jl = math.sqrt(jx * jx + jy * jy + jz * jz)
                j_acc = self._limit(self.accel, (jx / jl, jy / jl, jz / jl))
                sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
                jmax = j_acc * self.jd * sin_half / (1.0 - sin_half)
            if self._nom:
                jmax = min(jmax, self._nom[-1])
        self._prev_unit = u_end
        self._len.append(length)
        self._nom.append(nominal_sq)
        self._acc.append(acc)
        self._jmax.append(min(jmax, nominal_sq))
        self._line.append(m.line)
        if len(self._len) >= 2 * _HALF_WINDOW:
            self._plan(commit=_HALF_WINDOW)

    def _plan(self, commit: int) -> None:
        """Plan the pending blocks with a stop after the last; commit the first ``commit`` of them."""
        lens, noms, accs, jmax = self._len, self._nom, self._acc, self._jmax
        n = len(lens)
        entry = [0.0] * (n + 1)  # entry speed² per block; entry[n] = exit of the last = 0
        for i in range(n - 1, -1, -1):
            reachable = entry[i + 1] + 2.0 * accs[i] * lens[i]
            entry[i] = jmax[i] if jmax[i] < reachable else reachable
        entry[0] = min(entry[0], self._entry_sq)
        for i in range(n):
            reachable = entry[i] + 2.0 * accs[i] * lens[i]
            if entry[i + 1] > reachable:
                entry[i + 1] = reachable
        t = self.seconds
        for i in range(commit):
            t += _trapezoid_time(lens[i], entry[i], entry[i + 1], noms[i], accs[i])
            if t - self._last_mark >= self._mark_interval:
                self.seconds = t
                self._mark(self._line[i])
        self.seconds = t
        self._entry_sq = entry[commit]
        del lens[:commit], noms[:commit], accs[:commit], jmax[:commit], self._line[:commit]

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
        """Plan everything pending to a stop (program end, dwell, M0)."""
        if self._len:
            last_line = self._line[-1]
            self._plan(commit=len(self._len))
            self._mark(last_line)
        self._entry_sq = 0.0
        self._prev_unit = None

    def finish(self) -> float:
        self.flush()
        return self.seconds

    def pairs(self) -> list[tuple[int, float]]:
        lt = self.line_times
        return [(int(lt[i]), lt[i + 1]) for i in range(0, len(lt), 2)]


def _trapezoid_time(length: float, v0_sq: float, v1_sq: float, vmax_sq: float, accel: float) -> float:
    """Time to cover ``length`` starting at v0, ending at v1, cruising at most at vmax, under ``accel``."""
    if accel <= 0.0 or math.isinf(accel):
        return length / math.sqrt(vmax_sq)
    two_a = 2.0 * accel
    d_acc = (vmax_sq - v0_sq) / two_a
    d_dec = (vmax_sq - v1_sq) / two_a
    if d_acc + d_dec <= length:
        vmax = math.sqrt(vmax_sq)
        return (vmax - math.sqrt(v0_sq)) / accel + (vmax - math.sqrt(v1_sq)) / accel + (length - d_acc - d_dec) / vmax
    peak_sq = (two_a * length + v0_sq + v1_sq) * 0.5
    peak = math.sqrt(peak_sq)
    return max(0.0, (peak - math.sqrt(v0_sq)) / accel) + max(0.0, (peak - math.sqrt(v1_sq)) / accel)


class CompiledEstimator:
    """The same planner in C (labbridge/safety/_fastcheck.c), shared with the checker's fast path."""

    def __init__(self, machine: Machine, compiled: object) -> None:
        axes = "XYZ"
        self.raw = compiled.Estimator(  # type: ignore[attr-defined]
            tuple(machine.rapid(a) / 60.0 for a in axes), tuple(machine.accel(a) for a in axes),
            machine.max_feed / 60.0, machine.junction_deviation,
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
