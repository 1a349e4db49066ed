"""Checks on canonical motions: travel envelope, keep-out boxes, feed limits, spindle state.

The envelope check uses each motion's swept bounding box (arcs by their true
extremes), so a path that leaves the machine and comes back within one block is
still caught. Bounds are kept in the same pass; they are what the controller
would report as MPos over the whole program.
"""

from __future__ import annotations

from labbridge.config import Machine
from labbridge.i18n import _
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.geometry import arc_extremes, motion_hits_box
from labbridge.safety.motion import Motion, Vec

_AXES = "XYZ"
_EPS = 1e-6


def _fmt(v: float) -> str:
    return f"{v:.3f}"


class MotionChecker:
    """Consumes motions in program order; collects diagnostics and the program's bounds."""

    def __init__(self, machine: Machine, x_scale: float, machine_id: str | None = None) -> None:
        self.machine = machine
        self.name = machine_id or machine.name
        self._feed_reported = -1.0  # report an over-limit feed once per feed value, not on every block
        self.x_scale = x_scale  # 0.5 on a lathe in diameter mode: internal X is a radius
        self.axes = [i for i, a in enumerate(_AXES) if a in machine.envelope]
        self.env_lo = [float("-inf")] * 3
        self.env_hi = [float("inf")] * 3
        for i in self.axes:
            lo, hi = machine.envelope[_AXES[i]]  # type: ignore[index]
            self.env_lo[i] = lo * (x_scale if i == 0 else 1.0)
            self.env_hi[i] = hi * (x_scale if i == 0 else 1.0)
        self.boxes: list[tuple[str, Vec, Vec]] = []
        for box in machine.keep_out:
            lo = tuple(box.min.get(a, float("-inf")) * (x_scale if a == "X" else 1.0) for a in _AXES)
            hi = tuple(box.max.get(a, float("inf")) * (x_scale if a == "X" else 1.0) for a in _AXES)
            self.boxes.append((box.name, lo, hi))  # type: ignore[arg-type]
        self.lo: list[float] | None = None
        self.hi: list[float] | None = None
        self.max_feed = machine.max_feed
        self._spindle_warned = False

    def spindle_changed(self, on: bool) -> None:
        if not on:
            self._spindle_warned = False

    def check(self, m: Motion, spindle_on: bool, work: Vec, out: list[Diagnostic]) -> None:
        """Check one motion; ``work`` is the active work offset (for messages in the student's coordinates)."""
        kind = m.kind
        if kind == "dwell":
            return
        if kind == "arc":
            lo, hi = arc_extremes(m)
        else:
            s, e = m.start, m.end
            lo = [s[0] if s[0] < e[0] else e[0], s[1] if s[1] < e[1] else e[1], s[2] if s[2] < e[2] else e[2]]
            hi = [s[0] if s[0] > e[0] else e[0], s[1] if s[1] > e[1] else e[1], s[2] if s[2] > e[2] else e[2]]
        blo, bhi = self.lo, self.hi
        if blo is None or bhi is None:  # the first motion's box holds the program's start position
            self.lo, self.hi = list(lo), list(hi)
        else:
            for i in (0, 1, 2):
                if lo[i] < blo[i]:
                    blo[i] = lo[i]
                if hi[i] > bhi[i]:
                    bhi[i] = hi[i]
        for i in self.axes:
            if lo[i] < self.env_lo[i] - _EPS:
                out.append(self._envelope(m, i, lo[i], self.env_lo[i], "below", work))
                break
            if hi[i] > self.env_hi[i] + _EPS:
                out.append(self._envelope(m, i, hi[i], self.env_hi[i], "above", work))
                break
        for name, blo_, bhi_ in self.boxes:
            if all(hi[i] > blo_[i] and lo[i] < bhi_[i] for i in (0, 1, 2)) and motion_hits_box(m, blo_, bhi_):
                if kind == "traverse":
                    text = _("a rapid move enters the keep-out zone '{zone}' of {machine}: route around it (e.g. "
                             "retract Z first) or check the work offset")
                else:
                    text = _("this move enters the keep-out zone '{zone}' of {machine}: route around it (e.g. "
                             "retract Z first) or check the work offset")
                out.append(Diagnostic(m.line, "error", "keep-out", text.format(zone=name, machine=self.name)))
        if kind in ("feed", "arc"):
            if m.feed > self.max_feed + _EPS and m.feed != self._feed_reported:
                self._feed_reported = m.feed
                out.append(Diagnostic(m.line, "error", "feed-rate", _(
                    "feed {feed:.0f} mm/min is above {machine}'s maximum of {limit:g} mm/min: use F{limit:g} or "
                    "less").format(feed=m.feed, machine=self.name, limit=self.max_feed)))
            if not spindle_on and not self._spindle_warned:
                self._spindle_warned = True
                out.append(Diagnostic(m.line, "warning", "spindle-off-cut", _(
                    "cutting move with the spindle off: start it with M3 S<rpm> before the first cut")))

    def _envelope(self, m: Motion, i: int, value: float, limit: float, side: str, work: Vec) -> Diagnostic:
        axis = _AXES[i]
        scale = 1.0 / self.x_scale if i == 0 else 1.0
        over = abs(value - limit) * scale
        shown_value, shown_limit = value * scale, limit * scale
        in_work = (value - work[i]) * scale
        if m.kind == "arc":
            where = _("the arc's swept path")
        else:
            where = _("a rapid move") if m.kind == "traverse" else _("the move")
        # TRANSLATORS: as in "2.000 mm above mill-1's X limit of 0.000"
        side_text = _("above") if side == "above" else _("below")
        return Diagnostic(
            m.line, "error", "envelope",
            _("{where} reaches {axis}{value} (machine), {over} mm {side} {machine}'s {axis} limit of {limit}; that "
              "is {axis}{work} in work coordinates: check the coordinates on this line and the work offset").format(
                where=where, axis=axis, value=_fmt(shown_value), over=_fmt(over), side=side_text, machine=self.name,
                limit=_fmt(shown_limit), work=_fmt(in_work)),
        )

    def merge(self, lo: Vec, hi: Vec) -> None:
        """Fold in the bounds of motions checked elsewhere (the C fast path)."""
        if self.lo is None or self.hi is None:
            self.lo, self.hi = list(lo), list(hi)
            return
        for i in (0, 1, 2):
            self.lo[i] = min(self.lo[i], lo[i])
            self.hi[i] = max(self.hi[i], hi[i])

    def bounds(self) -> dict[str, dict[str, float]] | None:
        if self.lo is None or self.hi is None:
            return None
        lo, hi = {}, {}
        for i in self.axes:
            scale = 1.0 / self.x_scale if i == 0 else 1.0
            lo[_AXES[i]] = round(self.lo[i] * scale, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
            hi[_AXES[i]] = round(self.hi[i] * scale, 6) + 0.0
        return {"min": lo, "max": hi}
