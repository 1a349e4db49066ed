"""Toolpath preview for the dashboard: the safety interpreter's motions as polylines.

Arcs are flattened here (server side) with the safety gate's own arc kernel, so the
browser draws the path the gate checked, true extremes included, as lines. Segments on
lines the check flagged for leaving the envelope or entering a keep-out box are
marked ``bad`` and drawn red. Coordinates are machine coordinates in mm; a lathe's
X is shown as a diameter, like its envelope and readout.
"""

from __future__ import annotations

from typing import Any

from labbridge.config import Machine
from labbridge.safety.geometry import arc_points
from labbridge.safety.lexer import split_lines

VIOLATION_CODES = frozenset({"envelope", "keep-out"})
MAX_POINTS = 200_000
ARC_TOLERANCE = 0.02  # mm between an arc and the chords drawn for it


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
    for number, raw in enumerate(split_lines(text), start=1):
        try:
            result = interp.execute(raw, number)
        except Exception:
            continue  # the check report already says what is wrong with this block
        for m in result.motions:
            if m.kind == "dwell":
                continue
            path = arc_points(m, ARC_TOLERANCE) if m.kind == "arc" and m.center is not None else [m.start, m.end]
            pts = [show(p) for p in path]
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
