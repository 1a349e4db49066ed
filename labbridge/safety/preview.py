"""Toolpath preview for the dashboard: the safety interpreter's motions as polylines.

Arcs are flattened here (server side) so the browser only draws lines. Segments on
lines the check flagged for leaving the envelope or entering a keep-out box are
marked ``bad`` and drawn red. Coordinates are machine coordinates in mm; a lathe's
X is shown as a diameter, like its envelope and readout.
"""

from __future__ import annotations

import math
from typing import Any

from labbridge.config import Machine

VIOLATION_CODES = frozenset({"envelope", "keep-out"})
MAX_POINTS = 200_000
ARC_STEP = math.radians(5)


def _arc_points(m: Any) -> list[tuple[float, float, float]]:
    a, b, n = m.plane
    c = m.center
    start, end = m.start, m.end
    a0 = math.atan2(start[b] - c[b], start[a] - c[a])
    steps = max(2, math.ceil(abs(m.sweep) / ARC_STEP))
    sign = -1.0 if m.clockwise else 1.0
    points = []
    for i in range(1, steps):
        t = i / steps
        angle = a0 + sign * m.sweep * t
        p = [0.0, 0.0, 0.0]
        p[a] = c[a] + m.radius * math.cos(angle)
        p[b] = c[b] + m.radius * math.sin(angle)
        p[n] = start[n] + (end[n] - start[n]) * t
        points.append((p[0], p[1], p[2]))
    points.append(tuple(end))  # type: ignore[arg-type]
    return points


def build_preview(text: str, machine: Machine, report_json: dict[str, Any]) -> dict[str, Any]:
    """Motions of ``text`` on ``machine`` plus the envelope and keep-out boxes to draw them against."""
    from labbridge.safety import Interpreter

    bad_lines = {
        d["line"] for d in report_json.get("diagnostics", [])
        if d.get("severity") == "error" and d.get("code") in VIOLATION_CODES
    }
    xscale = 2.0 if machine.is_lathe and machine.diameter_mode else 1.0

    def show(p: Any) -> list[float]:
        return [round(p[0] * xscale, 4), round(p[1], 4), round(p[2], 4)]

    interp = Interpreter(machine)
    segments: list[dict[str, Any]] = []
    points = 0
    truncated = False
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            result = interp.execute(raw, number)
        except Exception:
            continue  # the check report already says what is wrong with this block
        for m in result.motions:
            if m.kind == "dwell":
                continue
            path = _arc_points(m) if m.kind == "arc" and m.center is not None else [m.end]
            pts = [show(m.start)] + [show(p) for p in path]
            points += len(pts)
            if points > MAX_POINTS:
                truncated = True
                break
            segments.append({"line": m.line, "kind": m.kind, "points": pts, "bad": m.line in bad_lines})
        if truncated or getattr(result, "program_end", False):
            break
    envelope = {a: list(v) for a, v in machine.envelope.items()}
    keep_out = [{"name": k.name, "min": dict(k.min), "max": dict(k.max)} for k in machine.keep_out]
    return {
        "machine": machine.name,
        "lathe": machine.is_lathe,
        "envelope": envelope,
        "keep_out": keep_out,
        "segments": segments,
        "bad_lines": sorted(bad_lines),
        "truncated": truncated,
    }
